"""Turning a score map into a binary map."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import HsiDetectError
from .parameters import FALSE_ALARM_RATE, HYSTERESIS_SPREAD, MAX_OBJECT_SHARE, THRESHOLDS


def _finite_scores(values: np.ndarray) -> np.ndarray:
    """The finite values as a flat float64 array; refused when there is none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise HsiDetectError("No valid score to threshold.")
    return v


def otsu_threshold(values: np.ndarray, bins: int = 1024) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of a histogram."""
    v = _finite_scores(values)
    lo, hi = v.min(), v.max()
    if hi <= lo:
        return float(hi)
    return otsu_from_histogram(*np.histogram(v, bins=bins, range=(lo, hi)))


def otsu_from_histogram(hist: np.ndarray, edges: np.ndarray) -> float:
    """Otsu's threshold of a histogram (counts, edges) of the scores between their minimum and maximum."""
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
    v = _finite_scores(values)

    def centres(t):
        low, high = v[v <= t], v[v > t]
        return (low.mean(), high.mean()) if low.size and high.size else None

    return kmeans_from_centres(v.min(), v.max(), centres, iterations)


def kmeans_from_centres(c0: float, c1: float, centres, iterations: int = 100) -> float:
    """Two-cluster k-means from the scores' minimum and maximum; ``centres(t)`` gives the means of
    the scores at or below and above t (None when one side is empty), from memory or from passes
    over a raster."""
    for _ in range(iterations):
        split = centres((c0 + c1) / 2)
        if split is None:
            break
        n0, n1 = split
        if n0 == c0 and n1 == c1:
            break
        c0, c1 = n0, n1
    return float((c0 + c1) / 2)


def min_error_threshold(values: np.ndarray, bins: int = 1024, min_share: float = 1e-3) -> float:
    """Kittler and Illingworth's minimum-error threshold (Pattern Recognition 19, 1986).

    Fits the histogram with two Gaussians of their own weight and variance and returns the
    cut that minimises the classification error criterion J = P1 ln(var1) + P2 ln(var2)
    - 2 (P1 ln P1 + P2 ln P2). Unlike Otsu's, it allows a small class with a wide spread,
    as changed pixels are next to the narrow unchanged bulk of a squared-distance score.
    Cuts leaving either class less than ``min_share`` of the values are not considered.
    """
    v = _finite_scores(values)
    lo, hi = v.min(), v.max()
    if hi <= lo:
        return float(hi)
    return min_error_from_histogram(*np.histogram(v, bins=bins, range=(lo, hi)), min_share=min_share)


