"""hsidetect:rx — global RX anomaly detection, the classical baseline."""

from .detectors import AnomalyDetector


class RxAlgorithm(AnomalyDetector):
    ALGORITHM_ID = "rx"
    TITLE = "Anomaly Detection (RX)"
    METHOD = "rx"
    METHOD_LABEL = "RX"
    HELP = """Global RX (Reed-Xiaoli) anomaly detection: the Mahalanobis distance of each pixel's spectrum from the mean spectrum of the whole image, under the image's band covariance. No training and no labels; a fast first look and the classical baseline to compare BS3LNet with.

Outputs:
Anomaly score (OUTPUT): RX distance scaled to 0..1 over the valid pixels; high values are spectra unlike the scene's background. Nodata where the input pixel was invalid.
Binary anomaly map (OUTPUT_BINARY): 1 anomaly, 0 background, the score cut at the threshold (by default the hysteresis rule: a model of the background fitted to the bulk of the scores gives the cut where it expects 0.001 of the background pixels; the pixels above it seed regions grown through the neighbouring pixels above a looser cut, at 0.01, and a region covering more than 2 % of the scene is dropped as background; on 19 benchmark scenes its F1 was above that of one cut of the model, the method false-alarm with FALSE_ALARM_RATE, and well above Otsu's, bench/results/studies/anomaly_thresholds.md).
Detected objects (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a GeoPackage, ranked by peak score (1 = most anomalous), with pixel count, area, peak and mean score and the map coordinates of the peak and the centroid; it opens outlined and labelled by rank.

Time: about a second for a 100 x 100 pixel, 162-band scene on a CPU; it grows with pixels x bands squared. It always runs on the CPU (no GPU needed).

Reference: I. S. Reed and X. Yu, "Adaptive multiple-band CFAR detection of an optical pattern with unknown spectral distribution", IEEE Transactions on Acoustics, Speech, and Signal Processing, 38(10):1760-1770, 1990."""
