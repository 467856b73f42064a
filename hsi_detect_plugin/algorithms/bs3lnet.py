"""hsidetect:bs3lnet — BS3LNet blind-spot self-supervised anomaly detection."""

from .detectors import AnomalyDetector


class Bs3lnetAlgorithm(AnomalyDetector):
    ALGORITHM_ID = "bs3lnet"
    TITLE = "Hyperspectral Anomaly Detection (BS3LNet)"
    METHOD = "bs3lnet"
    METHOD_LABEL = "BS3LNet"
    NETWORK = True
    HELP = """BS3LNet, a blind-spot self-supervised network, learns from the image itself, without labels, to predict every pixel's spectrum from its neighbours: during training some pixels of each patch are hidden ("blind") and the network must reconstruct them. The background is predictable from its surroundings; small anomalies (targets, objects unlike their neighbourhood) are not, so the reconstruction error of each pixel is its anomaly score.

Outputs:
Anomaly score (OUTPUT): the reconstruction error scaled to 0..1 over the valid pixels; high values are likely anomalies. Nodata where the input pixel was invalid.
Binary anomaly map (OUTPUT_BINARY): 1 anomaly, 0 background, the score cut at the threshold (by default the hysteresis rule: a model of the background fitted to the bulk of the scores gives the cut where it expects 0.001 of the background pixels; the pixels above it seed regions grown through the neighbouring pixels above a looser cut, at 0.01, and a region covering more than 2 % of the scene is dropped as background; on 19 benchmark scenes its F1 was above that of one cut of the model, the method false-alarm with FALSE_ALARM_RATE, and well above Otsu's, bench/results/studies/anomaly_thresholds.md).
Detected objects (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a GeoPackage, ranked by peak score (1 = most anomalous), with pixel count, area, peak and mean score and the map coordinates of the peak and the centroid; it opens outlined and labelled by rank.
Trained model (SAVE_MODEL, optional): the network, to apply to another image with the same bands (TRAINED_MODEL) without training.

Time: the default budget (100 iterations of 100 patches) took about 1.5 minutes on 2 CPU cores for a 100 x 100 pixel, 205-band scene (peak memory about 1 GB); training time grows with iterations x batch size x bands, detection with the pixels. The paper's 1000 epochs (EPOCHS 1000) take about a day on a CPU. A CUDA GPU (DEVICE auto uses one when the engine's torch sees it) should bring this down to seconds; we have not measured it.

Reference: Gao, Wang, Zhuang, Sun, Huang and Plaza, "BS3LNet: A new blind-spot self-supervised learning network for hyperspectral anomaly detection", IEEE Transactions on Geoscience and Remote Sensing, 61:5504218, 2023, doi:10.1109/TGRS.2023.3246565."""
