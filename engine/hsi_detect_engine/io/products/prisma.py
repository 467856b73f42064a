"""PRISMA L2D (.he5, HDF-EOS5): both cubes joined in wavelength order on the UTM grid.

Read (products.md, section C): ``HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields/VNIR_Cube`` and
``SWIR_Cube`` (uint16 DN, dimension order rows, bands, cols); band centres and FWHM from
the root attributes ``List_Cw_Vnir``/``List_Fwhm_Vnir`` (and _Swir), stored in descending
order, slots with centre 0 or flag 0 (``List_Cw_*_Flags``) unused; reflectance =
Min + DN * (Max - Min) / 65535 with ``L2ScaleVnirMin/Max`` (and Swir); in the VNIR/SWIR
overlap the SWIR bands are kept and the VNIR bands at or above the first SWIR wavelength
dropped (prismaread's default); a pixel whose DN are all 0 is nodata. Grid: ``Epsg_Code``,
30 m pixels, the UL corner pixel's centre at ``Product_ULcorner_easting/northing``.
"""

from __future__ import annotations

import numpy as np

from ...errors import HsiDetectError
from ..cube import Georef
from .source import Source

SWATH = "HDFEOS/SWATHS/PRS_L2D_HCO"
FIELDS = SWATH + "/Data Fields/"
PIXEL = 30.0
EXPECTED = "PRISMA L2D (PRS_L2D_STD_*.he5)"


def _attr(f, name):
    if name not in f.attrs:
        raise HsiDetectError(f"{f.filename} lacks the PRISMA attribute {name}: the file is damaged or not a "
                             f"standard product; this tool reads {EXPECTED}.")
    value = f.attrs[name]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value


class PrismaSource(Source):
    kind = "PRISMA L2D"

    def __init__(self, path: str, f):
        self.path, self._f = path, f
        swaths = list(f["HDFEOS/SWATHS"].keys())
        if SWATH not in f:
            level = next((s.split("_")[1] for s in swaths if s.startswith("PRS_")), "another level")
            raise HsiDetectError(f"{path} is a PRISMA {level} product ({', '.join(swaths)}); this tool reads "
                                 f"{EXPECTED}.")
        for cube in ("VNIR_Cube", "SWIR_Cube"):
            if FIELDS + cube not in f:
                raise HsiDetectError(f"{path} lacks {FIELDS}{cube}: the file is damaged or incomplete. Download it again.")
        self.bands = []  # (cube name, slot along the band axis, wavelength, fwhm), ascending wavelength
        sensors = {}
        for sensor in ("Vnir", "Swir"):
            cw = np.asarray(_attr(f, f"List_Cw_{sensor}"), dtype=float).ravel()
            fw = np.asarray(_attr(f, f"List_Fwhm_{sensor}"), dtype=float).ravel()
            flags = np.asarray(f.attrs.get(f"List_Cw_{sensor}_Flags", np.ones_like(cw))).ravel()
            cube = f[FIELDS + sensor.upper() + "_Cube"]
            if cube.ndim != 3 or cube.shape[1] != cw.size:
                raise HsiDetectError(f"{path}: {sensor.upper()}_Cube is {cube.shape}, but {cw.size} band centres "
                                     "are listed; the file is damaged or not a standard L2D product.")
            lo, hi = float(_attr(f, f"L2Scale{sensor}Min")), float(_attr(f, f"L2Scale{sensor}Max"))
            sensors[sensor] = [(sensor.upper() + "_Cube", int(s), cw[s], fw[s], lo, hi)
                               for s in range(cw.size) if cw[s] != 0 and flags[s] != 0]
        first_swir = min(b[2] for b in sensors["Swir"])
        joined = [b for b in sensors["Vnir"] if b[2] < first_swir] + sensors["Swir"]
        self.bands = sorted(joined, key=lambda b: b[2])
        self.wavelengths = [float(b[2]) for b in self.bands]
        self.fwhm = [float(b[3]) for b in self.bands]
        self.band_names = [f"{b[0][:4]} {b[2]:.1f} nm" for b in self.bands]
        rows, _, cols = f[FIELDS + "VNIR_Cube"].shape
        if f[FIELDS + "SWIR_Cube"].shape[::2] != (rows, cols):
            raise HsiDetectError(f"{path}: the VNIR and SWIR cubes differ in size; the file is damaged.")
        self.georef = Georef(rows, cols, self._geotransform(), self._crs())

    def _geotransform(self) -> tuple:
        e = float(_attr(self._f, "Product_ULcorner_easting"))
        n = float(_attr(self._f, "Product_ULcorner_northing"))
        return (e - PIXEL / 2, PIXEL, 0.0, n + PIXEL / 2, 0.0, -PIXEL)

    def _crs(self) -> str:
        from osgeo import osr

        code = _attr(self._f, "Epsg_Code")
        srs = osr.SpatialReference()
        try:
            srs.ImportFromEPSG(int(float(np.asarray(code).ravel()[0]) if not isinstance(code, str) else float(code)))
        except (RuntimeError, ValueError, TypeError):
            raise HsiDetectError(f"{self.path}: Epsg_Code '{code}' is not an EPSG code; the file is damaged.") from None
        return srs.ExportToWkt()

    def read(self, indices: list) -> np.ndarray:
        rows, cols = self.georef.height, self.georef.width
        out = np.empty((rows, cols, len(indices)), dtype=np.float32)
        all_zero = np.ones((rows, cols), dtype=bool)
        try:
            for name in ("VNIR_Cube", "SWIR_Cube"):
                mine = [(k, self.bands[i]) for k, i in enumerate(indices) if self.bands[i][0] == name]
                if not mine:
                    continue
                slots = sorted({b[1] for _, b in mine})
                dn = self._f[FIELDS + name][:, slots, :]  # (rows, bands, cols)
                for k, b in mine:
                    band = dn[:, slots.index(b[1]), :]
                    all_zero &= band == 0
                    out[:, :, k] = b[4] + band.astype(np.float32) * np.float32((b[5] - b[4]) / 65535.0)
        except OSError as exc:
            raise HsiDetectError(f"Reading {self.path} failed ({str(exc).splitlines()[0]}): the file is damaged or "
                                 "incomplete. Download it again.") from None
        out[all_zero] = np.nan
        return out
