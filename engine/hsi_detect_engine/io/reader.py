"""Reading hyperspectral cubes from GDAL rasters (and research files, through research.py).

A pixel is invalid when any selected band holds that band's nodata value or a
non-finite value (or the raster's own mask says so); a band that holds no valid pixel
at all is dropped (and logged) rather than allowed to invalidate every pixel. Sensor
products (EnMAP, PRISMA, EMIT, ENVI headers) are recognised and read by io.products.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from ..errors import HsiDetectError
from .bands import select_bands
from .cube import Cube, Georef
from .products.wavelengths import to_nanometres
from .gdal_utils import gdal as _gdal, short_error as _short
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
        envi = ds.GetMetadata("ENVI") or {}
        raw_waves = _envi_list(envi.get("wavelength"), count, self.band_numbers)
        self.fwhm = to_nanometres(_envi_list(envi.get("fwhm"), count, self.band_numbers),
                                  envi.get("wavelength_units", ""), raw_waves or [1000.0])
        bbl = _envi_list(envi.get("bbl"), count, self.band_numbers)
        self.good_bands = [v != 0 for v in bbl] if bbl else None
        try:
            self.scale = float(envi.get("reflectance_scale_factor") or 1.0) or 1.0
        except ValueError:
            self.scale = 1.0

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

    @property
    def block_size(self) -> tuple:
        """(width, height) of the file's blocks."""
        return tuple(self._bands[0].GetBlockSize())

    @property
    def block_bytes(self) -> int:
        """Bytes of one block of every selected band, as GDAL's cache holds them. Reading whole block
        rows, the cache need hold no more than about one block: a whole-image read holds it to two
        (GDAL's default, 5% of the machine's memory, would keep up to that much of the file)."""
        width, height = self.block_size
        gdal = _gdal()
        return width * height * sum(gdal.GetDataTypeSize(b.DataType) // 8 for b in self._bands)

    def _read_wavelengths(self):
        """Wavelengths in nm (micrometres converted) and "nm"; (None, units) when the file has none."""
        per_band = [b.GetMetadataItem("wavelength") for b in self._bands]
        units = self._bands[0].GetMetadataItem("wavelength_units") or ""
        envi = self._ds.GetMetadata("ENVI") or {}
        units = units or envi.get("wavelength_units", "")
        if all(v not in (None, "") for v in per_band):
            try:
                return to_nanometres([float(v) for v in per_band], units), "nm"
            except ValueError:
                pass
        values = _envi_list(envi.get("wavelength"), self._ds.RasterCount, self.band_numbers)
        return (to_nanometres(values, units), "nm") if values else (None, units)

    def read(self, row: int = 0, col: int = 0, rows: Optional[int] = None, cols: Optional[int] = None):
        """Read a window: returns (cube (rows, cols, bands) float32, valid (rows, cols) bool)."""
        cube = self.read_values(row, col, rows, cols)
        valid = np.isfinite(cube).all(axis=2)
        cube[~valid] = 0.0
        return cube, valid

    def read_values(self, row: int = 0, col: int = 0, rows: Optional[int] = None, cols: Optional[int] = None):
        """Read a window as float32 (rows, cols, bands), scaled, NaN where a value is nodata."""
        rows = self.height - row if rows is None else rows
        cols = self.width - col if cols is None else cols
        if row < 0 or col < 0 or rows <= 0 or cols <= 0 or row + rows > self.height or col + cols > self.width:
            raise HsiDetectError(f"Window ({row}, {col}, {rows}, {cols}) lies outside the {self.height} x {self.width} image.")
        gdal = _gdal()
        nb = len(self._bands)
        cube = np.empty((rows, cols, nb), dtype=np.float32)
        # All bands in one call per strip of rows (reading band by band decodes each block of a
        # pixel-interleaved (BIP) file once per band), straight into the cube's pixel-interleaved
        # layout, converted by GDAL where float32 holds every value of the file's type exactly.
        # Strips of whole block rows where the file is tiled or striped, so that each block is
        # decoded once and GDAL's cache need hold only the block in use.
        exact = all(b.DataType in _EXACT_IN_FLOAT32 for b in self._bands)
        step = max(1, (64 << 20) // (cols * nb * 12))  # the strip read in the file's type when not exact
        if exact or step >= self.block_height:
            step = max(step, self.block_height) // self.block_height * self.block_height
        nodata = np.array([np.nan if v is None else v for v in (b.GetNoDataValue() for b in self._bands)])
        checked = bool((~np.isnan(nodata)).any())  # a NaN nodata is caught by isfinite
        masked = [i for i, b in enumerate(self._bands)
                  if b.GetNoDataValue() is None and not b.GetMaskFlags() & gdal.GMF_ALL_VALID]
        floating = any(gdal.GetDataTypeName(b.DataType).startswith(("Float", "CFloat")) for b in self._bands)
        for r in range(0, rows, step):
            n = min(step, rows - r)
            out = cube[r:r + n]
            try:
                if exact:
                    self._ds.ReadAsArray(col, row + r, cols, n, buf_obj=out, band_list=self.band_numbers,
                                         interleave="pixel")
                    raw = out
                else:
                    raw = self._ds.ReadAsArray(col, row + r, cols, n, band_list=self.band_numbers,
                                               interleave="pixel")
                    out[...] = raw
            except RuntimeError as exc:
                raise HsiDetectError(f"Reading {self.path} failed ({_short(exc)}). The file may be damaged or "
                                     "incomplete.") from None
            bad = raw == nodata if checked else None
            if floating:
                bad = ~np.isfinite(out) if bad is None else bad | ~np.isfinite(out)
            if bad is not None:
                np.copyto(out, np.float32(np.nan), where=bad)
            for i in masked:
                np.copyto(out[:, :, i], np.float32(np.nan),
                          where=self._bands[i].GetMaskBand().ReadAsArray(col, row + r, cols, n) == 0)
        if self.scale != 1.0:
            cube /= np.float32(self.scale)
        return cube

    def close(self):
        self._bands = []
        self._ds = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _envi_list(text: Optional[str], count: int, numbers: Sequence[int]) -> Optional[list]:
    """The selected bands' values of an ENVI header list such as '{1, 0, 1}', or None."""
    if not text:
        return None
    values = [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)]
    return [values[n - 1] for n in numbers] if len(values) == count else None


def read_cube(path: str, bands: Optional[Sequence[int]] = None, *, min_bands: int = 3,
              key: Optional[str] = None, gt_key: Optional[str] = None, require_valid: bool = True,
              wavelengths: Optional[list] = None, bad_bands: str = "drop", mask_clouds: bool = False,
              progress=None) -> Cube:
    """Read a whole image: a sensor product, any GDAL raster, or a .mat/.npy/.npz research cube.

    ``wavelengths`` are (low, high) nm ranges to keep; ``bad_bands='drop'`` drops the bands the
    product flags bad and those in the water-vapour windows (io.products.wavelengths).
    """
    from .products import open_source, read_source

    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        if wavelengths:
            raise HsiDetectError(f"{path} carries no wavelengths, so bands cannot be chosen by wavelength. "
                                 "Choose them by number instead.")
        cube = read_research_cube(path, bands=bands, min_bands=min_bands, key=key, gt_key=gt_key)
    else:
        log = progress.log if progress is not None else (lambda message: None)
        cube = read_source(open_source(path, mask_clouds), bands, wavelengths, bad_bands, min_bands, log)
    if require_valid and not cube.valid.any():
        raise no_valid_pixel(path)
    return cube


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


def streamed_source(path: str, bands: Optional[Sequence[int]], limit: int, in_memory_bytes, *,
                    wavelengths: Optional[list] = None, bad_bands: str = "drop", min_bands: int = 3,
                    log=None) -> Optional[RasterSource]:
    """An open RasterSource of the bands read_cube would choose, when the image is a plain GDAL
    raster (no sensor product) whose in-memory processing, ``in_memory_bytes(rows, cols, bands)``,
    does not fit well inside the memory limit; else None."""
    from ..streaming.budget import fits
    from .products import chosen_bands, open_source
    from .products.source import GdalSource

    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        return None
    source = open_source(path)
    if type(source) is not GdalSource:
        return None
    g = source.georef
    numbers = chosen_bands(source, bands, wavelengths, bad_bands, min_bands, log or (lambda message: None))
    if fits(in_memory_bytes(g.height, g.width, len(numbers)), limit):
        return None
    return RasterSource(source.path, numbers, min_bands)
