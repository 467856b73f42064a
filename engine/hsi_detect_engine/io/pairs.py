"""Reading the two dates of a change-detection pair onto one grid."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import HsiDetectError
from ..progress import Progress
from .cube import Cube
from .gdal_utils import gdal as _gdal
from .paths import check_input_path
from .reader import RasterSource, open_single_band, read_cube, read_single_band, streamed_source
from .research import RESEARCH_SUFFIXES, load_arrays

GRID_MODES = ("resample", "refuse")
WAVELENGTH_TOLERANCE = 1.0  # nm: band centres closer than this are the same band


@dataclass
class Pair:
    t1: Cube
    t2: Cube
    valid: np.ndarray  # valid in both dates
    resampled: bool = False


def _band_count(path: str) -> int:
    if path.lower().endswith(RESEARCH_SUFFIXES):
        arrays = [a for a in load_arrays(path).values() if a.ndim == 3]
        return arrays[0].shape[2] if len(arrays) == 1 else -1
    gdal = _gdal()
    try:
        return gdal.Open(path).RasterCount
    except RuntimeError:
        return -1  # read_cube reports the real problem


def read_pair(t1_path: str, t2_path: str, bands: Optional[Sequence[int]] = None, grid: str = "resample",
              progress: Optional[Progress] = None, min_bands: int = 3, wavelengths: Optional[list] = None,
              bad_bands: str = "drop", mask_clouds: bool = False) -> Pair:
    """Read both dates with the same bands; put date 2 on date 1's grid when they differ.

    grid='resample' warps date 2 onto date 1's grid with GDAL (bilinear); grid='refuse'
    stops with a message naming what differs (CRS, extent, pixel size). Sensor products
    are read as read_cube reads them; a band dropped from one date is dropped from both.
    """
    progress = progress or Progress()
    if grid not in GRID_MODES:
        raise HsiDetectError(f"Unknown grid mode '{grid}'. Use resample or refuse.")
    check_input_path(t1_path)
    check_input_path(t2_path)
    n1, n2 = _band_count(t1_path), _band_count(t2_path)
    if n1 > 0 and n2 > 0 and n1 != n2:
        raise HsiDetectError(f"The two dates have different band counts ({t1_path}: {n1}, {t2_path}: {n2}). "
                             "Give two images of the same sensor and bands.")
    options = dict(min_bands=min_bands, wavelengths=wavelengths, bad_bands=bad_bands, mask_clouds=mask_clouds,
                   progress=progress)
    t1 = read_cube(t1_path, bands, **options)
    t2 = read_cube(t2_path, bands, require_valid=False, **options)
    t1, t2 = _same_bands(t1, t2, progress)
    resampled = False
    research = any(p.lower().endswith(RESEARCH_SUFFIXES) for p in (t1_path, t2_path))
    differ = [] if research else t1.georef.same_grid(t2.georef)
    if differ:
        what = ", ".join(differ)
        if grid == "refuse":
            raise HsiDetectError(f"The two dates are not on the same grid ({what} differ). "
                                 "Resample date 2 onto date 1 first, or let the tool do it (grid mode 'resample').")
        progress.log(f"Date 2 is on another grid ({what} differ): resampling it onto date 1's grid (bilinear).")
        t2 = _warped(t2, t1)
        resampled = True
    elif t2.shape[:2] != t1.shape[:2]:
        raise HsiDetectError(f"The two dates differ in size ({t1.shape[0]} x {t1.shape[1]} and "
                             f"{t2.shape[0]} x {t2.shape[1]}) and carry no georeference to align them.")
    valid = t1.valid & t2.valid
    if not valid.any():
        raise HsiDetectError("No pixel is valid in both dates: they do not overlap, or nodata covers one of them.")
    return Pair(t1, t2, valid, resampled)


def _same_bands(t1: Cube, t2: Cube, progress: Progress) -> tuple:
    """Keep the bands both dates kept (by band number); refuse dates whose wavelengths differ."""
    if t1.band_numbers != t2.band_numbers:
        both = [n for n in t1.band_numbers if n in set(t2.band_numbers)]
        only = sorted(set(t1.band_numbers) ^ set(t2.band_numbers))
        if only:
            progress.log(f"Band(s) {', '.join(map(str, only))} dropped from one date are dropped from both.")
        t1 = t1.subset([t1.band_numbers.index(n) for n in both])
        t2 = t2.subset([t2.band_numbers.index(n) for n in both])
    if t1.wavelengths and t2.wavelengths:
        gap = max(abs(a - b) for a, b in zip(t1.wavelengths, t2.wavelengths))
        if len(t1.wavelengths) != len(t2.wavelengths) or gap > WAVELENGTH_TOLERANCE:
            raise HsiDetectError(f"The two dates' band wavelengths differ (by up to {gap:.1f} nm). "
                                 "Give two images of the same sensor and bands.")
    return t1, t2


def _warped(cube: Cube, target: Cube) -> Cube:
    """``cube`` resampled (bilinear) onto ``target``'s grid, invalid pixels as nodata."""
    gdal = _gdal()
    g = target.georef
    gt = g.geotransform or (0, 1, 0, 0, 0, -1)
    bounds = (gt[0], gt[3] + gt[5] * g.height, gt[0] + gt[1] * g.width, gt[3])
    rows, cols, nb = cube.shape
    try:
        src = gdal.GetDriverByName("MEM").Create("", cols, rows, nb, gdal.GDT_Float32)
        src.SetGeoTransform(cube.georef.geotransform or (0, 1, 0, 0, 0, -1))
        if cube.georef.crs_wkt:
            src.SetProjection(cube.georef.crs_wkt)
        for i in range(nb):
            band = src.GetRasterBand(i + 1)
            band.WriteArray(np.where(cube.valid, cube.data[:, :, i], np.float32(np.nan)))
            band.SetNoDataValue(float("nan"))
        opts = gdal.WarpOptions(format="MEM", outputBounds=bounds, width=g.width, height=g.height,
                                dstSRS=g.crs_wkt or None, resampleAlg="bilinear", dstNodata=float("nan"),
                                outputType=gdal.GDT_Float32)
        ds = gdal.Warp("", src, options=opts)
        data = np.dstack([ds.GetRasterBand(i + 1).ReadAsArray() for i in range(nb)]).astype(np.float32)
    except RuntimeError as exc:
        raise HsiDetectError(f"Resampling {cube.source} onto the first date's grid failed ({exc}).") from None
    valid = np.isfinite(data).all(axis=2)
    data[~valid] = 0.0
    return Cube(data, valid, g, cube.band_numbers, cube.band_names, cube.wavelengths, cube.wavelength_units,
                cube.source, fwhm=cube.fwhm, kind=cube.kind)


