"""EnMAP L2A: the product folder, its METADATA.XML or its SPECTRAL_IMAGE file.

Read (products.md, section B): band centres, FWHM, gain and offset from
``specific/bandCharacterisation/bandID`` of METADATA.XML; the 224-band SPECTRAL_IMAGE
(GeoTIFF, ENVI or JPEG2000) through GDAL with its own grid; DN -32768 as nodata;
reflectance = DN * gain + offset. Flagged bad: bands whose ``product/bandStatistics`` mean is
-1000000 (delivered empty), and in the VNIR/SWIR overlap the VNIR bands at or above the
first SWIR wavelength (``expectedChannelsList``; SWIR kept, EnMAP-Box's default), so
wavelengths ascend. With ``mask_clouds`` the QL_QUALITY_CLOUD, _CLOUDSHADOW and _HAZE
layers (non-zero = flagged) mark pixels invalid.
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET
from typing import Optional

import numpy as np

from ...errors import HsiDetectError
from .source import Source

IMAGE_SUFFIXES = (".TIF", ".GEOTIFF", ".BSQ", ".BIL", ".BIP", ".JP2", "_COG.tiff", "_COG.TIF", ".tif")
NODATA = -32768
EMPTY_BAND_MEAN = "-1000000"
CLOUD_LAYERS = ("QL_QUALITY_CLOUD", "QL_QUALITY_CLOUDSHADOW", "QL_QUALITY_HAZE")
_NAME = re.compile(r"ENMAP01-_*(L[0-9][A-Z])-", re.IGNORECASE)
EXPECTED = "EnMAP L2A (the product folder, its METADATA.XML or its SPECTRAL_IMAGE file)"


def is_enmap_name(name: str) -> bool:
    return _NAME.search(os.path.basename(name)) is not None


def find_metadata(path: str) -> Optional[str]:
    """The METADATA.XML of a product folder (or of the folder one level down), or None."""
    for pattern in ("*-METADATA.XML", "*/*-METADATA.XML", "*METADATA.XML"):
        found = sorted(glob.glob(os.path.join(path, pattern)))
        if found:
            return found[0]
    return None


def _level(path: str) -> str:
    m = _NAME.search(os.path.basename(os.path.normpath(path)))
    return m.group(1).upper() if m else ""


class EnmapSource(Source):
    kind = "EnMAP L2A"

    def __init__(self, path: str, mask_clouds: bool = False):
        self.path = path
        level = _level(path)
        if level and level != "L2A":
            raise HsiDetectError(f"{path} is an EnMAP {level} product; this tool reads {EXPECTED}.")
        if os.path.isdir(path):
            xml = find_metadata(path)
            if xml is None:
                raise HsiDetectError(f"{path} is a folder without an EnMAP METADATA.XML; give an image file or {EXPECTED}.")
        elif path.upper().endswith(".XML"):
            xml = path
        else:
            xml = re.sub(r"-SPECTRAL_IMAGE.*$", "-METADATA.XML", path, flags=re.IGNORECASE)
            if xml == path or not os.path.isfile(xml):
                raise HsiDetectError(f"{path} is named like an EnMAP product but its METADATA.XML is not beside it "
                                     f"({os.path.basename(xml)}); keep the product folder as downloaded.")
        level = _level(xml) or level
        if level and level != "L2A":
            raise HsiDetectError(f"{path} is an EnMAP {level} product; this tool reads {EXPECTED}.")
        self.xml, self.prefix = xml, xml[: -len("-METADATA.XML")] if xml.upper().endswith("-METADATA.XML") else ""
        self._parse(xml)
        self.image = path if os.path.isfile(path) and "SPECTRAL_IMAGE" in path.upper() else self._find("-SPECTRAL_IMAGE")
        from .source import GdalSource

        self._gdal = GdalSource(self.image)
        if self._gdal.count != len(self.wavelengths):
            raise HsiDetectError(f"{self.image} has {self._gdal.count} bands but {os.path.basename(xml)} describes "
                                 f"{len(self.wavelengths)}: the product is incomplete or mixed. Download it again.")
        self.georef = self._gdal.georef
        self.band_names = [f"Band {i + 1} ({w:.1f} nm)" for i, w in enumerate(self.wavelengths)]
        self.mask_clouds = mask_clouds

    def _find(self, suffix: str) -> str:
        for ext in IMAGE_SUFFIXES:
            for candidate in (self.prefix + suffix + ext, self.prefix + suffix + ext.lower()):
                if os.path.isfile(candidate):
                    return candidate
        raise HsiDetectError(f"The EnMAP product {os.path.dirname(self.xml)} lacks its {suffix.strip('-')} file "
                             f"({os.path.basename(self.prefix)}{suffix}.TIF); keep the product folder as downloaded.")

    def _parse(self, xml: str):
        try:
            root = ET.parse(xml).getroot()
        except (ET.ParseError, OSError) as exc:
            raise HsiDetectError(f"{xml} is not a readable XML file ({exc}): the product is damaged. "
                                 "Download it again.") from None
        bands = root.findall("specific/bandCharacterisation/bandID")
        if not bands:
            if root.find("specific/vnirProductQuality") is not None or "L1" in (root.findtext("base/level") or ""):
                raise HsiDetectError(f"{xml} describes an EnMAP product without a band characterisation of the "
                                     f"reflectance image (not L2A); this tool reads {EXPECTED}.")
            raise HsiDetectError(f"{xml} is not an EnMAP metadata file (no specific/bandCharacterisation); "
                                 f"this tool reads {EXPECTED}.")
        try:
            bands = sorted(bands, key=lambda b: int(b.get("number")))
            self.wavelengths = [float(b.findtext("wavelengthCenterOfBand")) for b in bands]
            self.fwhm = [float(b.findtext("FWHMOfBand")) for b in bands]
            self.gain = np.array([float(b.findtext("GainOfBand") or 1e-4) for b in bands], dtype=np.float32)
            self.offset = np.array([float(b.findtext("OffsetOfBand") or 0) for b in bands], dtype=np.float32)
        except (TypeError, ValueError):
            raise HsiDetectError(f"{xml}: a band's wavelength, FWHM, gain or offset is missing or not a number; "
                                 "the metadata is damaged. Download the product again.") from None
        good = [True] * len(bands)
        for stat in root.findall("product/bandStatistics/bandID"):
            n = int(stat.get("number", 0))
            if 1 <= n <= len(good) and (stat.findtext("mean") or "").strip() == EMPTY_BAND_MEAN:
                good[n - 1] = False
        vnir = _channels(root.findtext("specific/vnirProductQuality/expectedChannelsList"))
        swir = _channels(root.findtext("specific/swirProductQuality/expectedChannelsList"))
        if vnir and swir:
            first_swir = min(self.wavelengths[n - 1] for n in swir if 1 <= n <= len(good))
            for n in vnir:
                if 1 <= n <= len(good) and self.wavelengths[n - 1] >= first_swir:
                    good[n - 1] = False
        self.good = good

    def read(self, indices: list) -> np.ndarray:
        from ..reader import RasterSource

        with RasterSource(self.image, [i + 1 for i in indices], min_bands=1) as src:
            src.scale = 1.0
            dn = src.read_values()
        dn[dn == NODATA] = np.nan
        return dn * self.gain[indices] + self.offset[indices]

    def invalid_pixels(self) -> Optional[np.ndarray]:
        if not self.mask_clouds:
            return None
        from ..reader import read_single_band

        flagged = np.zeros((self.georef.height, self.georef.width), dtype=bool)
        for layer in CLOUD_LAYERS:
            arr, _, _ = read_single_band(self._find("-" + layer))
            if arr.shape != flagged.shape:
                raise HsiDetectError(f"The {layer} layer of {self.path} is {arr.shape[0]} x {arr.shape[1]} pixels, "
                                     f"not the image's {flagged.shape[0]} x {flagged.shape[1]}: the product is damaged.")
            flagged |= arr != 0
        return flagged


def _channels(text: Optional[str]) -> list:
    return [int(t) for t in re.findall(r"\d+", text or "")]
