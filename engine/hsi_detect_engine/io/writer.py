"""Writing result rasters: tiled, compressed GeoTIFFs with a .qml style beside each.

The writers write to the path they are given. A run writes to its OutputTransaction's
temporary paths, which the transaction renames into place once every output is complete.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import HsiDetectError
from .cube import Georef
from .gdal_utils import gdal as _gdal, short_error as _short
from .styles import binary_qml, score_qml, write_qml
from .transaction import final_name

SCORE_NODATA = -9999.0
CLASS_NODATA = 255

_GDAL_TYPES = {"float32": "Float32", "float64": "Float64", "uint8": "Byte", "int16": "Int16", "uint16": "UInt16", "int32": "Int32"}


class RasterWriter:
    """Write a GeoTIFF, whole or block by block. Use as a context manager: leaving the block
    closes the file, and a write that failed (a full disk) raises HsiDetectError."""

    def __init__(self, path: str, georef: Georef, *, bands: int = 1, dtype: str = "float32",
                 nodata: Optional[float] = None, band_names: Optional[Sequence[str]] = None,
                 metadata: Optional[dict] = None):
        self.path = path
        self.georef = georef
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.bands = bands
        gdal = _gdal()
        driver = gdal.GetDriverByName("GTiff")
        predictor = "3" if self.dtype.kind == "f" else "2"
        options = ["TILED=YES", "COMPRESS=DEFLATE", f"PREDICTOR={predictor}", "BIGTIFF=IF_SAFER"]
        with self._failure("create"):
            self._ds = driver.Create(self.path, georef.width, georef.height, bands,
                                     getattr(gdal, "GDT_" + _GDAL_TYPES[self.dtype.name]), options)
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

    def _failure(self, what: str):
        return _GdalFailure(f"Cannot {what} {final_name(self.path)}")

    def write(self, array: np.ndarray, row: int = 0, col: int = 0):
        """Write a (rows, cols) or (rows, cols, bands) block at (row, col)."""
        arr = np.asarray(array)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.shape[2] != self.bands:
            raise ValueError(f"block has {arr.shape[2]} bands, raster has {self.bands}")
        with self._failure("write"):
            for i in range(self.bands):
                self._ds.GetRasterBand(i + 1).WriteArray(arr[:, :, i].astype(self.dtype, copy=False), col, row)

    def close(self):
        """Flush and close; then read the file back, so that a file GDAL failed to finish is caught
        (GDAL 3.10 reports a full disk met while closing a compressed GeoTIFF only as a message)."""
        if self._ds is None:
            return
        with self._failure("write"):
            self._ds.FlushCache()
            self._ds = None
            written = _gdal().Open(self.path)
            for band in range(1, self.bands + 1):
                written.GetRasterBand(band).Checksum()  # reads every block: a file cut short fails here

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._ds = None
        return False


class _GdalFailure:
    """Turns GDAL's RuntimeError (disk full, permission denied) into one sentence for the user."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, RuntimeError):
            raise HsiDetectError(f"{self.what} ({_short(exc)}). Check that the folder is writable and has "
                                 "enough free space; earlier outputs were left as they were.") from None
        return False


def write_raster(path: str, array: np.ndarray, georef: Georef, *, valid: Optional[np.ndarray] = None,
                 nodata: Optional[float] = None, dtype: str = "float32",
                 band_names: Optional[Sequence[str]] = None, metadata: Optional[dict] = None) -> str:
    """Write a whole (rows, cols[, bands]) array; invalid pixels take the nodata value."""
    arr = np.asarray(array)
    if valid is not None and not valid.all():
        if nodata is None:
            nodata = -9999.0 if np.dtype(dtype).kind == "f" else 255
        arr = arr.astype(dtype, copy=True)
        arr[~valid] = nodata
    bands = 1 if arr.ndim == 2 else arr.shape[2]
    with RasterWriter(path, georef, bands=bands, dtype=dtype, nodata=nodata, band_names=band_names,
                      metadata=metadata) as w:
        w.write(arr)
    return path


def write_score(path: str, score: np.ndarray, valid: np.ndarray, georef: Georef, name: str = "score",
                metadata: dict = None, style: Optional[str] = None) -> str:
    """A float32 score map and its .qml (at ``style``, default beside it); invalid pixels are nodata (-9999)."""
    write_raster(path, score.astype(np.float32), georef, valid=valid, nodata=SCORE_NODATA,
                 dtype="float32", band_names=[name], metadata=metadata)
    low, high = style_range(score[valid])
    write_qml(path, score_qml(low, high, name), style)
    return path


def style_range(values: np.ndarray, lower: float = 2.0, upper: float = 98.0) -> tuple:
    """The colour ramp's range: the 2nd and 98th percentiles of the valid scores, so that a long
    tail of a few extreme pixels does not leave the rest of the map dark; the full range when
    the percentiles coincide."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    low, high = (float(x) for x in np.percentile(v, [lower, upper]))
    if not high > low:
        low, high = float(v.min()), float(v.max())
    return low, high


def write_binary(path: str, classes: np.ndarray, georef: Georef, label: str = "detected",
                 metadata: dict = None, style: Optional[str] = None) -> str:
    """A uint8 map (1 detected, 0 background, 255 nodata) and its .qml (at ``style``, default beside it)."""
    write_raster(path, classes.astype(np.uint8), georef, nodata=CLASS_NODATA, dtype="uint8",
                 band_names=[label], metadata=metadata)
    write_qml(path, binary_qml(label), style)
    return path