def min_error_from_histogram(hist: np.ndarray, edges: np.ndarray, min_share: float = 1e-3) -> float:
    """The minimum-error threshold of a histogram (counts, edges) of the scores between their minimum and maximum."""
    p = hist / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)[:-1]
    w1 = 1.0 - w0
    s0, q0 = np.cumsum(p * centres)[:-1], np.cumsum(p * centres ** 2)[:-1]
    s_all, q_all = float((p * centres).sum()), float((p * centres ** 2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        m0, m1 = s0 / w0, (s_all - s0) / w1
        var0, var1 = q0 / w0 - m0 ** 2, (q_all - q0) / w1 - m1 ** 2
        j = w0 * np.log(var0) + w1 * np.log(var1) - 2 * (w0 * np.log(w0) + w1 * np.log(w1))
    ok = (w0 >= min_share) & (w1 >= min_share) & (var0 > 0) & (var1 > 0) & np.isfinite(j)
    if not ok.any():
        return otsu_from_histogram(hist, edges)
    k = int(np.flatnonzero(ok)[np.argmin(j[ok])])
    return float(edges[k + 1])


def top_fraction_threshold(values: np.ndarray, fraction: float) -> float:
    if not 0 < fraction < 1:
        raise HsiDetectError(f"The top fraction must lie between 0 and 1 (got {fraction}).")
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(np.quantile(v[np.isfinite(v)], 1.0 - fraction))


def false_alarm_threshold(values: np.ndarray, rate: float = 0.003) -> float:
    """The score that the background exceeds with probability ``rate`` (the expected share of
    background pixels flagged), from a background model fitted to the bulk of the scores.

    Anomalies are a small tail, so the model is fitted on quantiles that they hardly move: on
    the square root of the scores above their minimum (a distance rather than a squared one),
    the background's upper half is taken as exponential, its decay fitted from the median and
    the 90th percentile. The threshold depends neither on the scores' unit nor on their
    offset, so it is the same on the raw and the 0..1 normalised score map. The background
    of real scenes has a heavier tail than a Gaussian one: a model of the bulk as Gaussian
    (median and MAD) flagged 1-18 % of the pixels at a rate of 0.01 on the 19 benchmark
    scenes, this one 0.2-5 % (bench/results/studies/anomaly_thresholds.md). Where the
    background is Gaussian (lighter-tailed than the model) fewer pixels than the rate are flagged.
    """
    v = _finite_scores(values)
    lo = float(v.min())
    median, q90 = np.quantile(np.sqrt(v - lo), [0.5, 0.9])
    return false_alarm_cut(lo, float(median), float(q90), rate)


def check_false_alarm_rate(rate: float):
    """Refuse a rate outside (0, 0.5), where the background model does not hold."""
    if not 0 < rate < 0.5:
        raise HsiDetectError(f"The false-alarm rate must lie between 0 and 0.5 (got {rate}).")


def false_alarm_cut(lo: float, median: float, q90: float, rate: float) -> float:
    """false_alarm_threshold from the scores' minimum ``lo`` and the median and 90th percentile of
    the square root of the scores above it (as a pass over a raster too large to load gives them)."""
    check_false_alarm_rate(rate)
    decay = (q90 - median) / np.log(5.0)  # P(root > q) = 0.5 exp(-(q - median) / decay)
    cut = median + decay * np.log(0.5 / rate)
    return float(lo + cut * cut)


TRANSFORMS = ("none", "sqrt", "log")
AUTOMATIC = {"otsu": otsu_threshold, "kmeans": kmeans_threshold, "min-error": min_error_threshold}


def _transform(values: np.ndarray, transform: str):
    """(transformed values, inverse) for thresholding a heavy-tailed score on a tamer scale."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = (float(np.min(v)), float(np.max(v))) if v.size else (0.0, 1.0)
    forward, inverse = score_transform(transform, lo, hi)
    return forward(v), inverse


def score_transform(transform: str, lo: float, hi: float) -> tuple:
    """(forward, inverse) of a score transform for scores between ``lo`` and ``hi``: the same
    functions for scores in memory and for a score raster read by windows."""
    if transform == "none":
        return (lambda v: v), (lambda t: t)
    if transform == "sqrt":
        return (lambda v: np.sqrt(np.maximum(v, 0.0))), (lambda t: t * t)
    if transform == "log":
        eps = 1e-12 * max(abs(lo), abs(hi), 1e-30)
        shift = eps - min(lo, 0.0)
        return (lambda v: np.log(v + shift)), (lambda t: float(np.exp(t)) - shift)
    raise HsiDetectError(f"Unknown score transform '{transform}'. Use one of: {', '.join(TRANSFORMS)}.")


# Measured on the 19 scenes, RX and BS3LNet: a mean F1 of 0.33 at 0.003 (0.32 at 0.01, 0.30 at 0.001).
DEFAULT_FALSE_ALARM_RATE = FALSE_ALARM_RATE.default
EIGHT = np.ones((3, 3), dtype=bool)


MAX_GROW_RATE = 0.45  # the background model holds for rates below 0.5


def hysteresis_cuts(lo: float, median: float, q90: float, rate: Optional[float] = None) -> tuple:
    """(seed, grow) thresholds of the hysteresis rule from the false-alarm model's fit (false_alarm_cut):
    the cuts at the expected false-alarm ``rate`` divided and multiplied by HYSTERESIS_SPREAD."""
    rate = DEFAULT_FALSE_ALARM_RATE if rate is None else rate
    check_false_alarm_rate(rate)
    return (false_alarm_cut(lo, median, q90, rate / HYSTERESIS_SPREAD),
            false_alarm_cut(lo, median, q90, min(rate * HYSTERESIS_SPREAD, MAX_GROW_RATE)))


def hysteresis_thresholds(values: np.ndarray, rate: Optional[float] = None) -> tuple:
    """hysteresis_cuts of the finite ``values``."""
    v = _finite_scores(values)
    lo = float(v.min())
    median, q90 = np.quantile(np.sqrt(v - lo), [0.5, 0.9])
    return hysteresis_cuts(lo, float(median), float(q90), rate)


def hysteresis_mask(score: np.ndarray, valid: np.ndarray, seed: float, grow: float,
                    max_share: float = MAX_OBJECT_SHARE) -> np.ndarray:
    """Bool map of the hysteresis rule: the 8-connected regions of valid scores above ``grow`` that
    hold a score above ``seed``, less those covering more than ``max_share`` of the valid pixels.

    Anomalies are small compact objects: a pixel just above the looser cut joins them when it
    touches a confident one, while isolated pixels of the same score stay background; and a region
    too large to be rare (a bright field or shoreline of a heavy-tailed background) is dropped.
    On the 19 benchmark scenes this lifted the mean F1 of RX and BS3LNet above the single
    false-alarm cut (bench/results/studies/anomaly_thresholds.md).
    """
    return hysteresis_regions(valid & (score > grow), valid & (score > seed), int(valid.sum()), max_share)


def hysteresis_regions(grown: np.ndarray, seeds: np.ndarray, valid_pixels: int,
                       max_share: float = MAX_OBJECT_SHARE) -> np.ndarray:
    """hysteresis_mask from the bool maps of the scores above the grow and the seed thresholds."""
    from scipy import ndimage

    labels, count = ndimage.label(grown, structure=EIGHT)
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(labels[seeds])] = True
    keep &= np.bincount(labels.ravel(), minlength=count + 1) <= max_share * valid_pixels
    keep[0] = False
    return keep[labels]


def choose_threshold(values: np.ndarray, method: str = "otsu", value: float = None, fraction: float = None,
                     transform: str = "none", false_alarm_rate: float = None) -> float:
    """method: 'false-alarm' (a background model's expected false-alarm rate, for a small
    anomalous tail), 'otsu', 'kmeans', 'min-error' (Kittler-Illingworth), 'value' (a given
    score) or 'fraction' (a given top fraction of pixels).

    transform ('sqrt' or 'log') runs an automatic method on the square root or logarithm of the
    scores and returns the threshold on the scores' own scale: a squared distance has a
    long tail that drags both far above the bulk of the changes.
    """
    if method in AUTOMATIC:
        scaled, inverse = _transform(values, transform)
        return float(inverse(AUTOMATIC[method](scaled)))
    if method == "false-alarm":
        rate = DEFAULT_FALSE_ALARM_RATE if false_alarm_rate is None else false_alarm_rate
        return false_alarm_threshold(values, rate)
    if method == "value":
        if value is None:
            raise HsiDetectError("Threshold method 'value' needs a threshold value.")
        return float(value)
    if method == "fraction":
        if fraction is None:
            raise HsiDetectError("Threshold method 'fraction' needs the top fraction of pixels to mark.")
        return top_fraction_threshold(values, fraction)
    if method == "hysteresis":
        raise HsiDetectError("The hysteresis rule gives a binary map, not one threshold: cut the scores with binary_map.")
    raise HsiDetectError(f"Unknown threshold method '{method}'. Use one of: {', '.join(THRESHOLDS)}.")


def binary_map(score: np.ndarray, valid: np.ndarray, method: str, value: float = None, fraction: float = None,
               transform: str = "none", false_alarm_rate: float = None) -> tuple:
    """(uint8 map as binarize gives it, the summary's threshold entries) of a score map cut by
    ``method``: choose_threshold's single cut, or the hysteresis rule (seed and grow thresholds, around
    ``false_alarm_rate`` as hysteresis_cuts sets them)."""
    if method == "hysteresis":
        seed, grow = hysteresis_thresholds(score[valid], false_alarm_rate)
        out = hysteresis_mask(score, valid, seed, grow).astype(np.uint8)
        out[~valid] = 255
        return out, {"threshold": seed, "grow_threshold": grow, "threshold_method": method}
    t = choose_threshold(score[valid], method, value, fraction, transform, false_alarm_rate)
    return binarize(score, valid, t), {"threshold": t, "threshold_method": method}


def binarize(score: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 map: 1 above the threshold, 0 at or below it, 255 where the input was invalid."""
    out = (score > threshold).astype(np.uint8)
    out[~valid] = 255
    return out
