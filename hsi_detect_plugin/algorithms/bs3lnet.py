"""hsidetect:bs3lnet — BS3LNet blind-spot self-supervised anomaly detection."""

from .detectors import ANOMALY_OUTPUTS_HELP, AnomalyDetector


class Bs3lnetAlgorithm(AnomalyDetector):
    ALGORITHM_ID = "bs3lnet"
    TITLE = "Hyperspectral Anomaly Detection (BS3LNet)"
    METHOD = "bs3lnet"
    METHOD_LABEL = "BS3LNet"
    NETWORK = True
    HELP = """BS3LNet, a blind-spot self-supervised network, learns from the image itself, without labels, to predict every pixel's spectrum from its neighbours: during training some pixels of each patch are hidden ("blind") and the network must reconstruct them. The background is predictable from its surroundings; small anomalies (targets, objects unlike their neighbourhood) are not, so the reconstruction error of each pixel is its anomaly score (the paper's, SCORE mse). By default (SCORE mse+rx) the error is fused with RX of the image, each standardised over the scene: a larger object the network reconstructs from its own pixels is still found by RX. RX measures each pixel half as it is and half as the mean of its alike neighbours, so the pixels of an extended target rise above the noise together. The fused score is then averaged over each pixel's 3 x 3 neighbours, weighted by how alike they look (in the image's first three principal components): the pixels of one object share their scores, while a target of a pixel or two, unlike its neighbours, keeps its own. This smoothed score is why BS3LNet's FALSE_ALARM_RATE defaults to 0.001 (RX: 0.003).

Outputs:
Anomaly score (OUTPUT): the score scaled to 0..1 over the valid pixels; high values are likely anomalies. Nodata where the input pixel was invalid.
""" + ANOMALY_OUTPUTS_HELP + """
Trained model (SAVE_MODEL, optional): the network, to apply to another image with the same bands (TRAINED_MODEL) without training.

Time: the default budget (100 iterations of 100 patches) took about 1.5 minutes on 2 CPU cores for a 100 x 100 pixel, 205-band scene (peak memory about 1 GB); training time grows with iterations x batch size x bands, detection with the pixels. The paper's 1000 epochs (EPOCHS 1000) take about a day on a CPU. A CUDA GPU (DEVICE auto uses one when the engine's torch sees it) should bring this down to seconds; we have not measured it.

Reference: Gao, Wang, Zhuang, Sun, Huang and Plaza, "BS3LNet: A new blind-spot self-supervised learning network for hyperspectral anomaly detection", IEEE Transactions on Geoscience and Remote Sensing, 61:5504218, 2023, doi:10.1109/TGRS.2023.3246565."""