class PairSources:
    """The two dates open for windowed reads on date 1's grid. Date 2 on another grid is first
    written, window by window, as read_pair's cube of it (float32, NaN where invalid) into a
    scratch GeoTIFF, which a warped VRT then resamples as read_pair does, window by window."""

    def __init__(self, t1: RasterSource, t2: RasterSource, resampled: bool = False, vrt: Optional[str] = None):
        self.t1, self.t2, self.resampled, self._vrt = t1, t2, resampled, vrt

    def read(self, row: int, col: int, rows: int, cols: int) -> tuple:
        """(date 1 (rows, cols, bands) float32, date 2, date 1 valid, valid in both (rows, cols))."""
        c1, v1 = self.t1.read(row, col, rows, cols)
        c2, v2 = self.t2.read(row, col, rows, cols)
        return c1, c2, v1, v1 & v2

    def keep(self, positions: list):
        """Keep only the bands at these positions (0-based, of the bands open now) in both dates."""
        t1 = RasterSource(self.t1.path, [self.t1.band_numbers[i] for i in positions])
        t2 = RasterSource(self.t2.path, [self.t2.band_numbers[i] for i in positions],
                          dataset=self.t2._ds if self._vrt else None, min_bands=1 if self._vrt else 3)
        if self._vrt:
            t2.band_names = [self.t2.band_names[i] for i in positions]
            t2.wavelengths = [self.t2.wavelengths[i] for i in positions] if self.t2.wavelengths else None
        self.t1.close()
        self.t2.close()
        self.t1, self.t2 = t1, t2

    def close(self):
        self.t1.close()
        self.t2.close()
        if self._vrt:
            _gdal().Unlink(self._vrt)
            self._vrt = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def streamed_pair(t1_path: str, t2_path: str, bands, grid: str, limit: int, in_memory_bytes,
                  scratch: Callable[[str], str], progress: Optional[Progress] = None, min_bands: int = 3,
                  wavelengths: Optional[list] = None, bad_bands: str = "drop") -> Optional[PairSources]:
    """The two dates open for windowed reads when both are plain GDAL rasters and their in-memory
    processing, ``in_memory_bytes(rows, cols, bands)``, does not fit well inside the memory limit; else
    None. ``scratch(name)``: a scratch file's path, for date 2 when it must be resampled."""
    progress = progress or Progress()
    if grid not in GRID_MODES:
        raise HsiDetectError(f"Unknown grid mode '{grid}'. Use resample or refuse.")
    n1, n2 = _band_count(check_input_path(t1_path)), _band_count(check_input_path(t2_path))
    if n1 > 0 and n2 > 0 and n1 != n2:
        return None  # read_pair refuses them with its sentence
    options = dict(wavelengths=wavelengths, bad_bands=bad_bands, min_bands=min_bands, log=progress.log)
    t1 = streamed_source(t1_path, bands, limit, in_memory_bytes, **options)
    if t1 is None:
        return None
    try:
        t2 = streamed_source(t2_path, bands, 0, in_memory_bytes, **options)
        if t2 is None or t2.band_numbers != t1.band_numbers:
            t1.close()
            if t2 is not None:
                t2.close()
            return None  # a sensor product, or bands chosen differently: read_pair's path
        if t1.wavelengths and t2.wavelengths:
            gap = max(abs(a - b) for a, b in zip(t1.wavelengths, t2.wavelengths))
            if gap > WAVELENGTH_TOLERANCE:
                raise HsiDetectError(f"The two dates' band wavelengths differ (by up to {gap:.1f} nm). "
                                     "Give two images of the same sensor and bands.")
        differ = t1.georef.same_grid(t2.georef)
        if not differ:
            return PairSources(t1, t2)
        what = ", ".join(differ)
        if grid == "refuse":
            raise HsiDetectError(f"The two dates are not on the same grid ({what} differ). "
                                 "Resample date 2 onto date 1 first, or let the tool do it (grid mode 'resample').")
        progress.log(f"Date 2 is on another grid ({what} differ): resampling it onto date 1's grid (bilinear).")
        return _warped_source(t1, t2, scratch("date2.tif"), limit, progress)
    except BaseException:
        t1.close()
        raise


