"""Input scaling: fitted on the valid pixels of the training image, stored with a model.

Modes: 'none' (values as stored, the papers' setting), 'standardize' (per band: subtract
the mean, divide by the standard deviation), 'minmax' (one global [0, 1] range).
"""

from __future__ import annotations

import numpy as np

from .errors import HsiDetectError

MODES = ("none", "standardize", "minmax")


def fit_scaling(cube: np.ndarray, valid: np.ndarray, mode: str) -> dict:
    """Return {'mode', 'offset' (B,), 'scale' (B,)} so that scaled = (x - offset) / scale."""
    if mode not in MODES:
        raise HsiDetectError(f"Unknown scaling '{mode}'. Use one of: {', '.join(MODES)}.")
    pixels = cube[valid].astype(np.float64)
    if mode == "standardize":
        return scaling_of(mode, cube.shape[-1], mean=pixels.mean(axis=0), deviation=pixels.std(axis=0))
    if mode == "minmax":
        return scaling_of(mode, cube.shape[-1], lo=float(pixels.min()), hi=float(pixels.max()))
    return scaling_of(mode, cube.shape[-1])


def scaling_of(mode: str, bands: int, mean=None, deviation=None, lo: float = 0.0, hi: float = 1.0) -> dict:
    """fit_scaling's result from the valid pixels' float64 statistics: per-band ``mean`` and
    population ``deviation`` for 'standardize', the global range ``lo``..``hi`` for 'minmax'
    (a streamed run accumulates them window by window)."""
    offset, scale = np.zeros(bands), np.ones(bands)
    if mode == "standardize":
        offset = np.asarray(mean, dtype=np.float64)
        scale = np.array(deviation, dtype=np.float64)
        scale[scale < 1e-12] = 1.0
    elif mode == "minmax":
        offset[:] = lo
        scale[:] = (hi - lo) if hi > lo else 1.0
    return {"mode": mode, "offset": offset.astype(np.float32), "scale": scale.astype(np.float32)}


def apply_scaling(cube: np.ndarray, valid: np.ndarray, stats: dict) -> np.ndarray:
    """Scale a cube (float32 copy); invalid pixels become 0."""
    out = np.subtract(cube, stats["offset"], dtype=np.float32)
    out /= stats["scale"]
    out[~valid] = 0.0
    return out


def scale_on_own_statistics(cube: np.ndarray, valid: np.ndarray, mode: str = "standardize") -> np.ndarray:
    """Scale a cube with statistics fitted on its own valid pixels (float32 copy; invalid
    pixels 0): how each date of a pair is scaled, and the standardised dates of CVA."""
    return apply_scaling(cube, valid, fit_scaling(cube, valid, mode))
