"""hsidetect:bs3lnet — BS3LNet blind-spot self-supervised anomaly detection."""

from .detectors import AnomalyDetector
from .method_parameters import MethodParameter as P


class Bs3lnetAlgorithm(AnomalyDetector):
    ALGORITHM_ID = "bs3lnet"
    TITLE = "Hyperspectral Anomaly Detection (BS3LNet)"
    METHOD = "bs3lnet"
    METHOD_LABEL = "BS3LNet"
    NETWORK = True
    METHOD_PARAMETERS = (
        P("iterations", int, 100, "Training iterations (batches)",
          "Training budget in batches of BATCH_SIZE patches; used when EPOCHS is 0. Default chosen by measuring "
          "AUC against training time: longer training barely helps and can learn to reproduce anomalies.",
          minimum=0),
        P("epochs", float, 0.0, "Training epochs (0: use iterations)",
          "Training budget as the paper counts it: one epoch is one patch per valid pixel. Overrides ITERATIONS "
          "when above 0. The paper trains 1000 epochs, hours on a CPU.", minimum=0),
        P("patch_size", int, 19, "Patch size (pixels, odd)",
          "Side of the square training patches, odd (paper: 19).", minimum=3),
        P("scaling", str, "standardize", "Input scaling",
          "standardize rescales each band to zero mean and unit variance over the valid pixels (default: measured "
          "the most accurate); none uses the values as stored (the paper); minmax maps the whole cube to 0..1.",
          choices=("none", "standardize", "minmax")),
        P("ratio", float, 0.9, "Share of patch pixels that are not blind",
          "n = ceil(P x P x (1 - ratio)) pixels of each patch are blind, the centre among them (paper: 0.9).",
          advanced=True, minimum=0, maximum=0.999),
        P("window", int, 5, "Replacement window (pixels, odd)",
          "A blind pixel takes the spectrum of a random neighbour inside this window (paper: 5).",
          advanced=True, minimum=3),
        P("features", int, 64, "Feature channels", "Width of the network (paper: 64).", advanced=True, minimum=1),
        P("blocks", int, 2, "Residual blocks", "Depth of the network (paper: 2).", advanced=True, minimum=0),
        P("norm", str, "batch", "Normalisation layers", "batch (the paper) or instance normalisation.",
          advanced=True, choices=("batch", "instance")),
        P("loss", str, "l1", "Loss at the blind pixels", "l1 (the paper) or l2.", advanced=True,
          choices=("l1", "l2")),
        P("learning_rate", float, 1e-4, "Learning rate", "Adam learning rate (paper: 0.0001).", advanced=True,
          minimum=0),
        P("beta1", float, 0.5, "Adam beta1", "Adam's first moment decay (paper: 0.5).", advanced=True,
          minimum=0, maximum=1),
        P("weight_decay", float, 1e-5, "Weight decay", "Adam weight decay (paper: 0.00001).", advanced=True,
          minimum=0),
        P("batch_size", int, 100, "Batch size (patches)", "Patches per training batch (paper: 100).",
          advanced=True, minimum=1),
        P("redraw", bool, True, "Draw new blind pixels for every batch",
          "Yes: new blind positions for every batch (as Noise2Void does). No: drawn once per pixel and reused, "
          "as the authors' code does.", advanced=True),
        P("score_rounds", int, 0, "Blind scoring rounds",
          "0: score the unmasked image in one pass (the paper). R > 0: R rounds of blind passes in which every "
          "pixel is scored while blind.", advanced=True, minimum=0),
        P("score", str, "mse", "Score formula",
          "mse: the mean squared reconstruction residual of a pixel in the input's units (the paper); mse-scaled: "
          "the same in the scaled units; rx: the Mahalanobis distance of the residual.", advanced=True,
          choices=("mse", "mse-scaled", "rx")),
        P("tile_size", int, 0, "Detection tile size (pixels, 0: automatic)",
          "Scenes are scored in tiles of this size; 0 takes the whole image when it fits in memory.",
          advanced=True, minimum=0),
    )
    HELP = """BS3LNet, a blind-spot self-supervised network, learns from the image itself, without labels, to predict every pixel's spectrum from its neighbours: during training some pixels of each patch are hidden ("blind") and the network must reconstruct them. The background is predictable from its surroundings; small anomalies (targets, objects unlike their neighbourhood) are not, so the reconstruction error of each pixel is its anomaly score.

Outputs:
Anomaly score (OUTPUT): the reconstruction error scaled to 0..1 over the valid pixels; high values are likely anomalies. Nodata where the input pixel was invalid.
Binary anomaly map (OUTPUT_BINARY): 1 anomaly, 0 background, the score cut at the threshold (by default the false-alarm rule: a model of the background fitted to the bulk of the scores, cut where it expects FALSE_ALARM_RATE of the background pixels, 0.003; on 19 benchmark scenes its F1 was well above Otsu's, bench/results/studies/anomaly_thresholds.md).
Detected objects (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a GeoPackage, ranked by peak score (1 = most anomalous), with pixel count, area, peak and mean score and the map coordinates of the peak and the centroid; it opens outlined and labelled by rank.
Trained model (SAVE_MODEL, optional): the network, to apply to another image with the same bands (TRAINED_MODEL) without training.

Time: the default budget (100 iterations of 100 patches) took about 1.5 minutes on 2 CPU cores for a 100 x 100 pixel, 205-band scene (peak memory about 1 GB); training time grows with iterations x batch size x bands, detection with the pixels. The paper's 1000 epochs (EPOCHS 1000) take about a day on a CPU. A CUDA GPU (DEVICE auto uses one when the engine's torch sees it) should bring this down to seconds; we have not measured it.

Reference: Gao, Wang, Zhuang, Sun, Huang and Plaza, "BS3LNet: A new blind-spot self-supervised learning network for hyperspectral anomaly detection", IEEE Transactions on Geoscience and Remote Sensing, 61:5504218, 2023, doi:10.1109/TGRS.2023.3246565."""
