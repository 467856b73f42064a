"""Reading the two dates of a change-detection pair onto one grid."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import HsiDetectError
from ..progress import Progress
from .cube import Cube
from .gdal_utils import gdal as _gdal
from .paths import check_input_path
from .reader import RasterSource, read_cube, read_single_band
from .research import RESEARCH_SUFFIXES, load_arrays

GRID_MODES = ("resample", "refuse")


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
              progress: Optional[Progress] = None, min_bands: int = 3) -> Pair:
    """Read both dates with the same bands; put date 2 on date 1's grid when they differ.

    grid='resample' warps date 2 onto date 1's grid with GDAL (bilinear); grid='refuse'
    stops with a message naming what differs (CRS, extent, pixel size).
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
    t1 = read_cube(t1_path, bands, min_bands=min_bands)
    resampled = False
    with_gdal = not t2_path.lower().endswith(RESEARCH_SUFFIXES) and not t1_path.lower().endswith(RESEARCH_SUFFIXES)
    if with_gdal:
        if _check_grids(t1.georef, t2_path, bands, grid, progress, min_bands):
            t2 = _read_warped(t2_path, t1, bands, min_bands)
            resampled = True
        else:
            t2 = read_cube(t2_path, bands, min_bands=min_bands, require_valid=False)
    else:
        t2 = read_cube(t2_path, bands, min_bands=min_bands, require_valid=False)
        if t2.shape[:2] != t1.shape[:2]:
            raise HsiDetectError(f"The two dates differ in size ({t1.shape[0]} x {t1.shape[1]} and "
                                 f"{t2.shape[0]} x {t2.shape[1]}) and carry no georeference to align them.")
    valid = t1.valid & t2.valid
    if not valid.any():
        raise HsiDetectError("No pixel is valid in both dates: they do not overlap, or nodata covers one of them.")
    return Pair(t1, t2, valid, resampled)


def _check_grids(georef, t2_path: str, bands, grid: str, progress: Progress, min_bands: int) -> bool:
    """Whether date 2 must be resampled onto date 1's grid (``georef``); refused with grid='refuse'."""
    with RasterSource(t2_path, bands, min_bands) as src:
        differ = georef.same_grid(src.georef)
    if differ:
        what = ", ".join(differ)
        if grid == "refuse":
            raise HsiDetectError(f"The two dates are not on the same grid ({what} differ). "
                                 "Resample date 2 onto date 1 first, or let the tool do it (grid mode 'resample').")
        progress.log(f"Date 2 is on another grid ({what} differ): resampling it onto date 1's grid (bilinear).")
    return bool(differ)


class PairSources:
    """The two dates open for windowed reads on date 1's grid; date 2 through a warped VRT when
    its grid differs (resampled window by window as it is read, nothing held in memory or on disk)."""

    def __init__(self, t1: RasterSource, t2: RasterSource, resampled: bool, vrt: Optional[str] = None):
        self.t1, self.t2, self.resampled, self._vrt = t1, t2, resampled, vrt

    def read(self, row: int, rows: int) -> tuple:
        """(date 1 (rows, cols, bands) float32, date 2, valid in both (rows, cols))."""
        c1, v1 = self.t1.read(row, 0, rows, self.t1.width)
        c2, v2 = self.t2.read(row, 0, rows, self.t1.width)
        return c1, c2, v1, v1 & v2

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
                  progress: Optional[Progress] = None, min_bands: int = 3) -> Optional[PairSources]:
    """The two dates open for windowed reads when both are GDAL rasters and their in-memory
    processing, ``in_memory_bytes(rows, cols, bands)``, does not fit well inside the memory limit; else None."""
    from ..streaming.budget import fits

    progress = progress or Progress()
    if grid not in GRID_MODES:
        raise HsiDetectError(f"Unknown grid mode '{grid}'. Use resample or refuse.")
    for path in (t1_path, t2_path):
        if check_input_path(path).lower().endswith(RESEARCH_SUFFIXES):
            return None
    n1, n2 = _band_count(t1_path), _band_count(t2_path)
    if n1 > 0 and n2 > 0 and n1 != n2:
        return None  # read_pair refuses them with its sentence
    t1 = RasterSource(t1_path, bands, min_bands)
    if fits(in_memory_bytes(t1.height, t1.width, len(t1.band_numbers)), limit):
        t1.close()
        return None
    try:
        if not _check_grids(t1.georef, t2_path, bands, grid, progress, min_bands):
            return PairSources(t1, RasterSource(t2_path, bands, min_bands), False)
        vrt = f"/vsimem/hsi_detect_{uuid.uuid4().hex}.vrt"
        ds = _warp(t2_path, t1.georef, vrt, "VRT")
        return PairSources(t1, RasterSource(t2_path, bands, min_bands, dataset=ds), True, vrt)
    except BaseException:
        t1.close()
        raise


def _warp(path: str, g, dest: str, fmt: str):
    """Date 2 warped onto the grid ``g`` (bilinear, float32) into ``dest`` with driver ``fmt``."""
    gdal = _gdal()
    gt = g.geotransform or (0, 1, 0, 0, 0, -1)
    bounds = (gt[0], gt[3] + gt[5] * g.height, gt[0] + gt[1] * g.width, gt[3])
    try:
        src = gdal.Open(path)
        nodata = src.GetRasterBand(1).GetNoDataValue()
        opts = gdal.WarpOptions(format=fmt, outputBounds=bounds, width=g.width, height=g.height,
                                dstSRS=g.crs_wkt or None, resampleAlg="bilinear",
                                srcNodata=nodata, dstNodata=nodata if nodata is not None else float("nan"),
                                outputType=gdal.GDT_Float32)
        return gdal.Warp(dest, src, options=opts)
    except RuntimeError as exc:
        raise HsiDetectError(f"Resampling {path} onto the first date's grid failed ({exc}).") from None


def _read_warped(path: str, target: Cube, bands, min_bands) -> Cube:
    gdal = _gdal()
    g = target.georef
    mem = f"/vsimem/hsi_detect_{uuid.uuid4().hex}.tif"
    try:
        ds = _warp(path, g, mem, "GTiff")
        with RasterSource(path, bands, min_bands, dataset=ds) as s:
            data, valid = s.read()
            cube = Cube(data, valid, g, s.band_numbers, s.band_names, s.wavelengths, s.wavelength_units, path)
        ds = None
        return cube
    finally:
        gdal.Unlink(mem)


def read_training_mask(path: str, shape: tuple) -> np.ndarray:
    """A raster whose non-zero pixels mark training (unchanged) pixels; same size as date 1."""
    arr, nodata, _ = read_single_band(path, what="training mask")
    if arr.shape != tuple(shape):
        raise HsiDetectError(f"The training mask {path} is {arr.shape[0]} x {arr.shape[1]} pixels, but the images are "
                             f"{shape[0]} x {shape[1]}. Give a mask on the first date's grid.")
    mask = arr != 0
    if nodata is not None:
        mask &= arr != nodata
    if not mask.any():
        raise HsiDetectError(f"The training mask {path} marks no pixel. Non-zero pixels mark the unchanged pixels to train on.")
    return mask
