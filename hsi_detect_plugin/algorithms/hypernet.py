"""hsidetect:hypernet — HyperNet self-supervised hyperspectral change detection."""

from .detectors import ChangeDetector
from .method_parameters import MethodParameter as P


class HypernetAlgorithm(ChangeDetector):
    ALGORITHM_ID = "hypernet"
    TITLE = "Hyperspectral Change Detection (HyperNet)"
    METHOD = "hypernet"
    METHOD_LABEL = "HyperNet"
    NETWORK = True
    METHOD_PARAMETERS = (
        P("epochs", int, 200, "Training epochs",
          "One epoch is one forward and backward pass of both dates (or of one crop of them) (paper: 200).",
          minimum=1),
        P("training_pixels", str, "cva-fraction", "Unchanged training pixels (without a mask)",
          "How the pixels believed unchanged are chosen when no TRAINING_MASK is given: the lowest "
          "TRAINING_FRACTION of the change-vector magnitude of the standardised dates (cva-fraction), the pixels "
          "below its Otsu threshold (cva-otsu), the lowest fraction of the spectral angle (angle-fraction), or "
          "all valid pixels (all).", choices=("cva-fraction", "cva-otsu", "angle-fraction", "all")),
        P("training_fraction", float, 0.5, "Fraction of pixels to train on",
          "Share of the valid pixels kept by the *-fraction rules of TRAINING_PIXELS.", minimum=0, maximum=1),
        P("hidden", int, 0, "Hidden width (0: automatic)",
          "Hidden width h; the fused features have 2h channels. 0 takes half the band count rounded to a "
          "multiple of 8, at least 16 (the paper used 64 for 126-127 bands).", advanced=True, minimum=0),
        P("gamma", float, 1.0, "Focal exponent", "Exponent of the focal cosine loss; 0 is the plain cosine "
          "(paper: 1).", advanced=True, minimum=0),
        P("learning_rate", float, 0.05, "Learning rate", "SGD learning rate, decayed along a cosine (paper: 0.05).",
          advanced=True, minimum=0),
        P("momentum", float, 0.9, "Momentum", "SGD momentum (paper: 0.9).", advanced=True, minimum=0, maximum=1),
        P("weight_decay", float, 1e-4, "Weight decay", "SGD weight decay (paper: 0.0001).", advanced=True,
          minimum=0),
        P("scaling", str, "none", "Input scaling",
          "none uses the values as stored (the paper); standardize rescales each band of each date on its own.",
          advanced=True, choices=("none", "standardize")),
        P("crop_size", int, 64, "Training crop size (pixels, 0: automatic)",
          "Train on random square crops of this many pixels a side, one per epoch (default 64: measured more "
          "accurate than whole images, and much faster); 0 uses the whole image when it fits in memory, as the "
          "paper, else the largest crop that fits.", advanced=True, minimum=0),
        P("tile_size", int, 0, "Detection tile size (pixels, 0: automatic)",
          "Features are computed in overlapping tiles of this size, which give the whole-image result; 0 takes "
          "the whole image when it fits in memory.", advanced=True, minimum=0),
        P("threshold_transform", str, "sqrt", "Scale of the automatic threshold",
          "Scale on which Otsu or k-means cut the change magnitude for the binary map: sqrt (default; for the "
          "cosine-cva magnitude the geometric mean of the two distances, for mse the root-mean-square feature "
          "distance), log, or none (the magnitude itself, as the paper thresholds the mse).",
          advanced=True, choices=("sqrt", "log", "none")),
        P("score", str, "cosine-cva", "Change magnitude formula",
          "cosine-cva: the root of the features' cosine distance times the change-vector magnitude of the "
          "standardised dates, high only where both the learned features and the spectra changed (default, "
          "measured best); cosine: one minus the cosine similarity of the two dates' features; mse: their mean "
          "squared difference (the paper).", advanced=True, choices=("mse", "cosine", "cosine-cva")),
        P("bn_statistics", str, "date", "BatchNorm statistics at detection",
          "date: each date is normalised with its own statistics over its valid pixels, as in training (default; "
          "measured better when the dates differ in radiometry); running: the averages kept during training "
          "(the paper).", advanced=True, choices=("running", "date")),
    )
    HELP = """HyperNet learns, from the two dates themselves and without labels, a spatial-spectral feature for every pixel such that pixels believed unchanged have the same feature at both dates (self-supervised, SimSiam-style, with a focal cosine loss). Differences in illumination, atmosphere or sensor between the dates are learnt away; real change remains as a difference between the two dates' features. The pixels to train on are chosen automatically by a change-vector pre-detection, or given as TRAINING_MASK.

Outputs:
Change magnitude (OUTPUT): how far apart the two dates are (by default the root of the features' cosine distance times the change-vector magnitude of the standardised spectra, SCORE); larger means more change. Nodata where either date was invalid.
Anomalous change score (OUTPUT_ANOMALOUS): RX (Mahalanobis) score of the feature difference; high where the change is unlike the change elsewhere in the scene (anomalous change detection).
Binary change map (OUTPUT_BINARY): 1 changed, 0 unchanged, the change magnitude cut at the threshold (Otsu by default).
Changed regions (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a GeoPackage, ranked by peak change, with pixel count, area, peak and mean change magnitude and the map coordinates of the peak and the centroid; it opens outlined and labelled by rank.
Trained model (SAVE_MODEL, optional): the network, to apply to another pair with the same bands (TRAINED_MODEL) without training.

Time: at the defaults (200 epochs on 64 x 64 pixel crops), measured on 2 CPU cores: about 20 seconds for the 400 x 400 pixel, 6-band Taizhou pair, 30 seconds for an 800 x 800 x 6 pair, and 1.5 to 2 minutes for 120 x 120 to 150 x 150 pixel pairs with about 190 bands; training cost grows with CROP_SIZE squared and the bands, detection with the pixels. The paper's setting (CROP_SIZE 0: whole images every epoch) takes about 40 minutes for Taizhou on one core. A CUDA GPU (DEVICE auto uses one when the engine's torch sees it) should be much faster; we have not measured it.

Reference: M. Hu, C. Wu and L. Zhang, "HyperNet: Self-supervised hyperspectral spatial-spectral feature understanding network for hyperspectral change detection", IEEE Transactions on Geoscience and Remote Sensing, 60, 2022, doi:10.1109/TGRS.2022.3218795."""
