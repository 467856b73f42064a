"""The engine's image types: a grid (Georef) and a cube in memory (Cube).

A cube is always (rows, cols, bands) float32 with a per-pixel validity mask; band
numbers are 1-based, as QGIS counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

@dataclass
class Georef:
    """Where a raster lies: size, geotransform and CRS (WKT, empty when unknown)."""

    height: int
    width: int
    geotransform: Optional[tuple] = None
    crs_wkt: str = ""

    def same_grid(self, other: "Georef") -> list:
        """Which of 'CRS', 'extent', 'pixel size' differ between two grids."""
        differ = []
        if _crs_differs(self.crs_wkt, other.crs_wkt):
            differ.append("CRS")
        gt1 = self.geotransform or (0, 1, 0, 0, 0, -1)
        gt2 = other.geotransform or (0, 1, 0, 0, 0, -1)
        pix1, pix2 = np.array([gt1[1], gt1[5]]), np.array([gt2[1], gt2[5]])
        if not np.allclose(pix1, pix2, rtol=1e-6, atol=0):
            differ.append("pixel size")
        ext1 = np.array([gt1[0], gt1[3], self.width, self.height], dtype=float)
        ext2 = np.array([gt2[0], gt2[3], other.width, other.height], dtype=float)
        tol = 1e-3 * max(abs(gt1[1]), abs(gt1[5]), 1e-12)
        if not (np.allclose(ext1[:2], ext2[:2], atol=tol) and np.array_equal(ext1[2:], ext2[2:])):
            differ.append("extent")
        return differ


def _crs_differs(wkt1: str, wkt2: str) -> bool:
    if not wkt1 and not wkt2:
        return False
    if not wkt1 or not wkt2:
        return True
    from osgeo import osr

    s1, s2 = osr.SpatialReference(), osr.SpatialReference()
    s1.ImportFromWkt(wkt1)
    s2.ImportFromWkt(wkt2)
    return not s1.IsSame(s2)


@dataclass
class Cube:
    """A hyperspectral image in memory."""

    data: np.ndarray  # (rows, cols, bands) float32
    valid: np.ndarray  # (rows, cols) bool
    georef: Georef
    band_numbers: list  # 1-based numbers in the source file
    band_names: list = field(default_factory=list)
    wavelengths: Optional[list] = None  # nm when wavelength_units is "nm"
    wavelength_units: str = ""
    source: str = ""
    ground_truth: Optional[np.ndarray] = None  # research files only
    fwhm: Optional[list] = None  # nm
    kind: str = ""  # the sensor product read, e.g. "EnMAP L2A"; "" for a plain raster

    def subset(self, indices: list) -> "Cube":
        """The same cube with only the bands at ``indices`` (0-based positions in this cube)."""
        pick = lambda values: [values[i] for i in indices] if values else values  # noqa: E731
        return Cube(self.data[:, :, indices], self.valid, self.georef, pick(self.band_numbers),
                    pick(self.band_names), pick(self.wavelengths), self.wavelength_units, self.source,
                    self.ground_truth, pick(self.fwhm), self.kind)

    @property
    def shape(self):
        return self.data.shape