def _warped_source(t1: RasterSource, t2: RasterSource, path: str, limit: int, progress: Progress) -> PairSources:
    """Date 2 as read_pair resamples it, read window by window through a warped VRT."""
    from ..streaming.budget import gdal_cache, window_budget
    from .memory import plan_windows
    from .writer import RasterWriter

    gdal = _gdal()
    g = t1.georef
    nb = len(t2.band_numbers)
    plan = plan_windows(t2.height, t2.width, nb * 12, window_budget(limit, t2.block_bytes), t2.block_size)
    with gdal_cache(limit, t2.block_bytes), RasterWriter(path, t2.georef, bands=nb, nodata=float("nan")) as w:
        for i, window in enumerate(plan):
            progress.update("reading", i / len(plan), "writing date 2 for resampling")
            data, valid = t2.read(*window)
            data[~valid] = np.nan
            w.write(data, window[0], window[1])
    gt = g.geotransform or (0, 1, 0, 0, 0, -1)
    bounds = (gt[0], gt[3] + gt[5] * g.height, gt[0] + gt[1] * g.width, gt[3])
    vrt = f"/vsimem/hsi_detect_{uuid.uuid4().hex}.vrt"
    try:
        opts = gdal.WarpOptions(format="VRT", outputBounds=bounds, width=g.width, height=g.height,
                                dstSRS=g.crs_wkt or None, resampleAlg="bilinear", dstNodata=float("nan"),
                                outputType=gdal.GDT_Float32)
        ds = gdal.Warp(vrt, path, options=opts)
    except RuntimeError as exc:
        raise HsiDetectError(f"Resampling {t2.path} onto the first date's grid failed ({exc}).") from None
    source = RasterSource(t2.path, list(range(1, nb + 1)), min_bands=1, dataset=ds)
    source.band_names, source.wavelengths = t2.band_names, t2.wavelengths
    t2.close()
    return PairSources(t1, source, True, vrt)


def read_training_mask(path: str, shape: tuple, plan: Optional[list] = None) -> np.ndarray:
    """A raster whose non-zero pixels mark training (unchanged) pixels; same size as date 1.
    ``plan``: windows (row, col, rows, cols) to read a GDAL raster by, so that only the bool mask is held whole."""
    if plan is not None and path.lower().endswith(RESEARCH_SUFFIXES):
        plan = None  # a .npy/.mat array is loaded whole anyway
    if plan is None:
        arr, nodata, _ = read_single_band(path, what="training mask")
        size = arr.shape
    else:
        ds, band, nodata, georef = open_single_band(path, what="training mask")
        size = (georef.height, georef.width)
    if tuple(size) != tuple(shape):
        raise HsiDetectError(f"The training mask {path} is {size[0]} x {size[1]} pixels, but the images are "
                             f"{shape[0]} x {shape[1]}. Give a mask on the first date's grid.")

    def marked(values):
        return (values != 0) & (values != nodata) if nodata is not None else values != 0

    if plan is None:
        mask = marked(arr)
    else:
        mask = np.zeros(shape, dtype=bool)
        for row, col, rows, cols in plan:
            mask[row:row + rows, col:col + cols] = marked(band.ReadAsArray(col, row, cols, rows))
        band = ds = None
    if not mask.any():
        raise HsiDetectError(f"The training mask {path} marks no pixel. Non-zero pixels mark the unchanged pixels to train on.")
    return mask
