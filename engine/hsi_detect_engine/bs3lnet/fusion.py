"""Score 'mse+rx': BS3LNet's reconstruction error and RX of the same scene in one score, smoothed
among spectrally alike neighbours.

Each part is taken as a distance (the root of its squared form) and standardised robustly
(median and 1.4826 x MAD over the valid pixels, which a small anomalous tail hardly moves), so
neither part's units decide; the two are summed. The network misses anomalies its neighbours
reconstruct, RX those the background's covariance absorbs.

Alike neighbours are told apart by the scene's first three principal components (each scaled to
unit variance, the guide): a neighbour at distance d in them weighs exp(-d^2 / 2 sigma^2), sigma a
multiple of the median distance between horizontally adjacent pixels.

RX measures each pixel half as it is and half as the weighted mean of its 3 x 3 alike neighbours
(sigma one median distance), against the scene's own mean and covariance. The pixels of an
extended target (an aircraft) rise above the noise together, while a target of a pixel or two
keeps its own spectrum, its neighbours weighing little (with RX of the pixels as they are, the
fused score reached 0.948 AUC on abu-airport-1, now 0.961; RX of the wholly denoised scene under
its own covariance flagged halos around small targets, and its binary maps were the worse).

The sum is then averaged over each pixel's 3 x 3 neighbourhood with the weights at three times that
sigma. The parts of one object (an aircraft's wing and fuselage) share their scores, while a target
of one or two pixels keeps its own, since its neighbours look unlike it (a plain 3 x 3 mean cost
such targets up to 0.4 AUC on HYDICE Urban).

The result is returned shifted to 0 at its minimum and squared, a squared distance again, which
is what the threshold rules' background model (thresholds.false_alarm_threshold) is fitted to.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826
GUIDE_COMPONENTS = 3  # principal components that tell neighbours apart
WIDTH = 3.0  # the sum's smoothing sigma, in median distances between adjacent pixels
DENOISE_WIDTH = 1.0  # the sigma of the neighbours' mean that RX measures, likewise
OWN_SHARE = 0.5  # the pixel's own spectrum's share in what RX measures
RCOND = 1e-10  # components with less variance than this times the largest are left out
WINDOW_VALUES = 1 << 22  # a window of rows of the RX part in memory: about this many pixel-band values
#                          (some 200 MB at its peak, within the training step that detection follows)


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


def spacing_of(distances: np.ndarray) -> float:
    """The median of the distances between adjacent valid pixels: the unit of both sigmas (0 without any)."""
    return float(np.median(distances)) if distances.size else 0.0


def smooth(values: np.ndarray, guide: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Each valid pixel's weighted mean of ``values`` ((rows, cols), or (rows, cols, bands) band by
    band) over its valid 3 x 3 neighbours (itself included) in the block, weights
    exp(-d^2 / 2 sigma^2) of the guide distance d. ``sigma`` 0 (most adjacent pixels identical)
    leaves ``values`` as they are. Invalid pixels come out 0."""
    flat = values.ndim == 2
    out = np.where(valid[..., None], values[..., None] if flat else values, 0.0)
    if sigma > 0:
        rows, cols = valid.shape
        num, den = np.zeros(out.shape), np.zeros((rows, cols, 1))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                at = (slice(max(0, -dy), rows - max(0, dy)), slice(max(0, -dx), cols - max(0, dx)))
                near = (slice(max(0, dy), rows - max(0, -dy)), slice(max(0, dx), cols - max(0, -dx)))
                d2 = ((guide[near] - guide[at]) ** 2).sum(axis=-1)
                w = (np.exp(-d2 / (2 * sigma * sigma)) * valid[near])[..., None]
                num[at] += w * out[near]
                den[at] += w
        out = np.where(valid[..., None], num / np.where(valid[..., None], den, 1.0), 0.0)
    return out[..., 0] if flat else out


def rx_rows(block: np.ndarray, guide: np.ndarray, valid: np.ndarray, spacing: float, mean: np.ndarray,
            inv: np.ndarray, own: float = OWN_SHARE, width: float = DENOISE_WIDTH) -> np.ndarray:
    """The RX part (float64, invalid pixels 0) of a (rows, cols, bands) block of the scaled scene:
    each valid pixel ``own`` itself and the rest its alike neighbours' mean in the block (sigma
    ``width`` spacings), its squared Mahalanobis distance under the scene's ``mean`` and inverse
    covariance ``inv``."""
    from ..classical import mahalanobis

    x = block.astype(np.float64)
    measured = own * x + (1 - own) * smooth(x, guide, valid, width * spacing)
    out = np.zeros(valid.shape)
    out[valid] = mahalanobis(measured[valid], mean, inv)
    return out


def rx_part(image: np.ndarray, valid: np.ndarray, guide: np.ndarray, spacing: float, mean: np.ndarray,
            inv: np.ndarray) -> np.ndarray:
    """rx_rows of a whole (rows, cols, bands) image, in windows of rows each read with a row above
    and below, so that its float64 copies stay small."""
    rows, cols, bands = image.shape
    out = np.zeros(valid.shape)
    for r, top, bottom, core in row_windows(rows, max(1, WINDOW_VALUES // (cols * bands))):
        out[r:r + core.stop - core.start] = rx_rows(image[top:bottom], guide[top:bottom], valid[top:bottom],
                                                    spacing, mean, inv)[core]
    return out


def row_windows(height: int, rows: int):
    """(first row, top, bottom, core) of windows of ``rows`` rows: rows top..bottom are read (a row
    above and below where there is one), ``core`` slices the window's own rows out of them."""
    for r in range(0, height, rows):
        top, bottom = max(0, r - 1), min(height, r + rows + 1)
        yield r, top, bottom, slice(r - top, r - top + min(rows, height - r))


def fuse(parts: list, valid: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """The fused score (float64, invalid pixels 0) of same-shaped part maps (squared forms, e.g.
    mse and the RX part) over the ``valid`` pixels, smoothed with the (rows, cols, k) ``guide``."""
    total = np.zeros(valid.shape)
    for part in parts:
        r = root(part[valid].astype(np.float64))
        median = float(np.median(r))
        total[valid] += standardised(r, median, float(np.median(np.abs(r - median))))
    smoothed = smooth(total, guide, valid, WIDTH * spacing_of(adjacent_distances(guide, valid)))
    out = np.zeros(valid.shape)
    out[valid] = (smoothed[valid] - smoothed[valid].min()) ** 2
    return out
