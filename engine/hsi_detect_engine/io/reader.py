"""Reading hyperspectral cubes from GDAL rasters (and research files, through research.py).

A pixel is invalid when any selected band holds that band's nodata value or a
non-finite value (or the raster's own mask says so).
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from ..errors import HsiDetectError
from .bands import select_bands
from .cube import Cube, Georef
from .gdal_utils import cache_at_most, gdal as _gdal, short_error as _short
from .paths import check_input_path
from .research import RESEARCH_SUFFIXES, read_research_2d, read_research_cube

_EXACT_IN_FLOAT32 = (1, 2, 3, 6)  # GDT_Byte, UInt16, Int16, Float32 (GDAL 3.7's Int8 is read as Byte here)


def no_valid_pixel(path: str) -> HsiDetectError:
    return HsiDetectError(f"{path} has no valid pixel: every pixel is nodata or not a finite number in the selected "
                          "bands. Check the nodata value or choose other bands.")


class RasterSource:
    """An open raster from which windows of selected bands are read as float32 cubes."""

    def __init__(self, path: str, bands: Optional[Sequence[int]] = None, min_bands: int = 3, dataset=None):
        """Open ``path``; or wrap an already open GDAL ``dataset`` (e.g. a warped one)."""
        gdal = _gdal()
        if dataset is not None:
            self.path, self._ds = path, dataset
        else:
            self.path = check_input_path(path)
            try:
                self._ds = gdal.Open(self.path, gdal.GA_ReadOnly)
            except RuntimeError as exc:
                raise HsiDetectError(
                    f"{self.path} is not a raster GDAL can read ({_short(exc)}). "
                    "Give a GeoTIFF, ENVI or other GDAL raster, or a .mat/.npy/.npz cube."
                ) from None
        if self._ds is None or self._ds.RasterCount == 0:
            raise HsiDetectError(f"{self.path} holds no raster bands. Give a multi-band image.")
        count = self._ds.RasterCount
        self.band_numbers = select_bands(bands, count, self.path)
        if len(self.band_numbers) < min_bands:
            raise HsiDetectError(
                f"{self.path}: {len(self.band_numbers)} band(s) selected, but a hyperspectral cube needs at least {min_bands}. "
                "Give a multi-band image (or select more bands)."
            )
        ds = self._ds
        self.georef = Georef(ds.RasterYSize, ds.RasterXSize, tuple(ds.GetGeoTransform(can_return_null=True) or ()) or None,
                             ds.GetProjection() or "")
        self._bands = [ds.GetRasterBand(n) for n in self.band_numbers]
        self.band_names = [b.GetDescription() or f"Band {n}" for b, n in zip(self._bands, self.band_numbers)]
        self.wavelengths, self.wavelength_units = self._read_wavelengths()

    @property
    def height(self) -> int:
        return self.georef.height

    @property
    def width(self) -> int:
        return self.georef.width

    @property
    def block_height(self) -> int:
        """Rows of the file's blocks (tiles or strips): windows of a multiple of it decode each block once."""
        return max(1, self._bands[0].GetBlockSize()[1])

    def _read_wavelengths(self):
        per_band = [b.GetMetadataItem("wavelength") for b in self._bands]
        units = self._bands[0].GetMetadataItem("wavelength_units") or ""
        if all(v not in (None, "") for v in per_band):
            try:
                return [float(v) for v in per_band], units
            except ValueError:
                pass
        envi = self._ds.GetMetadata("ENVI") or {}
        text = envi.get("wavelength")
        if text:
            values = [float(v) for v in re.findall(r"[-+0-9.eE]+", text)]
            if len(values) == self._ds.RasterCount:
                return [values[n - 1] for n in self.band_numbers], envi.get("wavelength_units", units)
        return None, units

    def read(self, row: int = 0, col: int = 0, rows: Optional[int] = None, cols: Optional[int] = None):
        """Read a window: returns (cube (rows, cols, bands) float32, valid (rows, cols) bool)."""
        rows = self.height - row if rows is None else rows
        cols = self.width - col if cols is None else cols
        if row < 0 or col < 0 or rows <= 0 or cols <= 0 or row + rows > self.height or col + cols > self.width:
            raise HsiDetectError(f"Window ({row}, {col}, {rows}, {cols}) lies outside the {self.height} x {self.width} image.")
        gdal = _gdal()
        nb = len(self._bands)
        cube = np.empty((rows, cols, nb), dtype=np.float32)
        valid = np.ones((rows, cols), dtype=bool)
        # All bands in one call per strip of rows (reading band by band decodes each block of a
        # pixel-interleaved (BIP) file once per band), straight into the cube's pixel-interleaved
        # layout, converted by GDAL where float32 holds every value of the file's type exactly.
        # Strips of whole block rows where the file is tiled or striped, so that each block is
        # decoded once and GDAL's cache need hold only the block in use.
        exact = all(b.DataType in _EXACT_IN_FLOAT32 for b in self._bands)
        step = max(1, (64 << 20) // (cols * nb * 12))  # the strip read in the file's type when not exact
        if exact or step >= self.block_height:
            step = max(step, self.block_height) // self.block_height * self.block_height
        nodata = [b.GetNoDataValue() for b in self._bands]
        checked = [i for i, v in enumerate(nodata) if v is not None and not np.isnan(v)]  # NaN: caught by isfinite
        masked = [i for i, v in enumerate(nodata) if v is None and not self._bands[i].GetMaskFlags() & gdal.GMF_ALL_VALID]
        floating = any(gdal.GetDataTypeName(b.DataType).startswith(("Float", "CFloat")) for b in self._bands)
        width, height = self._bands[0].GetBlockSize()
        block = width * height * sum(gdal.GetDataTypeSize(b.DataType) // 8 for b in self._bands)
        with cache_at_most(max(16 << 20, 2 * block)):
            self._read_strips(cube, valid, row, col, cols, step, exact, nodata, checked, masked, floating)
        cube[~valid] = 0.0
        return cube, valid

    def _read_strips(self, cube, valid, row, col, cols, step, exact, nodata, checked, masked, floating):
        rows = cube.shape[0]
        for r in range(0, rows, step):
            n = min(step, rows - r)
            out = cube[r:r + n]
            try:
                if exact:
                    self._ds.ReadAsArray(col, row + r, cols, n, buf_obj=out, band_list=self.band_numbers,
                                         interleave="pixel")
                    raw = out
                else:
                    raw = self._ds.ReadAsArray(col, row + r, cols, n, band_list=self.band_numbers, interleave="pixel")
                    out[...] = raw
            except RuntimeError as exc:
                raise HsiDetectError(f"Reading {self.path} failed ({_short(exc)}). The file may be damaged or incomplete.") from None
            ok = valid[r:r + n]
            if floating:
                ok &= np.isfinite(out).all(axis=2)
            if checked:
                ok &= ~(raw[:, :, checked] == np.array([nodata[i] for i in checked])).any(axis=2)
            for i in masked:
                ok &= self._bands[i].GetMaskBand().ReadAsArray(col, row + r, cols, n) > 0

    def close(self):
        self._bands = []
        self._ds = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_cube(path: str, bands: Optional[Sequence[int]] = None, *, min_bands: int = 3,
              key: Optional[str] = None, gt_key: Optional[str] = None, require_valid: bool = True) -> Cube:
    """Read a whole image: any GDAL raster, or a .mat/.npy/.npz research cube."""
    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        cube = read_research_cube(path, bands=bands, min_bands=min_bands, key=key, gt_key=gt_key)
    else:
        with RasterSource(path, bands, min_bands) as src:
            data, valid = src.read()
            cube = Cube(data, valid, src.georef, src.band_numbers, src.band_names, src.wavelengths,
                        src.wavelength_units, path)
    if require_valid and not cube.valid.any():
        raise no_valid_pixel(path)
    return cube


def streamed_source(path: str, bands: Optional[Sequence[int]], limit: int, in_memory_bytes,
                    min_bands: int = 3) -> Optional[RasterSource]:
    """An open RasterSource when the image is a GDAL raster whose in-memory processing,
    ``in_memory_bytes(rows, cols, bands)``, does not fit well inside the memory limit; else None."""
    from ..streaming.budget import fits

    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        return None
    src = RasterSource(path, bands, min_bands)
    if fits(in_memory_bytes(src.height, src.width, len(src.band_numbers)), limit):
        src.close()
        return None
    return src


def read_single_band(path: str, band: int = 1, what: Optional[str] = None) -> tuple:
    """Read one band (e.g. a ground truth or training mask): (array, nodata, georef).

    With ``what`` (e.g. 'map'), the raster must have one band only: a raster of several is
    refused rather than its first band silently used.
    """
    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        arr = read_research_2d(path)
        return arr, None, Georef(arr.shape[0], arr.shape[1])
    ds, b, nodata, georef = open_single_band(path, band, what)
    arr = b.ReadAsArray()
    return arr, nodata, georef


def open_single_band(path: str, band: int = 1, what: Optional[str] = None) -> tuple:
    """One band of a GDAL raster open for windowed reads: (dataset, band, nodata, georef); refused
    as read_single_band refuses it."""
    path = check_input_path(path)
    gdal = _gdal()
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise HsiDetectError(f"{path} is not a raster GDAL can read ({_short(exc)}).") from None
    if what and ds.RasterCount > 1:
        raise HsiDetectError(f"{path} has {ds.RasterCount} bands, but the {what} must have one. Give a one-band "
                             "raster (extract the band first, e.g. with gdal_translate -b N).")
    select_bands([band], ds.RasterCount, path)
    b = ds.GetRasterBand(band)
    georef = Georef(ds.RasterYSize, ds.RasterXSize, tuple(ds.GetGeoTransform(can_return_null=True) or ()) or None,
                    ds.GetProjection() or "")
    return ds, b, b.GetNoDataValue(), georef
