"""hsidetect:cva — change vector analysis, the classical change-detection baseline."""

from .detectors import ChangeDetector


class CvaAlgorithm(ChangeDetector):
    ALGORITHM_ID = "cva"
    TITLE = "Change Detection (Change Vector Analysis)"
    METHOD = "cva"
    METHOD_LABEL = "CVA"
    HELP = """Change vector analysis: each date is standardised band by band (zero mean, unit variance over the valid pixels) and the change of a pixel is the length of the difference between its two standardised spectra. No training and no labels; a fast first look and the classical baseline to compare HyperNet with.

Outputs:
Change magnitude (OUTPUT): length of the change vector; larger means more change. Nodata where either date was invalid.
Anomalous change score (OUTPUT_ANOMALOUS): RX (Mahalanobis) score of the per-band absolute change; high where the change is unlike the change elsewhere in the scene.
Binary change map (OUTPUT_BINARY): 1 changed, 0 unchanged, the magnitude cut at the threshold (Otsu by default).
Changed regions (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a GeoPackage, ranked by peak change, with pixel count, area, peak and mean change magnitude and the map coordinates of the peak and the centroid; it opens outlined and labelled by rank.

Time: under a second for a 400 x 400 pixel, 6-band pair on a CPU; it grows with pixels x bands. It always runs on the CPU (no GPU needed).

Reference: W. A. Malila, "Change vector analysis: an approach for detecting forest changes with Landsat", Proceedings of the 6th Annual Symposium on Machine Processing of Remotely Sensed Data, Purdue University, pp. 326-335, 1980."""
