"""Connected regions of a score raster's binary map, labelled window by window.

Each window of rows (ScoreRaster.windows) is labelled on its own (8-connected); a region that
runs on into the next window is joined to it where the two windows meet (union-find over the
windows' provisional labels). Each provisional label's figures are kept (pixels, score sum,
peak and its position, row and column sums, first pixel, whether a seed lies in it) and the
labels go to a scratch raster, so memory holds a few numbers per region and one window, never
a map of the scene. Passes over that raster then give any set of the regions as a binary
map or as a label raster for GDAL's polygonize. Regions are numbered, as scipy numbers them
on the whole map, in the raster order of their first pixel.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..io.cube import Georef
from ..io.gdal_utils import gdal as _gdal
from ..io.objects import EIGHT, band_polygons, highest, object_rows
from ..io.writer import RasterWriter

_FIGURES = ("pixels", "total", "rows", "cols", "first", "peak", "peak_at", "seeded")
WINDOW_ROWS = 256  # rows of the label raster read or written at once


class Regions:
    """The 8-connected regions of the valid pixels of ``raster`` above ``above``, provisional
    labels in a scratch raster at ``path``; ``seed``: a region is seeded when one of its pixels
    is above it. Arrays by region (numbered 1..count; index 0 is region 1): pixels, total (score
    sum), peak, peak_at (its first pixel's flat index), rows and cols (sums of the pixels' row
    and column), seeded."""

    def __init__(self, raster, above: float, path: str, seed: Optional[float] = None):
        from scipy import ndimage

        self.path, self.height, self.width = path, raster.height, raster.width
        self._ds = None
        self._parent = [0]
        parts, previous, offset = [], None, 0
        with RasterWriter(path, Georef(self.height, self.width), dtype="int32") as w:
            for r, values, valid in raster.windows():
                labels, n = ndimage.label(valid & (values > above), structure=EIGHT)
                labels = labels.astype(np.int32, copy=False)
                if n:
                    labels[labels > 0] += offset
                    parts.append(self._figures(labels, r, values, seed))
                    self._parent.extend(range(offset + 1, offset + n + 1))
                    if previous is not None:
                        self._join(previous, labels[0])
                    offset += n
                w.write(labels, r, 0)
                previous = labels[-1]
        self._resolve(parts, offset)

    def _figures(self, labels: np.ndarray, row: int, values: np.ndarray, seed: Optional[float]) -> dict:
        """The figures of a window's labels (consecutive, in raster order of their first pixel)."""
        rr, cc = np.nonzero(labels)
        lab = labels[rr, cc]
        first_label = int(lab.min())
        k = lab - first_label  # 0.. in the window
        v = values[rr, cc]
        flat = (rr + row).astype(np.int64) * self.width + cc
        n = int(k.max()) + 1
        top = highest(k, v, flat, n)
        _, first = np.unique(k, return_index=True)  # nonzero() walks in raster order
        return {"pixels": np.bincount(k, minlength=n).astype(np.float64),
                "total": np.bincount(k, weights=v, minlength=n),
                "rows": np.bincount(k, weights=rr + row, minlength=n),
                "cols": np.bincount(k, weights=cc, minlength=n),
                "first": flat[first], "peak": v[top], "peak_at": flat[top],
                "seeded": (np.bincount(k, weights=v > seed, minlength=n) > 0) if seed is not None
                else np.zeros(n, dtype=bool)}

    def _find(self, i: int) -> int:
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def _join(self, above: np.ndarray, below: np.ndarray):
        """Join the labels of two vertically adjacent rows that touch (8-connected)."""
        w = self.width
        pairs = [np.stack([above[a:w - b], below[b:w - a]], axis=1) for a, b in ((0, 0), (0, 1), (1, 0))]
        pairs = np.concatenate(pairs)
        pairs = np.unique(pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)], axis=0)
        for a, b in pairs.tolist():
            ra, rb = self._find(a), self._find(b)
            if ra != rb:
                self._parent[max(ra, rb)] = min(ra, rb)

    def _resolve(self, parts: list, labels: int):
        """Merge the provisional labels' figures into regions numbered by their first pixel."""
        root = np.array([self._find(i) for i in range(labels + 1)], dtype=np.int64)[1:]
        self._parent = None
        fig = {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0) for name in _FIGURES}
        roots, members = np.unique(root, return_inverse=True)  # members: each label's root, 0..
        count = len(roots)
        first = np.full(count, np.iinfo(np.int64).max)
        np.minimum.at(first, members, fig["first"].astype(np.int64))
        number = np.empty(count, dtype=np.int64)
        number[np.argsort(first, kind="stable")] = np.arange(count)  # 0-based region number of each root
        region = number[members]
        self.count = count
        for name in ("pixels", "total", "rows", "cols"):
            setattr(self, name, np.bincount(region, weights=fig[name], minlength=count))
        self.pixels = self.pixels.astype(np.int64)
        self.seeded = np.bincount(region, weights=fig["seeded"].astype(np.float64), minlength=count) > 0
        top = highest(region, fig["peak"], fig["peak_at"], count)
        self.peak, self.peak_at = fig["peak"][top], fig["peak_at"][top].astype(np.int64)
        self._region = np.concatenate([[0], region + 1])  # provisional label -> region number (0: none)

    def lookup(self, keep: np.ndarray, numbers: Optional[np.ndarray] = None) -> np.ndarray:
        """For each provisional label, the number ``numbers`` gives its region (default 1) where
        ``keep`` (bool by region) holds, else 0: index it with read()'s labels."""
        numbers = np.ones(self.count, dtype=np.int32) if numbers is None else numbers.astype(np.int32)
        return np.concatenate([[0], np.where(keep, numbers, 0)]).astype(np.int32)[self._region]

    def read(self, row: int, rows: int) -> np.ndarray:
        """The provisional labels of ``rows`` rows from ``row``."""
        if self._ds is None:
            self._ds = _gdal().Open(self.path)
        return self._ds.GetRasterBand(1).ReadAsArray(0, row, self.width, rows)

    def close(self):
        self._ds = None

    def polygons(self, keep: np.ndarray, path: str, georef: Georef) -> dict:
        """{number: geometry} of the regions ``keep`` holds, numbered 1.. in raster order (as
        label_objects numbers them), through a label raster written at ``path``."""
        if not keep.any():
            return {}
        lookup = self.lookup(keep, np.cumsum(keep))
        with RasterWriter(path, georef, dtype="int32") as w:
            for r in range(0, self.height, WINDOW_ROWS):
                w.write(lookup[self.read(r, min(WINDOW_ROWS, self.height - r))], r, 0)
        ds = _gdal().Open(path)
        try:
            return band_polygons(ds.GetRasterBand(1))
        finally:
            ds = None

    def object_rows(self, keep: np.ndarray, georef: Georef) -> list:
        """io.objects.object_table's rows of the regions ``keep`` holds."""
        pixels = self.pixels[keep]
        peak_at = self.peak_at[keep]
        peak_rc = np.stack([peak_at // self.width, peak_at % self.width], axis=1).astype(np.float64)
        centre_rc = np.stack([self.rows[keep] / pixels, self.cols[keep] / pixels], axis=1)
        return object_rows(pixels, self.peak[keep], self.total[keep] / pixels, peak_rc, centre_rc, georef)
