"""Score 'mse+rx': BS3LNet's reconstruction error and global RX of the same scene in one score,
smoothed among spectrally alike neighbours.

Each part is taken as a distance (the root of its squared form) and standardised robustly
(median and 1.4826 x MAD over the valid pixels, which a small anomalous tail hardly moves), so
neither part's units decide; the two are summed. The network misses anomalies its neighbours
reconstruct, RX those the background's covariance absorbs.

The sum is then averaged over each pixel's 3 x 3 neighbourhood, each neighbour weighted by how
alike it looks: exp(-d^2 / 2 sigma^2), d its distance to the pixel in the scene's first three
principal components (each scaled to unit variance), sigma three times the median distance
between horizontally adjacent pixels. The parts of one object (an aircraft's wing and fuselage)
share their scores, while a target of one or two pixels keeps its own, since its neighbours look
unlike it (a plain 3 x 3 mean cost such targets up to 0.4 AUC on HYDICE Urban).

The result is returned shifted to 0 at its minimum and squared, a squared distance again, which
is what the threshold rules' background model (thresholds.false_alarm_threshold) is fitted to.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826
GUIDE_COMPONENTS = 3  # principal components that tell neighbours apart
WIDTH = 3.0  # the weights' sigma, in median distances between adjacent pixels
RCOND = 1e-10  # components with less variance than this times the largest are left out


def root(values: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(values, 0.0))


def standardised(values: np.ndarray, median: float, mad: float) -> np.ndarray:
    """``values`` less their median, over the standard deviation their median absolute deviation
    implies (1 where they have none)."""
    spread = MAD_TO_SIGMA * mad
    return (values - median) / (spread if spread > 0 else 1.0)


def projection(cov: np.ndarray) -> np.ndarray:
    """(bands, k) matrix taking a centred pixel to its first k principal components, each divided by
    its standard deviation (components without variance left out; one column of zeros where none
    has any, a guide in which all pixels look alike)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    order = np.argsort(w)[::-1][:GUIDE_COMPONENTS]
    keep = order[w[order] > RCOND * max(float(w.max()), 0.0)]
    return v[:, keep] / np.sqrt(w[keep]) if keep.size else np.zeros((cov.shape[0], 1))


def guide_of(pixels: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The guide components (n, k) float64 of (n, bands) pixels (``mean`` and ``matrix`` from the
    valid pixels' mean and covariance, projection's)."""
    return (pixels.astype(np.float64) - mean) @ matrix


def adjacent_distances(guide: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Distances between horizontally adjacent valid pixels of a (rows, cols, k) guide."""
    pair = valid[:, 1:] & valid[:, :-1]
    return np.sqrt(((guide[:, 1:][pair] - guide[:, :-1][pair]) ** 2).sum(axis=-1))


def sigma_of(distances: np.ndarray) -> float:
    """The smoothing weights' sigma from the distances between adjacent valid pixels (0 without any)."""
    return WIDTH * float(np.median(distances)) if distances.size else 0.0


def smooth(total: np.ndarray, guide: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Each valid pixel's weighted mean of ``total`` over its valid 3 x 3 neighbours (itself
    included) in the block, weights exp(-d^2 / 2 sigma^2) of the guide distance d. ``sigma`` 0
    (most adjacent pixels identical) leaves ``total`` as it is. Invalid pixels come out 0."""
    out = np.where(valid, total, 0.0)
    if not sigma > 0:
        return out
    rows, cols = valid.shape
    num, den = np.zeros((rows, cols)), np.zeros((rows, cols))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            at = (slice(max(0, -dy), rows - max(0, dy)), slice(max(0, -dx), cols - max(0, dx)))
            near = (slice(max(0, dy), rows - max(0, -dy)), slice(max(0, dx), cols - max(0, -dx)))
            d2 = ((guide[near] - guide[at]) ** 2).sum(axis=-1)
            w = np.exp(-d2 / (2 * sigma * sigma)) * valid[near]
            num[at] += w * out[near]
            den[at] += w
    return np.where(valid, num / np.where(valid, den, 1.0), 0.0)


def fuse(parts: list, valid: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """The fused score (float64, invalid pixels 0) of same-shaped part maps (squared forms, e.g.
    mse and RX) over the ``valid`` pixels, smoothed with the (rows, cols, k) ``guide``."""
    total = np.zeros(valid.shape)
    for part in parts:
        r = root(part[valid].astype(np.float64))
        median = float(np.median(r))
        total[valid] += standardised(r, median, float(np.median(np.abs(r - median))))
    smoothed = smooth(total, guide, valid, sigma_of(adjacent_distances(guide, valid)))
    out = np.zeros(valid.shape)
    out[valid] = (smoothed[valid] - smoothed[valid].min()) ** 2
    return out
