"""Reading hyperspectral cubes and writing result rasters.

A cube is always (rows, cols, bands) float32 with a per-pixel validity mask: a pixel is
invalid when any selected band holds that band's nodata value or a non-finite value
(or the raster's own mask says so). Band numbers are 1-based, as QGIS counts them.

Results are written as tiled, compressed GeoTIFFs to a temporary name in the target
folder and renamed only when complete, so a failed or cancelled run never leaves a
partial file under the requested name.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from .errors import HsiDetectError

RESEARCH_SUFFIXES = (".mat", ".npy", ".npz")


def _gdal():
    from osgeo import gdal

    gdal.UseExceptions()
    return gdal


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
    wavelengths: Optional[list] = None
    wavelength_units: str = ""
    source: str = ""
    ground_truth: Optional[np.ndarray] = None  # research files only

    @property
    def shape(self):
        return self.data.shape


# --------------------------------------------------------------------------- paths

def check_input_path(path: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise HsiDetectError(f"Input file not found: {path}. Check the path and try again.")
    if os.path.isdir(path):
        raise HsiDetectError(f"Input {path} is a folder, not a raster file. Give the path of an image file.")
    if not os.access(path, os.R_OK):
        raise HsiDetectError(f"Input file {path} cannot be read (permission denied). Check its permissions.")
    return path


def check_output_path(path: str, inputs: Iterable[str] = ()) -> str:
    """Refuse an output whose folder is missing or that would overwrite an input."""
    if not path:
        raise HsiDetectError("No output path was given. Say where the result should be written.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise HsiDetectError(f"Output folder {folder} does not exist. Create it or choose another output path.")
    if os.path.isdir(path):
        raise HsiDetectError(f"Output {path} is a folder. Give a file name such as {os.path.join(path, 'result.tif')}.")
    real = os.path.realpath(path)
    for inp in inputs:
        if not inp:
            continue
        same = os.path.realpath(inp) == real or (
            os.path.exists(inp) and os.path.exists(path) and os.path.samefile(inp, path))
        if same:
            raise HsiDetectError(f"Output {path} is the same file as input {inp}. Choose another output name so that the input is not overwritten.")
    return path


# --------------------------------------------------------------------------- reading

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
    def band_count(self) -> int:
        return len(self.band_numbers)

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
        # All bands in one call per strip of rows: reading band by band decodes each block of a
        # pixel-interleaved (BIP) file once per band, a hundred times slower on large files.
        step = max(1, (64 << 20) // (cols * nb * 8))
        for r in range(0, rows, step):
            n = min(step, rows - r)
            try:
                raw = self._ds.ReadAsArray(col, row + r, cols, n, band_list=self.band_numbers).reshape(nb, n, cols)
            except RuntimeError as exc:
                raise HsiDetectError(f"Reading {self.path} failed ({_short(exc)}). The file may be damaged or incomplete.") from None
            for i, band in enumerate(self._bands):
                values = raw[i].astype(np.float32, copy=False)
                nodata = band.GetNoDataValue()
                ok = np.isfinite(values)
                if nodata is not None:
                    if not np.isnan(nodata):  # a NaN nodata is already caught by isfinite
                        ok &= raw[i] != nodata
                elif not band.GetMaskFlags() & gdal.GMF_ALL_VALID:
                    ok &= band.GetMaskBand().ReadAsArray(col, row + r, cols, n) > 0
                valid[r:r + n] &= ok
                cube[r:r + n, :, i] = values
        cube[~valid] = 0.0
        return cube, valid

    def close(self):
        self._bands = []
        self._ds = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def select_bands(bands: Optional[Sequence[int]], count: int, path: str = "") -> list:
    """Validate 1-based band numbers against a band count; None selects all bands."""
    if bands is None or len(bands) == 0:
        return list(range(1, count + 1))
    out = []
    for b in bands:
        try:
            n = int(b)
        except (TypeError, ValueError):
            raise HsiDetectError(f"Band '{b}' is not a band number. Give 1-based band numbers such as 1,2,5-10.") from None
        if n < 1 or n > count:
            raise HsiDetectError(f"Band {n} is out of range: {path or 'the image'} has bands 1 to {count}. Band numbers count from 1.")
        out.append(n)
    if len(set(out)) != len(out):
        raise HsiDetectError("A band number was given twice. List each band once.")
    return out


def parse_band_list(text: str) -> list:
    """Parse '1,2,5-10' into [1, 2, 5, 6, ..., 10]."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise HsiDetectError(f"Band range '{part}' runs backwards. Write it as {b}-{a}.")
            out.extend(range(a, b + 1))
        elif part.isdigit():
            out.append(int(part))
        else:
            raise HsiDetectError(f"'{part}' is not a band number or range. Use 1-based numbers such as 1,2,5-10.")
    return out


