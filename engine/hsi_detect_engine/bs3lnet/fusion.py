"""Score 'mse+rx': BS3LNet's reconstruction error and global RX of the same scene in one score.

Each part is taken as a distance (the root of its squared form) and standardised robustly
(median and 1.4826 x MAD over the valid pixels, which a small anomalous tail hardly moves), so
neither part's units decide; the two are summed. The network misses anomalies its neighbours
reconstruct, RX those the background's covariance absorbs. The sum is returned shifted to 0 at
its minimum and squared, a squared distance again, which is what the threshold rules' background
model (thresholds.false_alarm_threshold) is fitted to.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826


def root(values: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(values, 0.0))


def standardised(values: np.ndarray, median: float, mad: float) -> np.ndarray:
    """``values`` less their median, over the standard deviation their median absolute deviation
    implies (1 where they have none)."""
    spread = MAD_TO_SIGMA * mad
    return (values - median) / (spread if spread > 0 else 1.0)


def fuse(parts: list, valid: np.ndarray) -> np.ndarray:
    """The fused score (float64, invalid pixels 0) of same-shaped part maps (squared forms, e.g.
    mse and RX) over the ``valid`` pixels."""
    total = 0.0
    for part in parts:
        r = root(part[valid].astype(np.float64))
        median = float(np.median(r))
        total = total + standardised(r, median, float(np.median(np.abs(r - median))))
    out = np.zeros(valid.shape)
    out[valid] = (total - total.min()) ** 2
    return out
