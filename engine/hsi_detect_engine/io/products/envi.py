"""ENVI rasters given by their header: find the data file the .hdr describes.

GDAL opens an ENVI raster only through its data file; the header's keys (wavelength,
wavelength units, fwhm, bbl, data ignore value, reflectance scale factor, map info) are
then read by GDAL and applied by io.reader.RasterSource.
"""

from __future__ import annotations

import os

from ...errors import HsiDetectError
from .source import GdalSource

DATA_SUFFIXES = ("", ".img", ".dat", ".bsq", ".bil", ".bip", ".raw", ".bin", ".IMG", ".DAT", ".BSQ", ".BIL",
                 ".BIP", ".RAW", ".BIN")


def data_file(header: str) -> str:
    stem, _ = os.path.splitext(header)
    for suffix in DATA_SUFFIXES:
        if stem + suffix != header and os.path.isfile(stem + suffix):
            return stem + suffix
    raise HsiDetectError(f"{header} is an ENVI header, but its data file is missing: expected "
                         f"{os.path.basename(stem)} (or .img, .dat, .bsq, .bil, .bip) beside it.")


def open_header(header: str) -> GdalSource:
    return GdalSource(data_file(header), kind="ENVI")
