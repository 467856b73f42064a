"""Passes over a one-band score raster already written: its range, its threshold, its binary map.

The thresholds equal those of thresholds.py on the whole score: Otsu's and the minimum-error
threshold from the same 1024-bin histogram (summed over windows), k-means with each
iteration's class means summed over windows, and the top fraction's quantile by exact
selection of the two order statistics numpy's linear quantile interpolates between. An
automatic threshold on a transformed score (thresholds.choose_threshold's ``transform``) runs
on the raster's values transformed as they are read. The hysteresis rule's regions and the
detected objects are labelled window by window (regions.py): no map of the whole scene is held.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import numpy as np

from ..errors import HsiDetectError
from ..io.gdal_utils import gdal as _gdal
from ..io.memory import window_rows
from ..io.writer import CLASS_NODATA, RasterWriter
from ..io.objects import write_objects
from ..io.styles import binary_qml, score_qml, write_qml
from ..parameters import MAX_OBJECT_SHARE
from ..thresholds import (AUTOMATIC, DEFAULT_FALSE_ALARM_RATE, false_alarm_cut, hysteresis_cuts, kmeans_from_centres,
                          min_error_from_histogram, otsu_from_histogram, score_transform)
from .regions import Regions

BINS = 1024  # as thresholds.py
SELECT_BINS = 4096


class ScoreRaster:
    """A one-band raster read back in windows of rows; its valid pixels are the finite ones
    that are not its nodata value."""

    def __init__(self, path: str, budget: int, progress=None):
        self._ds = _gdal().Open(path)
        self._band = self._ds.GetRasterBand(1)
        self.height, self.width = self._ds.RasterYSize, self._ds.RasterXSize
        self.nodata = self._band.GetNoDataValue()
        block = self._band.GetBlockSize()[1]
        self.step = window_rows(self.width * 24, budget, self.height, block)
        self.progress = progress
        self.forward = None  # a transform applied to the valid values as they are read

    def transformed(self, forward) -> "ScoreRaster":
        """The same raster, its valid values read through ``forward``."""
        view = copy.copy(self)
        view.forward = forward
        return view

    def windows(self, message: str = ""):
        """(row, values float64 (rows, cols), valid (rows, cols)) for each window."""
        for r in range(0, self.height, self.step):
            if self.progress is not None:
                self.progress.check()
            n = min(self.step, self.height - r)
            values = self._band.ReadAsArray(0, r, self.width, n).astype(np.float64)
            valid = np.isfinite(values)
            if self.nodata is not None and math.isfinite(self.nodata):
                valid &= values != self.nodata
            if self.forward is not None:
                values[valid] = self.forward(values[valid])
            yield r, values, valid

    def values(self):
        for _, values, valid in self.windows():
            yield values[valid]

    def summary(self):
        """(count, minimum, maximum) of the valid values."""
        n, lo, hi = 0, math.inf, -math.inf
        for v in self.values():
            if v.size:
                n += v.size
                lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
        return n, lo, hi

    def histogram(self, lo: float, hi: float, bins: int = BINS):
        hist = np.zeros(bins, dtype=np.int64)
        for v in self.values():
            hist += np.histogram(v, bins=bins, range=(lo, hi))[0]
        return hist, np.histogram(np.empty(0), bins=bins, range=(lo, hi))[1]

    def close(self):
        self._band = None
        self._ds = None


class RasterCut:
    """A score raster's binary map: the scores above one threshold, or the hysteresis rule's
    regions (``regions``: the Regions of the scores above the grow cut; ``keep``: by region,
    those in the map)."""

    def __init__(self, method: str, threshold: float, grow: Optional[float] = None,
                 regions: Optional[Regions] = None, keep: Optional[np.ndarray] = None):
        self.method, self.threshold, self.grow, self.regions, self.keep = method, threshold, grow, regions, keep
        self._lookup = regions.lookup(keep) if regions is not None else None

    @property
    def info(self) -> dict:
        """The summary's threshold entries, as thresholds.binary_map gives them."""
        grow = {} if self.grow is None else {"grow_threshold": self.grow}
        return {"threshold": self.threshold, **grow, "threshold_method": self.method}

    def window(self, row: int, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The flagged pixels of a window of rows starting at ``row``."""
        if self.regions is None:
            return valid & (values > self.threshold)
        return self._lookup[self.regions.read(row, values.shape[0])] > 0

    def close(self):
        if self.regions is not None:
            self.regions.close()


def cut_of_raster(raster: ScoreRaster, method: str, value: Optional[float] = None, fraction: Optional[float] = None,
                  budget: int = 64 << 20, rate: Optional[float] = None, transform: str = "none",
                  scratch: Optional[str] = None) -> RasterCut:
    """The binary map ``method`` gives on the raster (see thresholds.binary_map); the hysteresis
    rule labels its regions into a scratch raster at ``scratch``."""
    if method != "hysteresis":
        return RasterCut(method, threshold_of_raster(raster, method, value, fraction, budget, rate, transform))
    n, lo, hi = raster.summary()
    if n == 0:
        raise HsiDetectError("No valid score to threshold.")
    seed, grow = hysteresis_cuts(lo, *_root_quantiles(raster, n, lo, hi, budget), rate)
    regions = Regions(raster, grow, scratch, seed=seed)
    return RasterCut(method, seed, grow, regions, regions.seeded & (regions.pixels <= MAX_OBJECT_SHARE * n))


def _root_quantiles(raster: ScoreRaster, n: int, lo: float, hi: float, budget: int) -> tuple:
    """The median and 90th percentile of the root of the valid scores above their minimum (false_alarm_cut's fit)."""
    def root(x):
        return math.sqrt(max(x - lo, 0.0))

    return tuple(_quantile(raster, q, n, lo, hi, _sort_cap(budget), root) for q in (0.5, 0.9))


def threshold_of_raster(raster: ScoreRaster, method: str, value: Optional[float] = None,
                        fraction: Optional[float] = None, budget: int = 64 << 20,
                        rate: Optional[float] = None, transform: str = "none") -> float:
    """The threshold ``method`` gives on the raster's valid values (see thresholds.choose_threshold)."""
    if method == "value":
        return float(value)
    n, lo, hi = raster.summary()
    if n == 0:
        raise HsiDetectError("No valid score to threshold.")
    if method in AUTOMATIC and transform != "none":
        forward, inverse = score_transform(transform, lo, hi)
        return float(inverse(threshold_of_raster(raster.transformed(forward), method, budget=budget)))
    if method == "false-alarm":
        median, q90 = _root_quantiles(raster, n, lo, hi, budget)
        return false_alarm_cut(lo, median, q90, DEFAULT_FALSE_ALARM_RATE if rate is None else rate)
    if method == "fraction":
        if not 0 < fraction < 1:
            raise HsiDetectError(f"The top fraction must lie between 0 and 1 (got {fraction}).")
        return _quantile(raster, 1.0 - fraction, n, lo, hi, _sort_cap(budget))
    if hi <= lo:
        return float(hi)
    if method == "otsu":
        return otsu_from_histogram(*raster.histogram(lo, hi))
    if method == "min-error":
        return min_error_from_histogram(*raster.histogram(lo, hi))
    if method == "kmeans":
        return _kmeans(raster, lo, hi)
    raise HsiDetectError(f"Unknown threshold method '{method}'.")


def _kmeans(raster: ScoreRaster, c0: float, c1: float) -> float:
    def centres(t):
        s0 = s1 = 0.0
        k0 = k1 = 0
        for v in raster.values():
            low = v <= t
            s0 += float(v[low].sum())
            k0 += int(low.sum())
            s1 += float(v[~low].sum())
            k1 += v.size - int(low.sum())
        return (s0 / k0, s1 / k1) if k0 and k1 else None

    return kmeans_from_centres(c0, c1, centres)


def style_range_of_raster(raster: ScoreRaster, budget: int = 64 << 20) -> tuple:
    """io.writer.style_range of the raster's valid values: their 2nd and 98th percentiles."""
    n, lo, hi = raster.summary()
    if n == 0:
        return 0.0, 1.0
    low, high = (_quantile(raster, q, n, lo, hi, _sort_cap(budget)) for q in (0.02, 0.98))
    return (low, high) if high > low else (lo, hi)


def quantile_of_raster(raster: ScoreRaster, q: float, budget: int = 64 << 20) -> float:
    """numpy's (linear) quantile ``q`` of the raster's valid values."""
    n, lo, hi = raster.summary()
    if n == 0:
        raise HsiDetectError("No valid score to threshold.")
    return _quantile(raster, q, n, lo, hi, _sort_cap(budget))


def _sort_cap(budget: int) -> int:
    """How many values a quantile search may load and sort at once, within the window budget."""
    return max(1 << 16, budget // 16)


def _quantile(raster: ScoreRaster, q: float, n: int, lo: float, hi: float, cap: int, transform=None) -> float:
    """numpy's linear quantile of the valid values (of ``transform`` of them, a monotonic
    increasing function), from the two order statistics around it."""
    virtual = (n - 1) * q  # numpy's virtual index for its default method, linear
    below = min(max(math.floor(virtual), 0), n - 1)
    above = min(below + 1, n - 1)
    gamma = virtual - math.floor(virtual)
    a, b = _select(raster, (below, above), lo, hi, cap) if above > below else 2 * _select(raster, (below,), lo, hi, cap)
    if transform is not None:
        a, b = transform(a), transform(b)
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def _select(raster: ScoreRaster, ranks: tuple, a: float, b: float, cap: int, closed: bool = True,
            skipped: int = 0) -> tuple:
    """The values at the given 0-based ranks (one, or two adjacent) among the values in [a, b)
    ([a, b] when closed), ``skipped`` values lying below a: narrowing the interval by histograms
    until it holds few enough values to sort."""
    def inside(v):
        return (v >= a) & ((v < b) | (closed & (v == b)))

    while True:
        if np.nextafter(a, math.inf) >= b:  # as narrow as float64 allows: only a (and b when closed) remain
            at_a = sum(int((v == a).sum()) for v in raster.values())
            return tuple(a if r - skipped < at_a else b for r in ranks)
        edges = np.linspace(a, b, SELECT_BINS + 1)
        hist = np.zeros(SELECT_BINS, dtype=np.int64)
        for v in raster.values():
            w = v[inside(v)]
            idx = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, SELECT_BINS - 1)
            hist += np.bincount(idx, minlength=SELECT_BINS)
        cum = np.cumsum(hist) + skipped
        bins = [int(np.searchsorted(cum, r, side="right")) for r in ranks]
        if bins[0] != bins[-1]:  # the two ranks lie in different bins: one at a time
            return tuple(_select(raster, (r,), float(edges[k]), float(edges[k + 1]), cap,
                                 closed and k == SELECT_BINS - 1, int(cum[k - 1]) if k else skipped)[0]
                         for r, k in zip(ranks, bins))
        k = bins[0]
        below = int(cum[k - 1]) if k else skipped
        count = int(cum[k]) - below
        a, b, closed, skipped = float(edges[k]), float(edges[k + 1]), closed and k == SELECT_BINS - 1, below
        if count <= cap:
            kept = np.sort(np.concatenate([v[inside(v)] for v in raster.values()]))
            return tuple(float(kept[r - skipped]) for r in ranks)


def binarize_raster(raster: ScoreRaster, writer: RasterWriter, cut: RasterCut) -> int:
    """Write 1 where the cut flags a pixel, 0 elsewhere, 255 where invalid (thresholds.binary_map);
    returns the count of 1s."""
    marked = 0
    for r, values, valid in raster.windows():
        classes = cut.window(r, values, valid).astype(np.uint8)
        classes[~valid] = CLASS_NODATA
        marked += int((classes == 1).sum())
        writer.write(classes, r, 0)
    return marked


def objects_of_raster(txn, raster: ScoreRaster, cut: RasterCut, georef, *, layer_name: str, score_name: str,
                      min_size: int, kind: str) -> int:
    """Write the transaction's 'objects' layer from a written score raster's binary map ``cut``
    (its regions labelled window by window, streaming/regions.py); returns the number of objects."""
    regions, keep = cut.regions, cut.keep
    if regions is None:
        regions = Regions(raster, cut.threshold, txn.scratch(kind, "regions.tif"))
        keep = np.ones(regions.count, dtype=bool)
    try:
        keep = keep & (regions.pixels >= min_size)
        table = regions.object_rows(keep, georef)
        geometries = regions.polygons(keep, txn.scratch(kind, "objects.tif"), georef)
    finally:
        regions.close()
    write_objects(txn.path("objects"), table, geometries, georef, layer_name, score_name,
                  style=txn.path("objects", "qml"))
    return len(table)


def style_score(txn, kind: str, label: str, budget: int, progress=None):
    """The .qml of a written score output, its ramp over the 2nd to 98th percentile."""
    raster = ScoreRaster(txn.path(kind), budget, progress)
    try:
        write_qml(txn.path(kind), score_qml(*style_range_of_raster(raster, budget), label), txn.path(kind, "qml"))
    finally:
        raster.close()


def cut_score(txn, score_path: str, georef, metadata: dict, budget: int, progress, *, threshold: str,
              threshold_value: Optional[float], top_fraction: Optional[float], false_alarm_rate: float,
              min_object_size: int, label: str, layer_name: str, score_name: str, count_key: str,
              transform: str = "none") -> dict:
    """The streamed write_detections (detections.py): the threshold of the score raster at
    ``score_path``, then the transaction's 'binary' and 'objects' outputs (those it holds).
    Returns the summary's entries."""
    if "binary" not in txn.outputs and "objects" not in txn.outputs:
        return {}
    progress.update("writing", 0.4, "thresholding", force=True)
    kind = "binary" if "binary" in txn.outputs else "objects"
    score = ScoreRaster(score_path, budget, progress)
    cut = None
    try:
        cut = cut_of_raster(score, threshold, threshold_value, top_fraction, budget, false_alarm_rate, transform,
                            scratch=txn.scratch(kind, "grown.tif"))
        found = cut.info
        if "binary" in txn.outputs:
            with RasterWriter(txn.path("binary"), georef, dtype="uint8", nodata=CLASS_NODATA, band_names=[label],
                              metadata=metadata) as w:
                found[count_key] = binarize_raster(score, w, cut)
            write_qml(txn.path("binary"), binary_qml(label), txn.path("binary", "qml"))
        if "objects" in txn.outputs:
            progress.update("writing", 0.7, layer_name.replace("_", " "), force=True)
            found["objects"] = objects_of_raster(txn, score, cut, georef, layer_name=layer_name, kind=kind,
                                                 score_name=score_name, min_size=min_object_size)
    finally:
        if cut is not None:
            cut.close()
        score.close()
    return found
