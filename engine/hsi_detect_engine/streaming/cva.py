"""Streamed CVA: the change pipeline's CVA on a pair larger than the memory limit.

Pass 1 accumulates each date's per-band mean and deviation over the pixels valid in both;
pass 2 writes the change magnitude (and a float64 scratch copy for the threshold) and
accumulates the moments of the per-band |standardised difference|; pass 3 writes its RX
score, the anomalous change. The threshold and the binary map come from passes over the
magnitude (scores.py).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import HsiDetectError
from ..io.memory import format_size
from ..io.pairs import PairSources
from ..io.products.wavelengths import describe, wavelength_metadata
from ..io.reader import no_valid_pixel
from ..io.writer import SCORE_NODATA, RasterWriter
from ..progress import Progress, SubProgress
from .budget import gdal_cache, window_plan
from .rx import describe_bands, valid_pixels, windows, write_scores
from .scores import cut_score, style_score
from .statistics import Moments

IN_MEMORY_PER_BAND = 40  # bytes per pixel and band of the in-memory CVA: both dates, their scaled copies and differences
IN_MEMORY_PER_PIXEL = 48
WINDOW_PER_BAND = 24  # a window: both dates read, their finite masks and valid pixels' copies (moments), or
WINDOW_PER_PIXEL = 64  # HyperNet's scaling pass: both dates read, their standardised copies and difference


def in_memory_bytes(rows: int, cols: int, bands: int) -> int:
    return rows * cols * (IN_MEMORY_PER_BAND * bands + IN_MEMORY_PER_PIXEL)


def standardizing(m: Moments) -> tuple:
    """float32 (offset, scale) as scaling.fit_scaling's 'standardize'."""
    scale = m.deviation()
    scale[scale < 1e-12] = 1.0
    return m.mean.astype(np.float32), scale.astype(np.float32)


def date_moments(pair: PairSources, plan: list, progress: Progress, stage: str = "detecting") -> tuple:
    """Each date's per-band mean and deviation over the pixels valid in both, and the count of date 1's
    own valid pixels. Bands that hold no valid pixel in either date are dropped from both, as
    read_pair drops them (then the pass is made again without them)."""
    while True:
        nb = len(pair.t1.band_numbers)
        m1, m2 = Moments(nb, full=False), Moments(nb, full=False)
        seen1, seen2 = np.zeros(nb, dtype=bool), np.zeros(nb, dtype=bool)
        own = 0
        for window in windows(plan, SubProgress(progress, 0.0, 0.3), "standardising the dates", stage):
            c1 = pair.t1.read_values(*window)
            c2 = pair.t2.read_values(*window)
            f1, f2 = np.isfinite(c1), np.isfinite(c2)
            seen1 |= f1.any(axis=(0, 1))
            seen2 |= f2.any(axis=(0, 1))
            v1 = f1.all(axis=2)
            own += int(v1.sum())
            valid = v1 & f2.all(axis=2)
            m1.add(valid_pixels(c1, valid))
            m2.add(valid_pixels(c2, valid))
        both = seen1 & seen2
        if both.all() or not seen1.any():
            return m1, m2, own
        empty = np.flatnonzero(~both).tolist()
        progress.log(f"Dropped {describe(pair.t1.band_numbers, pair.t1.wavelengths, empty)}: nodata everywhere in "
                     "one date or both.")
        pair.keep(np.flatnonzero(both).tolist())


def stream_cva(pair: PairSources, txn, limit: int, *, threshold: str, threshold_value: Optional[float],
               top_fraction: Optional[float], false_alarm_rate: float, min_object_size: int, metadata: dict,
               progress: Progress) -> dict:
    """CVA of the pair read window by window into the transaction's 'change', 'anomalous_change',
    'binary' and 'objects' outputs (those it holds)."""
    anomalous = "anomalous_change" in txn.outputs
    cut = "binary" in txn.outputs or "objects" in txn.outputs
    src = pair.t1
    rows, cols, nb = src.height, src.width, len(src.band_numbers)
    block_bytes = max(src.block_bytes, pair.t2.block_bytes)
    budget, plan = window_plan(src, limit, WINDOW_PER_BAND * nb + WINDOW_PER_PIXEL, 2 * block_bytes)
    progress.log(f"{rows} x {cols} pixels x {nb} bands in two dates exceed the memory limit of {format_size(limit)} "
                 f"in memory: streaming CVA in {len(plan)} windows.")
    info = {"streamed": True, "windows": len(plan)}
    georef = src.georef
    with gdal_cache(limit, 2 * block_bytes):
        m1, m2, own = date_moments(pair, plan, progress)
        nb = len(pair.t1.band_numbers)
        if own == 0:
            raise no_valid_pixel(src.path)
        if m1.n == 0:
            raise HsiDetectError("No pixel is valid in both dates: they do not overlap, or nodata covers one of them.")
        info["valid_pixels"] = m1.n
        info["bands"] = nb
        progress.log(describe_bands(pair.t1))
        metadata = {**metadata, **wavelength_metadata(pair.t1)}
        (o1, s1), (o2, s2) = standardizing(m1), standardizing(m2)

        def difference(*window):
            c1, c2, _, valid = pair.read(*window)
            c1 -= o1
            c1 /= s1
            c2 -= o2
            c2 /= s2
            c2 -= c1
            c2[~valid] = 0.0
            return c2, valid

        scratch = txn.scratch("change", "magnitude.tif") if cut else None
        acd = Moments(nb) if anomalous else None
        with RasterWriter(txn.path("change"), georef, nodata=SCORE_NODATA, band_names=["change magnitude"],
                          metadata=metadata) as w, _optional_writer(scratch, georef) as w64:
            for window in windows(plan, SubProgress(progress, 0.3, 0.4 if anomalous else 0.7), "change magnitude"):
                d, valid = difference(*window)
                mag = np.sqrt(np.einsum("ijk,ijk->ij", d, d, dtype=np.float64))
                block = mag.astype(np.float32)
                block[~valid] = SCORE_NODATA
                w.write(block, window[0], window[1])
                if w64 is not None:
                    mag[~valid] = np.nan
                    w64.write(mag, window[0], window[1])
                if acd is not None:
                    acd.add(valid_pixels(np.abs(d, out=d), valid))
        style_score(txn, "change", "change magnitude", budget, progress)
        if anomalous:
            def absolute(*window):
                d, valid = difference(*window)
                return np.abs(d, out=d), valid

            with RasterWriter(txn.path("anomalous_change"), georef, nodata=SCORE_NODATA,
                              band_names=["anomalous change"], metadata=metadata) as w:
                write_scores(absolute, plan, acd, w, SubProgress(progress, 0.7, 0.3), "anomalous change")
            style_score(txn, "anomalous_change", "anomalous change", budget, progress)
        info.update(cut_score(txn, scratch, georef, metadata, budget, progress, threshold=threshold,
                              threshold_value=threshold_value, top_fraction=top_fraction,
                              false_alarm_rate=false_alarm_rate, min_object_size=min_object_size, label="changed",
                              layer_name="changed_regions", score_name="change", count_key="changed_pixels"))
    return info


class _optional_writer:
    """A float64 scratch writer (NaN where invalid) at ``path``, or None without a path."""

    def __init__(self, path: Optional[str], georef):
        self.writer = RasterWriter(path, georef, dtype="float64", nodata=math.nan) if path else None

    def __enter__(self):
        return self.writer

    def __exit__(self, *exc):
        return self.writer.__exit__(*exc) if self.writer is not None else False
