"""hsidetect:rx — global RX anomaly detection, the classical baseline."""

from .detectors import ANOMALY_OUTPUTS_HELP, AnomalyDetector


class RxAlgorithm(AnomalyDetector):
    ALGORITHM_ID = "rx"
    TITLE = "Anomaly Detection (RX)"
    METHOD = "rx"
    METHOD_LABEL = "RX"
    HELP = """Global RX (Reed-Xiaoli) anomaly detection: the Mahalanobis distance of each pixel's spectrum from the mean spectrum of the whole image, under the image's band covariance. No training and no labels; a fast first look and the classical baseline to compare BS3LNet with.

Outputs:
Anomaly score (OUTPUT): RX distance scaled to 0..1 over the valid pixels; high values are spectra unlike the scene's background. Nodata where the input pixel was invalid.
""" + ANOMALY_OUTPUTS_HELP + """

Time: about a second for a 100 x 100 pixel, 162-band scene on a CPU; it grows with pixels x bands squared. It always runs on the CPU (no GPU needed).

Reference: I. S. Reed and X. Yu, "Adaptive multiple-band CFAR detection of an optical pattern with unknown spectral distribution", IEEE Transactions on Acoustics, Speech, and Signal Processing, 38(10):1760-1770, 1990."""
