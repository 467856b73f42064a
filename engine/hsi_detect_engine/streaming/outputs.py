"""The streamed anomaly pipelines' last passes, from a raw score raster already written: the
0..1 score map and its style, the threshold, the binary map and the objects layer."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..io.styles import binary_qml, score_qml, write_qml
from ..io.writer import CLASS_NODATA, SCORE_NODATA, RasterWriter
from ..progress import Progress
from .scores import ScoreRaster, binarize_raster, objects_of_raster, style_range_of_raster, threshold_of_raster


def normalise(raw: ScoreRaster, lo: float, hi: float, writer: RasterWriter) -> tuple:
    """Write (v - lo) / (hi - lo) of the valid raw scores as float32 (classical.minmax_normalise);
    returns the (min, max) written."""
    smin, smax = math.inf, -math.inf
    for r, values, valid in raw.windows():
        block = np.full(valid.shape, SCORE_NODATA, dtype=np.float32)
        out = np.zeros(int(valid.sum()), dtype=np.float32)
        out[:] = ((values[valid] - lo) / (hi - lo)) if hi > lo else 0.0
        block[valid] = out
        if out.size:
            smin, smax = min(smin, float(out.min())), max(smax, float(out.max()))
        writer.write(block, r, 0)
    return smin, smax


def write_anomaly_outputs(raw_path: str, lo: float, hi: float, txn, georef, budget: int, *, threshold: str,
                          threshold_value: Optional[float], top_fraction: Optional[float], false_alarm_rate: float,
                          min_object_size: int, metadata: dict, progress: Progress) -> dict:
    """From the raw scores at ``raw_path`` (range lo..hi, invalid pixels NaN): the transaction's
    'score' raster (0..1) with its style, and its 'binary' and 'objects' outputs when asked for.
    Returns the summary's entries: threshold, threshold_method, detected_pixels, objects."""
    info = {}
    progress.update("writing", 0.0, "scaling the scores to 0..1", force=True)
    raw = ScoreRaster(raw_path, budget, progress)
    with RasterWriter(txn.path("score"), georef, nodata=SCORE_NODATA, band_names=["anomaly score"],
                      metadata=metadata) as w:
        normalise(raw, lo, hi, w)
    raw.close()
    score = ScoreRaster(txn.path("score"), budget, progress)
    write_qml(txn.path("score"), score_qml(*style_range_of_raster(score, budget), "anomaly score"),
              txn.path("score", "qml"))
    if "binary" in txn.outputs or "objects" in txn.outputs:
        progress.update("writing", 0.4, "thresholding", force=True)
        t = threshold_of_raster(score, threshold, threshold_value, top_fraction, budget, false_alarm_rate)
        info.update({"threshold": t, "threshold_method": threshold})
        if "binary" in txn.outputs:
            with RasterWriter(txn.path("binary"), georef, dtype="uint8", nodata=CLASS_NODATA,
                              band_names=["anomaly"], metadata=metadata) as w:
                info["detected_pixels"] = binarize_raster(score, w, t)
            write_qml(txn.path("binary"), binary_qml("anomaly"), txn.path("binary", "qml"))
        if "objects" in txn.outputs:
            info["objects"] = objects_of_raster(txn, txn.path("score"), t, georef, layer_name="detected_objects",
                                                score_name="score", min_size=min_object_size)
    score.close()
    return info
