"""Sensor products as users download them: detection and the common read.

``open_source(path)`` recognises, by content first and name second, an EnMAP L2A product
(folder, METADATA.XML or SPECTRAL_IMAGE file), a PRISMA L2D .he5, an EMIT L2A reflectance
.nc and an ENVI header; anything else is a plain GDAL raster. A product of another level,
or a damaged file, is refused with one sentence. ``read_source`` then chooses bands (by
number, by wavelength, bad bands), reads them and drops any band that holds no valid pixel.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import numpy as np

from ...errors import HsiDetectError
from ..bands import select_bands
from ..cube import Cube
from .source import GdalSource, Source
from .wavelengths import choose_bands, describe

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_source(path: str, mask_clouds: bool = False) -> Source:
    """The reader for ``path``: a sensor product's, or GDAL's for any other raster."""
    from . import enmap, envi

    if os.path.isdir(path):
        return enmap.EnmapSource(path, mask_clouds)
    with open(path, "rb") as f:
        head = f.read(8)
    name = os.path.basename(path).upper()
    if head == HDF5_SIGNATURE:
        return _open_hdf5(path)
    if name.endswith((".HE5", ".NC", ".H5", ".HDF5")) and (name.startswith(("PRS_", "EMIT_"))):
        raise HsiDetectError(f"{path} is named like a {'PRISMA' if name.startswith('PRS_') else 'EMIT'} product "
                             "but is not an HDF5/netCDF-4 file: it is damaged or incomplete. Download it again.")
    if head.startswith(b"ENVI"):
        return envi.open_header(path)
    if enmap.is_enmap_name(name) or (name.endswith(".XML") and not _is_vrt(path)):
        return enmap.EnmapSource(path, mask_clouds)
    return GdalSource(path)


def _is_vrt(path: str) -> bool:
    with open(path, "rb") as f:
        return b"<VRTDataset" in f.read(4096)


def _open_hdf5(path: str) -> Source:
    import h5py

    from . import emit, prisma

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise HsiDetectError(f"{path} is an HDF5 file that cannot be opened ({str(exc).splitlines()[0]}): it is "
                             "damaged or incomplete. Download it again.") from None
    try:
        if "HDFEOS" in f and any(str(k).startswith("PRS_") for k in f.get("HDFEOS/SWATHS", {}).keys()):
            return prisma.PrismaSource(path, f)
        if any(k in f for k in emit.KNOWN_VARIABLES) or emit.is_emit(f):
            return emit.EmitSource(path, f)
    except BaseException:
        f.close()
        raise
    f.close()
    return GdalSource(path)


def read_source(source: Source, bands: Optional[Sequence[int]], ranges: Optional[list], bad_bands: str,
                min_bands: int, log: Callable[[str], None]) -> Cube:
    """Choose the bands, read them and drop bands with no valid pixel: the engine's cube."""
    path = source.path
    chosen = [n - 1 for n in chosen_bands(source, bands, ranges, bad_bands, min_bands, log)]
    data = source.read(chosen)
    finite = np.isfinite(data)
    empty = [i for i in range(len(chosen)) if not finite[:, :, i].any()]
    if empty and len(empty) < len(chosen):
        log(f"Dropped {describe([n + 1 for n in chosen], pick_list(source.wavelengths, chosen), empty)}: "
            "nodata everywhere.")
        full = [i for i in range(len(chosen)) if i not in empty]
        data, finite, chosen = data[:, :, full], finite[:, :, full], [chosen[i] for i in full]
        _check_count(path, len(chosen), min_bands)
    valid = finite.all(axis=2)
    extra = source.invalid_pixels()
    if extra is not None:
        valid &= ~extra
    data[~valid] = 0.0
    return Cube(data, valid, source.georef, [i + 1 for i in chosen], pick_list(source.band_names, chosen),
                pick_list(source.wavelengths, chosen), "nm" if source.wavelengths else source.wavelength_units,
                path, fwhm=pick_list(source.fwhm, chosen), kind=source.kind)


def chosen_bands(source: Source, bands: Optional[Sequence[int]], ranges: Optional[list], bad_bands: str,
                 min_bands: int, log: Callable[[str], None]) -> list:
    """The 1-based numbers of the bands to read: by number, by wavelength, bad bands left out."""
    path = source.path
    numbers = select_bands(bands, source.count, path)
    idx = [n - 1 for n in numbers]
    if source.wavelengths:
        source.wavelengths = [round(float(w), 3) for w in source.wavelengths]
    waves, good = pick_list(source.wavelengths, idx), pick_list(source.good, idx)
    keep = choose_bands(numbers, waves, good, ranges, bad_bands, path, log)
    _check_count(path, len(keep), min_bands)
    return [numbers[i] for i in keep]


def pick_list(values, indices):
    return [values[i] for i in indices] if values else None


def _check_count(path: str, n: int, min_bands: int):
    if n < min_bands:
        raise HsiDetectError(f"{path}: {n} band(s) left after band selection, but a hyperspectral cube needs at least "
                             f"{min_bands}. Select more bands (or keep the bad bands).")
