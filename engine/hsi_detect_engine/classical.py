"""Classical detectors: global RX anomaly detection and change vector analysis (CVA).

They are fast baselines and the pre-detection that picks HyperNet's training pixels.
"""

from __future__ import annotations

import numpy as np

from .errors import HsiDetectError
from .linalg import BLOCK, quadratic_forms
from .scaling import scale_on_own_statistics
from .streaming.statistics import Moments


def mean_cov(pixels: np.ndarray):
    """Mean and sample covariance (float64) of (n, bands) pixels, as streamed RX accumulates them."""
    m = Moments(pixels.shape[1])
    m.add(pixels)
    return m.mean, m.covariance()


def safe_inverse(cov: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """Pseudo-inverse of a symmetric covariance through its eigenvalues: directions whose
    variance is below rcond times the largest are left out, so a singular or rank-deficient
    covariance gives finite distances."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    keep = w > rcond * max(w.max(), 0.0)
    if not keep.any():
        return np.zeros_like(cov)
    return (v[:, keep] / w[keep]) @ v[:, keep].T


def rx_scores(cube: np.ndarray, valid: np.ndarray, progress=None) -> np.ndarray:
    """Mahalanobis distance of every pixel to the mean and covariance of the valid pixels.

    Returns a float64 (rows, cols) map; invalid pixels are 0.
    """
    if not valid.any():
        raise HsiDetectError("RX needs at least one valid pixel.")
    pixels = cube.reshape(-1, cube.shape[-1]) if valid.all() else cube[valid]  # no copy when all are valid
    mean, cov = mean_cov(pixels)
    score = np.zeros(valid.shape)
    score[valid] = mahalanobis(pixels, mean, safe_inverse(cov), progress)
    return score


def mahalanobis(pixels: np.ndarray, mean: np.ndarray, inv: np.ndarray, progress=None) -> np.ndarray:
    """Squared Mahalanobis distance (float64, at least 0) of (n, bands) pixels under mean and inverse covariance."""
    out = np.zeros(pixels.shape[0])
    for s in range(0, pixels.shape[0], BLOCK):
        if progress is not None:
            progress.update("detecting", s / pixels.shape[0], "RX")
        out[s:s + BLOCK] = quadratic_forms(pixels[s:s + BLOCK], mean, inv)
    return np.maximum(out, 0.0)


def cva_magnitude(t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Change vector magnitude between the two dates, each standardised on its own."""
    mag = vector_length(scale_on_own_statistics(t2, valid) - scale_on_own_statistics(t1, valid))
    mag[~valid] = 0.0
    return mag


def vector_length(d: np.ndarray) -> np.ndarray:
    """The length (float64) of each pixel's vector of a (rows, cols, bands) array."""
    return np.sqrt(np.einsum("ijk,ijk->ij", d, d, dtype=np.float64))


def spectral_angle(t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Spectral angle (radians) between the two dates' standardised spectra at each pixel."""
    return angle_between(scale_on_own_statistics(t1, valid), scale_on_own_statistics(t2, valid), valid)


def angle_between(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Angle (radians, float64) between two (rows, cols, bands) arrays' spectra at each pixel; 0 where invalid."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    dot = np.einsum("ijk,ijk->ij", a, b)
    norm = np.linalg.norm(a, axis=2) * np.linalg.norm(b, axis=2)
    ang = np.arccos(np.clip(np.divide(dot, norm, out=np.ones_like(dot), where=norm > 0), -1.0, 1.0))
    ang[~valid] = 0.0
    return ang


def minmax_normalise(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scale the valid scores to [0, 1] (float32); invalid pixels are 0."""
    v = score[valid]
    lo, hi = float(v.min()), float(v.max())
    out = np.zeros(score.shape, dtype=np.float32)
    out[valid] = ((v - lo) / (hi - lo)) if hi > lo else 0.0
    return out
