"""Choosing HyperNet's training pixels: pixels believed unchanged, by a classical pre-detection.

HyperNet learns features that agree between the two dates at unchanged pixels, so it
must be told which pixels are unchanged. The authors loaded precomputed index files;
here a pre-detection on the two dates, each standardised per band, picks them:

- 'cva-fraction': the given fraction of valid pixels with the smallest change-vector magnitude;
- 'cva-otsu': the pixels whose change-vector magnitude lies below its Otsu threshold;
- 'angle-fraction': the given fraction with the smallest spectral angle;
- 'all': every valid pixel (no pre-detection; changed pixels are then trained as unchanged).

A user-supplied mask replaces the rule.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..classical import cva_magnitude, spectral_angle
from ..errors import HsiDetectError
from ..thresholds import otsu_threshold

RULES = ("cva-fraction", "cva-otsu", "angle-fraction", "all")


def select_training_pixels(t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, rule: str = "cva-fraction",
                           fraction: float = 0.5, mask: Optional[np.ndarray] = None,
                           cva: Optional[np.ndarray] = None) -> np.ndarray:
    """Bool (rows, cols) map of the training pixels (always a subset of ``valid``).

    cva: the change-vector magnitude of the pair when the caller has it already."""
    if mask is not None:
        chosen = mask & valid
        if not chosen.any():
            raise HsiDetectError("The training mask marks no pixel that is valid in both dates. "
                                 "Give a mask whose non-zero pixels cover valid, unchanged ground.")
        return chosen
    if rule not in RULES:
        raise HsiDetectError(f"Unknown training-pixel rule '{rule}'. Use one of: {', '.join(RULES)}.")
    if rule == "all":
        return valid.copy()
    if rule.endswith("fraction") and not 0 < fraction <= 1:
        raise HsiDetectError(f"The training fraction must lie in (0, 1] (got {fraction}).")
    if rule == "angle-fraction":
        score = spectral_angle(t1, t2, valid)
    else:
        score = cva if cva is not None else cva_magnitude(t1, t2, valid)
    values = score[valid]
    if rule == "cva-otsu":
        cut = otsu_threshold(values)
    else:
        cut = np.quantile(values, fraction)
    chosen = valid & (score <= cut)
    if not chosen.any():  # a constant score: every valid pixel ties
        chosen = valid.copy()
    return chosen
