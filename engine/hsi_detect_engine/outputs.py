"""Writing detector results: GeoTIFF plus a .qml style beside it."""

from __future__ import annotations

import numpy as np

from .raster_io import Georef, write_raster
from .styles import binary_qml, score_qml, write_qml

SCORE_NODATA = -9999.0
CLASS_NODATA = 255


def write_score(path: str, score: np.ndarray, valid: np.ndarray, georef: Georef, inputs=(),
                name: str = "score", metadata: dict = None) -> str:
    """A float32 score map; invalid pixels are nodata (-9999)."""
    write_raster(path, score.astype(np.float32), georef, valid=valid, nodata=SCORE_NODATA,
                 dtype="float32", inputs=inputs, band_names=[name], metadata=metadata)
    v = score[valid]
    write_qml(path, score_qml(float(v.min()), float(v.max()), name))
    return path


def write_binary(path: str, classes: np.ndarray, georef: Georef, inputs=(), label: str = "detected",
                 metadata: dict = None) -> str:
    """A uint8 map: 1 detected, 0 background, 255 nodata."""
    write_raster(path, classes.astype(np.uint8), georef, nodata=CLASS_NODATA, dtype="uint8",
                 inputs=inputs, band_names=[label], metadata=metadata)
    write_qml(path, binary_qml(label))
    return path
