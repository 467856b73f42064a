"""EMIT L2A surface reflectance (.nc, netCDF-4 = HDF5), orthorectified with its GLT.

Read (products.md, section A): ``reflectance`` (downtrack, crosstrack, bands) float32 with
fill -9999; ``sensor_band_parameters/wavelengths``, ``fwhm`` (nm) and ``good_wavelengths``
(0 = bad band); the geometry lookup table ``location/glt_x``/``glt_y`` (ortho_y, ortho_x),
1-based swath sample/line, 0 = no data; the map grid from the root attributes
``geotransform`` and ``spatial_ref`` (WGS-84). Output cell (r, c) takes the swath pixel
(glt_y - 1, glt_x - 1), as EMIT's own ``apply_glt`` does.
"""

from __future__ import annotations

import numpy as np

from ...errors import HsiDetectError
from ..cube import Georef
from .source import Source

FILL = -9999.0
EXPECTED = "EMIT L2A surface reflectance (EMIT_L2A_RFL_*.nc)"
# Variables of the other EMIT products, named so that a wrong file gets a clear sentence.
OTHER_PRODUCTS = {"radiance": "an EMIT L1B radiance file", "reflectance_uncertainty": "an EMIT L2A reflectance "
                  "uncertainty file", "mask": "an EMIT L2A mask file", "obs": "an EMIT L1B observation file",
                  "group_1_band_depth": "an EMIT L2B mineral file"}
KNOWN_VARIABLES = ("reflectance",) + tuple(OTHER_PRODUCTS)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SU":
        return "".join(v.decode() if isinstance(v, bytes) else str(v) for v in value.ravel())
    return str(value)


def is_emit(f) -> bool:
    return any("EMIT" in _text(f.attrs.get(k, "")).upper() for k in ("title", "instrument", "sensor", "platform"))


class EmitSource(Source):
    kind = "EMIT L2A"

    def __init__(self, path: str, f):
        self.path, self._f = path, f
        if "reflectance" not in f:
            what = next((text for var, text in OTHER_PRODUCTS.items() if var in f), "an EMIT file without reflectance")
            raise HsiDetectError(f"{path} is {what}; this tool reads {EXPECTED}.")
        for name in ("sensor_band_parameters/wavelengths", "location/glt_x", "location/glt_y"):
            if name not in f:
                raise HsiDetectError(f"{path} lacks {name}: the file is damaged or not a standard EMIT L2A product "
                                     "(an orthorectified copy made by other tools is read as a plain raster).")
        try:
            refl = f["reflectance"]
            self.wavelengths = [float(w) for w in f["sensor_band_parameters/wavelengths"][()]]
            self.fwhm = ([float(w) for w in f["sensor_band_parameters/fwhm"][()]]
                         if "sensor_band_parameters/fwhm" in f else None)
            self.good = ([bool(g == 1) for g in f["sensor_band_parameters/good_wavelengths"][()]]
                         if "sensor_band_parameters/good_wavelengths" in f else None)
            self.glt_x = np.asarray(f["location/glt_x"][()], dtype=np.int64)
            self.glt_y = np.asarray(f["location/glt_y"][()], dtype=np.int64)
        except OSError as exc:
            raise HsiDetectError(f"Reading {path} failed ({str(exc).splitlines()[0]}): the file is damaged or "
                                 "incomplete. Download it again.") from None
        if refl.ndim != 3 or refl.shape[2] != len(self.wavelengths) or self.glt_x.shape != self.glt_y.shape:
            raise HsiDetectError(f"{path}: reflectance is {refl.shape} with {len(self.wavelengths)} wavelengths and a "
                                 f"GLT of {self.glt_x.shape}; the file is damaged or not a standard EMIT L2A product.")
        gt = np.asarray(f.attrs.get("geotransform", []), dtype=float).ravel()
        if gt.size != 6:
            raise HsiDetectError(f"{path} lacks the 6-number geotransform attribute of its GLT grid: the file is "
                                 "damaged or not a standard EMIT L2A product.")
        self.swath_shape = refl.shape[:2]
        self.band_names = [f"{w:.1f} nm" for w in self.wavelengths]
        rows, cols = self.glt_x.shape
        self.georef = Georef(rows, cols, tuple(float(v) for v in gt), self._crs())

    def _crs(self) -> str:
        from osgeo import osr

        srs = osr.SpatialReference()
        wkt = _text(self._f.attrs.get("spatial_ref", ""))
        try:
            if wkt:
                srs.ImportFromWkt(wkt)
            else:
                srs.ImportFromEPSG(4326)
        except RuntimeError:
            srs.ImportFromEPSG(4326)
        return srs.ExportToWkt()

    def read(self, indices: list) -> np.ndarray:
        """Orthorectify: cell (r, c) takes swath pixel (glt_y-1, glt_x-1); 0 (or outside) is nodata."""
        lines, samples = self.swath_shape
        y, x = self.glt_y - 1, self.glt_x - 1
        hit = (self.glt_x != 0) & (self.glt_y != 0) & (y >= 0) & (y < lines) & (x >= 0) & (x < samples)
        out = np.full(self.glt_x.shape + (len(indices),), np.nan, dtype=np.float32)
        order = np.argsort(indices)
        sorted_idx = [indices[i] for i in order]
        try:
            swath = self._f["reflectance"][:, :, sorted_idx] if sorted_idx != list(range(len(self.wavelengths))) \
                else self._f["reflectance"][()]
        except OSError as exc:
            raise HsiDetectError(f"Reading {self.path} failed ({str(exc).splitlines()[0]}): the file is damaged or "
                                 "incomplete. Download it again.") from None
        swath = np.asarray(swath, dtype=np.float32)
        swath[swath == FILL] = np.nan
        values = np.empty_like(swath[y[hit], x[hit]])
        values[:, order] = swath[y[hit], x[hit]]
        out[hit] = values
        return out
