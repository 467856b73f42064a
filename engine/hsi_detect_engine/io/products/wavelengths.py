"""Wavelengths: units, ranges such as '400-1340,1460-1790', and which bands to drop.

Water-vapour windows dropped with ``bad_bands='drop'`` (nm): 1340-1460 and 1790-1960.
These are the two atmospheric absorption bands around 1.4 and 1.9 um where the
atmosphere absorbs nearly all sunlight, so a reflectance product holds mostly noise there;
EMIT's own processor flags 1325-1435 and 1770-1962 nm for the same reason and EnMAP
delivers bands between 1320 and 1469 nm empty. The weaker absorptions at 940 and 1130 nm
keep enough signal and are kept.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from ...errors import HsiDetectError

WATER_VAPOUR_WINDOWS = ((1340.0, 1460.0), (1790.0, 1960.0))
BAD_BAND_MODES = ("drop", "keep")
_MICRO = ("micrometers", "micrometer", "micrometres", "micrometre", "microns", "micron", "um", "µm", "μm")
_NANO = ("nanometers", "nanometer", "nanometres", "nanometre", "nm")


def nanometre_factor(wavelengths: Sequence[float], units: str) -> float:
    """1000 for micrometres, else 1. Without units, wavelengths all below 20 are taken as micrometres."""
    u = (units or "").strip().lower()
    if u in _MICRO or (u not in _NANO and len(wavelengths) and max(float(v) for v in wavelengths) < 20):
        return 1000.0
    return 1.0


def to_nanometres(values: Optional[Sequence[float]], units: str, like: Optional[Sequence[float]] = None) -> Optional[list]:
    """Values (wavelengths, or FWHM when ``like`` gives the wavelengths) in nm."""
    if values is None or len(values) == 0:
        return None
    factor = nanometre_factor(like if like is not None else values, units)
    return [float(v) * factor for v in values]


def parse_ranges(text: str) -> list:
    """Parse '400-1340,1460-1790' (nm) into [(400.0, 1340.0), (1460.0, 1790.0)]."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)", part)
        if not m:
            raise HsiDetectError(f"'{part}' is not a wavelength range. Write ranges in nanometres such as "
                                 "400-1340,1460-1790.")
        lo, hi = float(m.group(1)), float(m.group(2))
        if hi < lo:
            raise HsiDetectError(f"Wavelength range '{part}' runs backwards. Write it as {m.group(2)}-{m.group(1)}.")
        out.append((lo, hi))
    if not out:
        raise HsiDetectError("No wavelength range given. Write ranges in nanometres such as 400-1340,1460-1790.")
    return out


def in_water_vapour(wavelength: float) -> bool:
    return any(lo <= wavelength <= hi for lo, hi in WATER_VAPOUR_WINDOWS)


def describe(numbers: list, wavelengths: Optional[list], indices: list) -> str:
    """'bands 3-5 (1350-1370 nm), 9 (1500 nm)' for log lines: runs of consecutive band numbers."""
    runs, run = [], []
    for i in indices:
        if run and numbers[i] != numbers[run[-1]] + 1:
            runs.append(run)
            run = []
        run.append(i)
    runs += [run] if run else []
    parts = []
    for r in runs:
        text = f"{numbers[r[0]]}" if len(r) == 1 else f"{numbers[r[0]]}-{numbers[r[-1]]}"
        if wavelengths:
            w = [wavelengths[i] for i in r]
            text += f" ({w[0]:.0f} nm)" if len(r) == 1 else f" ({min(w):.0f}-{max(w):.0f} nm)"
        parts.append(text)
    return f"band{'s' if len(indices) > 1 else ''} " + ", ".join(parts)


def choose_bands(numbers: list, wavelengths: Optional[list], good: Optional[list], ranges: Optional[list],
                 bad_bands: str, path: str, log) -> list:
    """Indices (into ``numbers``) of the bands to read, after wavelength ranges and bad bands.

    ``good`` holds the product's own flags (None: no flags); each drop is logged.
    """
    if bad_bands not in BAD_BAND_MODES:
        raise HsiDetectError(f"Unknown bad-band mode '{bad_bands}'. Use drop or keep.")
    keep = list(range(len(numbers)))
    if ranges:
        if not wavelengths:
            raise HsiDetectError(f"{path} carries no wavelengths, so bands cannot be chosen by wavelength. "
                                 "Choose them by number instead.")
        inside = [i for i in keep if any(lo <= wavelengths[i] <= hi for lo, hi in ranges)]
        if not inside:
            raise HsiDetectError(f"No band of {path} lies in the wavelength ranges given; its bands span "
                                 f"{min(wavelengths):.0f}-{max(wavelengths):.0f} nm.")
        outside = [i for i in keep if i not in inside]
        if outside:
            log(f"Wavelength ranges: left out {describe(numbers, wavelengths, outside)}.")
        keep = inside
    if bad_bands == "drop":
        if good is not None:
            flagged = [i for i in keep if not good[i]]
            if flagged:
                log(f"Dropped {describe(numbers, wavelengths, flagged)} flagged bad by the product.")
                keep = [i for i in keep if good[i]]
        if wavelengths:
            water = [i for i in keep if in_water_vapour(wavelengths[i])]
            if water:
                windows = " and ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in WATER_VAPOUR_WINDOWS)
                log(f"Dropped {describe(numbers, wavelengths, water)} in the water-vapour absorption windows "
                    f"({windows} nm).")
                keep = [i for i in keep if i not in water]
    return keep


def band_summary(cube) -> str:
    """'Using 190 bands, 418-2445 nm (EnMAP L2A).' for the run log."""
    text = f"Using {cube.shape[2]} bands"
    if cube.wavelengths:
        text += f", {min(cube.wavelengths):.0f}-{max(cube.wavelengths):.0f} nm"
    return text + (f" ({cube.kind})." if cube.kind else ".")


def wavelength_metadata(cube) -> dict:
    """GeoTIFF metadata naming the wavelengths (nm) an output was computed from; empty without them."""
    if not cube.wavelengths:
        return {}
    return {"wavelengths": ",".join(f"{w:.3f}".rstrip("0").rstrip(".") for w in cube.wavelengths),
            "wavelength_units": "nm"}