def read_cube(path: str, bands: Optional[Sequence[int]] = None, *, min_bands: int = 3,
              key: Optional[str] = None, gt_key: Optional[str] = None, require_valid: bool = True) -> Cube:
    """Read a whole image: any GDAL raster, or a .mat/.npy/.npz research cube."""
    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        from .research_io import read_research_cube

        cube = read_research_cube(path, bands=bands, min_bands=min_bands, key=key, gt_key=gt_key)
    else:
        with RasterSource(path, bands, min_bands) as src:
            data, valid = src.read()
            cube = Cube(data, valid, src.georef, src.band_numbers, src.band_names, src.wavelengths,
                        src.wavelength_units, path)
    if require_valid and not cube.valid.any():
        raise HsiDetectError(f"{path} has no valid pixel: every pixel is nodata or not a finite number in the selected bands. "
                             "Check the nodata value or choose other bands.")
    return cube


def read_single_band(path: str, band: int = 1) -> tuple:
    """Read one band (e.g. a ground truth or training mask): (array, nodata, georef)."""
    path = check_input_path(path)
    if path.lower().endswith(RESEARCH_SUFFIXES):
        from .research_io import read_research_2d

        arr = read_research_2d(path)
        return arr, None, Georef(arr.shape[0], arr.shape[1])
    gdal = _gdal()
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise HsiDetectError(f"{path} is not a raster GDAL can read ({_short(exc)}).") from None
    select_bands([band], ds.RasterCount, path)
    b = ds.GetRasterBand(band)
    arr = b.ReadAsArray()
    georef = Georef(ds.RasterYSize, ds.RasterXSize, tuple(ds.GetGeoTransform(can_return_null=True) or ()) or None,
                    ds.GetProjection() or "")
    nodata = b.GetNoDataValue()
    ds = None
    return arr, nodata, georef


# --------------------------------------------------------------------------- tiles

@dataclass(frozen=True)
class Tile:
    """One tile: the window read (core plus overlap) and the core window it owns."""

    row: int  # read window
    col: int
    rows: int
    cols: int
    core_row: int  # core window, in image coordinates
    core_col: int
    core_rows: int
    core_cols: int

    @property
    def core_in_tile(self) -> tuple:
        """Slices selecting the core from an array of the read window."""
        r0, c0 = self.core_row - self.row, self.core_col - self.col
        return slice(r0, r0 + self.core_rows), slice(c0, c0 + self.core_cols)


def iter_tiles(height: int, width: int, tile_size: int, overlap: int = 0):
    """Cover an image with cores of at most tile_size pixels a side, each read with
    `overlap` extra pixels on every side (clipped at the image border). The cores
    partition the image exactly."""
    if tile_size < 1:
        raise HsiDetectError("Tile size must be at least 1 pixel.")
    if overlap < 0:
        raise HsiDetectError("Tile overlap cannot be negative.")
    for r in range(0, height, tile_size):
        for c in range(0, width, tile_size):
            rows, cols = min(tile_size, height - r), min(tile_size, width - c)
            r0, c0 = max(0, r - overlap), max(0, c - overlap)
            r1, c1 = min(height, r + rows + overlap), min(width, c + cols + overlap)
            yield Tile(r0, c0, r1 - r0, c1 - c0, r, c, rows, cols)


