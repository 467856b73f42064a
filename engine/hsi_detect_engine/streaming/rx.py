"""Streamed RX: the anomaly pipeline's RX on a scene larger than the memory limit.

Pass 1 accumulates the valid pixels' mean and covariance; pass 2 writes each window's
Mahalanobis scores into a float64 scratch raster beside the output while taking their range;
pass 3 normalises them to 0..1 into the score raster; the threshold and the binary map come
from passes over the score raster (outputs.py, scores.py).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np

from ..classical import mahalanobis, safe_inverse
from ..io.memory import format_size
from ..io.products.wavelengths import band_summary, describe, wavelength_metadata
from ..io.reader import RasterSource, no_valid_pixel
from ..io.writer import RasterWriter
from ..progress import Progress, SubProgress
from .budget import gdal_cache, window_plan
from .outputs import write_anomaly_outputs
from .statistics import Moments

IN_MEMORY_PER_BAND = 8  # bytes per pixel and band of the in-memory RX: the float32 cube and its valid pixels' copy
IN_MEMORY_PER_PIXEL = 40  # its masks, float64 scores and float32 normalised score
WINDOW_PER_BAND = 10  # a window: the float32 read, its finite mask and its valid pixels' copy (the float64
WINDOW_PER_PIXEL = 64  # products go by blocks of a few thousand pixels: statistics.py, classical.mahalanobis)

Read = Callable[..., tuple]  # (row, col, rows, cols) -> (cube (rows, cols, bands) float32, valid (rows, cols))


def in_memory_bytes(rows: int, cols: int, bands: int) -> int:
    return rows * cols * (IN_MEMORY_PER_BAND * bands + IN_MEMORY_PER_PIXEL)


def windows(plan: list, progress: Progress, message: str, stage: str = "detecting"):
    """The planned windows (row, col, rows, cols), reporting progress (and honouring a cancel) at each."""
    for i, window in enumerate(plan):
        progress.update(stage, i / len(plan), message)
        yield window
    progress.update(stage, 1.0, message)


def source_moments(src: RasterSource, plan: list, progress: Progress, message: str, full: bool = True,
                   stage: str = "detecting") -> tuple:
    """(the source, the Moments of its valid pixels; ``full``: with their covariance). Bands that
    hold no valid pixel are dropped, as read_cube drops them (then the pass is made again without them)."""
    while True:
        m = Moments(len(src.band_numbers), full)
        seen = np.zeros(len(src.band_numbers), dtype=bool)
        for window in windows(plan, progress, message, stage):
            values = src.read_values(*window)
            finite = np.isfinite(values)
            seen |= finite.any(axis=(0, 1))
            m.add(valid_pixels(values, finite.all(axis=2)))
        if seen.all() or not seen.any():
            return src, m
        empty = np.flatnonzero(~seen).tolist()
        progress.log(f"Dropped {describe(src.band_numbers, src.wavelengths, empty)}: nodata everywhere.")
        keep = [b for b, ok in zip(src.band_numbers, seen) if ok]
        src.close()
        src = RasterSource(src.path, keep)


def valid_pixels(cube: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The (n, bands) valid pixels of a window, a view of it (no copy) when all are valid."""
    return cube.reshape(-1, cube.shape[-1]) if valid.all() else cube[valid]


def describe_bands(src: RasterSource) -> str:
    """The run log's line on the bands used (products.wavelengths.band_summary)."""
    return band_summary(SimpleNamespace(shape=(src.height, src.width, len(src.band_numbers)),
                                        wavelengths=src.wavelengths, kind=""))


def write_scores(read: Read, plan: list, stats: Moments, writer: RasterWriter, progress: Progress,
                 message: str) -> tuple:
    """Write each window's RX scores (invalid pixels: the writer's nodata); returns their (min, max)."""
    inv = safe_inverse(stats.covariance())
    lo, hi = math.inf, -math.inf
    for window in windows(plan, progress, message):
        cube, valid = read(*window)
        block = np.full(valid.shape, writer.nodata, dtype=writer.dtype)
        if valid.any():
            scores = mahalanobis(valid_pixels(cube, valid), stats.mean, inv)
            block[valid] = scores
            lo, hi = min(lo, float(scores.min())), max(hi, float(scores.max()))
        writer.write(block, window[0], window[1])
    return lo, hi


def stream_rx_anomaly(src: RasterSource, txn, limit: int, *, threshold: str, threshold_value: Optional[float],
                      top_fraction: Optional[float], false_alarm_rate: float, min_object_size: int, metadata: dict,
                      progress: Progress) -> dict:
    """RX of the scene read window by window into the transaction's 'score' (and 'binary' and
    'objects') outputs."""
    rows, cols, nb = src.height, src.width, len(src.band_numbers)
    budget, plan = window_plan(src, limit, WINDOW_PER_BAND * nb + WINDOW_PER_PIXEL)
    progress.log(f"{rows} x {cols} pixels x {nb} bands exceed the memory limit of {format_size(limit)} in memory: "
                 f"streaming RX in {len(plan)} windows.")
    info = {"streamed": True, "windows": len(plan)}
    with gdal_cache(limit, src.block_bytes):
        src, stats = source_moments(src, plan, SubProgress(progress, 0.0, 0.4), "RX statistics")
        try:
            return _rx_passes(src, stats, plan, budget, txn, info, threshold, threshold_value, top_fraction,
                              false_alarm_rate, min_object_size, metadata, progress)
        finally:
            src.close()


def _rx_passes(src, stats, plan, budget, txn, info, threshold, threshold_value, top_fraction, false_alarm_rate,
               min_object_size, metadata, progress) -> dict:
    if stats.n == 0:
        raise no_valid_pixel(src.path)
    progress.log(describe_bands(src))
    metadata = {**metadata, **wavelength_metadata(src)}
    info["bands"] = len(src.band_numbers)
    info["valid_pixels"] = stats.n
    raw_path = txn.scratch("score", "raw.tif")
    with RasterWriter(raw_path, src.georef, dtype="float64", nodata=math.nan) as w:
        lo, hi = write_scores(src.read, plan, stats, w, SubProgress(progress, 0.4, 0.5), "RX scores")
    info.update(write_anomaly_outputs(raw_path, lo, hi, txn, src.georef, budget, threshold=threshold,
                                      threshold_value=threshold_value, top_fraction=top_fraction,
                                      false_alarm_rate=false_alarm_rate, min_object_size=min_object_size,
                                      metadata=metadata, progress=progress))
    return info
