"""The streamed anomaly pipelines' last passes (RX and BS3LNet), from a raw score raster already
written: the 0..1 score map, then its style, threshold, binary map and objects (scores.py)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..io.writer import SCORE_NODATA, RasterWriter
from ..progress import Progress
from .scores import ScoreRaster, cut_score, style_score


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
    progress.update("writing", 0.0, "scaling the scores to 0..1", force=True)
    raw = ScoreRaster(raw_path, budget, progress)
    try:
        with RasterWriter(txn.path("score"), georef, nodata=SCORE_NODATA, band_names=["anomaly score"],
                          metadata=metadata) as w:
            normalise(raw, lo, hi, w)
    finally:
        raw.close()
    style_score(txn, "score", "anomaly score", budget, progress)
    return cut_score(txn, txn.path("score"), georef, metadata, budget, progress, threshold=threshold,
                     threshold_value=threshold_value, top_fraction=top_fraction, false_alarm_rate=false_alarm_rate,
                     min_object_size=min_object_size, label="anomaly", layer_name="detected_objects",
                     score_name="score", count_key="detected_pixels")