# --------------------------------------------------------------------------- writing

_GDAL_TYPES = {"float32": "Float32", "uint8": "Byte", "int16": "Int16", "uint16": "UInt16", "int32": "Int32"}


class RasterWriter:
    """Write a GeoTIFF block by block to a temporary file; rename it into place on success.

    Use as a context manager: leaving the block with an exception (a failure or a
    cancellation) deletes the temporary file and leaves nothing under the target name.
    """

    def __init__(self, path: str, georef: Georef, *, bands: int = 1, dtype: str = "float32",
                 nodata: Optional[float] = None, band_names: Optional[Sequence[str]] = None,
                 inputs: Iterable[str] = (), metadata: Optional[dict] = None):
        self.path = check_output_path(path, inputs)
        self.georef = georef
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.bands = bands
        folder = os.path.dirname(os.path.abspath(self.path))
        self.tmp_path = os.path.join(folder, f".{os.path.basename(self.path)}.{uuid.uuid4().hex[:8]}.partial.tif")
        gdal = _gdal()
        driver = gdal.GetDriverByName("GTiff")
        predictor = "3" if self.dtype.kind == "f" else "2"
        options = ["TILED=YES", "COMPRESS=DEFLATE", f"PREDICTOR={predictor}", "BIGTIFF=IF_SAFER"]
        try:
            self._ds = driver.Create(self.tmp_path, georef.width, georef.height, bands,
                                     getattr(gdal, "GDT_" + _GDAL_TYPES[self.dtype.name]), options)
        except RuntimeError as exc:
            raise HsiDetectError(f"Cannot create {self.path} ({_short(exc)}). Check that the folder is writable and has space.") from None
        if georef.geotransform:
            self._ds.SetGeoTransform(georef.geotransform)
        if georef.crs_wkt:
            self._ds.SetProjection(georef.crs_wkt)
        if metadata:
            self._ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        for i in range(bands):
            band = self._ds.GetRasterBand(i + 1)
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
            if band_names:
                band.SetDescription(str(band_names[i]))

    def write(self, array: np.ndarray, row: int = 0, col: int = 0):
        """Write a (rows, cols) or (rows, cols, bands) block at (row, col)."""
        arr = np.asarray(array)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.shape[2] != self.bands:
            raise ValueError(f"block has {arr.shape[2]} bands, raster has {self.bands}")
        for i in range(self.bands):
            self._ds.GetRasterBand(i + 1).WriteArray(arr[:, :, i].astype(self.dtype, copy=False), col, row)

    def commit(self):
        self._ds.FlushCache()
        self._ds = None
        os.replace(self.tmp_path, self.path)
        aux = self.tmp_path + ".aux.xml"
        if os.path.exists(aux):
            os.replace(aux, self.path + ".aux.xml")

    def abort(self):
        self._ds = None
        for p in (self.tmp_path, self.tmp_path + ".aux.xml"):
            if os.path.exists(p):
                os.remove(p)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.commit()
            except Exception:
                self.abort()
                raise
        else:
            self.abort()
        return False


def write_raster(path: str, array: np.ndarray, georef: Georef, *, valid: Optional[np.ndarray] = None,
                 nodata: Optional[float] = None, dtype: str = "float32", inputs: Iterable[str] = (),
                 band_names: Optional[Sequence[str]] = None, metadata: Optional[dict] = None) -> str:
    """Write a whole (rows, cols[, bands]) array; invalid pixels take the nodata value."""
    arr = np.asarray(array)
    if valid is not None and not valid.all():
        if nodata is None:
            nodata = -9999.0 if np.dtype(dtype).kind == "f" else 255
        arr = arr.astype(dtype, copy=True)
        arr[~valid] = nodata
    bands = 1 if arr.ndim == 2 else arr.shape[2]
    with RasterWriter(path, georef, bands=bands, dtype=dtype, nodata=nodata, inputs=inputs,
                      band_names=band_names, metadata=metadata) as w:
        w.write(arr)
    return path


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")
