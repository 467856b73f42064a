"""What every reader gives: the band list with wavelengths and flags, the grid, and the values."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..cube import Georef


class Source:
    """An opened image. Band indices are 0-based positions in ``band_names``."""

    kind = ""  # e.g. "EnMAP L2A"; "" for a plain raster
    path = ""
    georef: Georef
    band_names: list
    wavelengths: Optional[list] = None  # nm
    wavelength_units = ""
    fwhm: Optional[list] = None  # nm
    good: Optional[list] = None  # the product's own flags: False = bad band

    @property
    def count(self) -> int:
        return len(self.band_names)

    def read(self, indices: list) -> np.ndarray:
        """float32 (rows, cols, len(indices)) on the map grid; NaN where a value is nodata."""
        raise NotImplementedError

    def invalid_pixels(self) -> Optional[np.ndarray]:
        """Pixels the product marks unusable beyond nodata (e.g. clouds), or None."""
        return None


class GdalSource(Source):
    """Any raster GDAL opens; ENVI header keys come through GDAL's ENVI metadata domain."""

    def __init__(self, path: str, kind: str = ""):
        from ..reader import RasterSource

        self.path, self.kind = path, kind
        with RasterSource(path, None, min_bands=1) as src:
            self.georef, self.band_names = src.georef, src.band_names
            self.wavelengths, self.wavelength_units = src.wavelengths, src.wavelength_units
            self.fwhm, self.good = src.fwhm, src.good_bands

    def read(self, indices: list) -> np.ndarray:
        from ..reader import RasterSource

        from ..gdal_utils import cache_at_most

        with RasterSource(self.path, [i + 1 for i in indices], min_bands=1) as src:
            with cache_at_most(max(16 << 20, 2 * src.block_bytes)):  # see RasterSource.block_bytes
                return src.read_values()
