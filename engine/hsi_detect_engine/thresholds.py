"""Turning a score map into a binary map."""

from __future__ import annotations

import numpy as np

from .errors import HsiDetectError


def otsu_threshold(values: np.ndarray, bins: int = 1024) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of a histogram."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise HsiDetectError("No valid score to threshold.")
    lo, hi = v.min(), v.max()
    if hi <= lo:
        return float(hi)
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    k = int(np.argmax(between[:-1]))
    return float(edges[k + 1])


def kmeans_threshold(values: np.ndarray, iterations: int = 100) -> float:
    """Two-cluster k-means on the scores: the midpoint of the two centres at convergence."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise HsiDetectError("No valid score to threshold.")
    c0, c1 = v.min(), v.max()
    for _ in range(iterations):
        t = (c0 + c1) / 2
        low, high = v[v <= t], v[v > t]
        if low.size == 0 or high.size == 0:
            break
        n0, n1 = low.mean(), high.mean()
        if n0 == c0 and n1 == c1:
            break
        c0, c1 = n0, n1
    return float((c0 + c1) / 2)


def top_fraction_threshold(values: np.ndarray, fraction: float) -> float:
    if not 0 < fraction < 1:
        raise HsiDetectError(f"The top fraction must lie between 0 and 1 (got {fraction}).")
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(np.quantile(v[np.isfinite(v)], 1.0 - fraction))


TRANSFORMS = ("none", "sqrt", "log")


def _transform(values: np.ndarray, transform: str):
    """(transformed values, inverse) for thresholding a heavy-tailed score on a tamer scale."""
    v = np.asarray(values, dtype=np.float64)
    if transform == "none":
        return v, lambda t: t
    if transform == "sqrt":
        return np.sqrt(np.maximum(v, 0.0)), lambda t: t * t
    if transform == "log":
        lo = float(np.min(v)) if v.size else 0.0
        eps = 1e-12 * max(float(np.max(np.abs(v))) if v.size else 1.0, 1e-30)
        shift = eps - min(lo, 0.0)
        return np.log(v + shift), lambda t: float(np.exp(t)) - shift
    raise HsiDetectError(f"Unknown score transform '{transform}'. Use one of: {', '.join(TRANSFORMS)}.")


def choose_threshold(values: np.ndarray, method: str = "otsu", value: float = None, fraction: float = None,
                     transform: str = "none") -> float:
    """method: 'otsu', 'kmeans', 'value' (a given score) or 'fraction' (a given top fraction of pixels).

    transform ('sqrt' or 'log') runs Otsu or k-means on the square root or logarithm of the
    scores and returns the threshold on the scores' own scale: a squared distance has a
    long tail that drags both far above the bulk of the changes.
    """
    if method in ("otsu", "kmeans"):
        scaled, inverse = _transform(values, transform)
        return float(inverse(otsu_threshold(scaled) if method == "otsu" else kmeans_threshold(scaled)))
    if method == "value":
        if value is None:
            raise HsiDetectError("Threshold method 'value' needs a threshold value.")
        return float(value)
    if method == "fraction":
        if fraction is None:
            raise HsiDetectError("Threshold method 'fraction' needs the top fraction of pixels to mark.")
        return top_fraction_threshold(values, fraction)
    raise HsiDetectError(f"Unknown threshold method '{method}'. Use otsu, kmeans, value or fraction.")


def binarize(score: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 map: 1 above the threshold, 0 at or below it, 255 where the input was invalid."""
    out = (score > threshold).astype(np.uint8)
    out[~valid] = 255
    return out
