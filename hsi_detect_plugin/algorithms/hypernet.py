"""hsidetect:hypernet — HyperNet self-supervised hyperspectral change detection."""

from .detectors import ChangeDetector


class HypernetAlgorithm(ChangeDetector):
    ALGORITHM_ID = "hypernet"
    TITLE = "Hyperspectral Change Detection (HyperNet)"
    METHOD = "hypernet"
    METHOD_LABEL = "HyperNet"
    NETWORK = True
    HELP = """HyperNet learns, from the two dates themselves and without labels, a spatial-spectral feature for every pixel such that pixels believed unchanged have the same feature at both dates (self-supervised, SimSiam-style, with a focal cosine loss). Differences in illumination, atmosphere or sensor between the dates are learnt away; real change remains as a difference between the two dates' features. The pixels to train on are chosen automatically by a change-vector pre-detection, or given as TRAINING_MASK.

Outputs:
Change magnitude (OUTPUT): how far apart the two dates are (by default the root of the features' cosine distance times the change-vector magnitude of the standardised spectra, SCORE); larger means more change. Nodata where either date was invalid.
Anomalous change score (OUTPUT_ANOMALOUS): RX (Mahalanobis) score of the feature difference; high where the change is unlike the change elsewhere in the scene (anomalous change detection).
Binary change map (OUTPUT_BINARY): 1 changed, 0 unchanged, the change magnitude cut at the threshold (Otsu by default).
Changed regions (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a GeoPackage, ranked by peak change, with pixel count, area, peak and mean change magnitude and the map coordinates of the peak and the centroid; it opens outlined and labelled by rank.
Trained model (SAVE_MODEL, optional): the network, to apply to another pair with the same bands (TRAINED_MODEL) without training.

Time: at the defaults (200 epochs on 64 x 64 pixel crops), measured on 2 CPU cores: about 20 seconds for the 400 x 400 pixel, 6-band Taizhou pair, 30 seconds for an 800 x 800 x 6 pair, and 1.5 to 2 minutes for 120 x 120 to 150 x 150 pixel pairs with about 190 bands; training cost grows with CROP_SIZE squared and the bands, detection with the pixels. The paper's setting (CROP_SIZE 0: whole images every epoch) takes about 40 minutes for Taizhou on one core. A CUDA GPU (DEVICE auto uses one when the engine's torch sees it) should be much faster; we have not measured it.

Reference: M. Hu, C. Wu and L. Zhang, "HyperNet: Self-supervised hyperspectral spatial-spectral feature understanding network for hyperspectral change detection", IEEE Transactions on Geoscience and Remote Sensing, 60, 2022, doi:10.1109/TGRS.2022.3218795."""
