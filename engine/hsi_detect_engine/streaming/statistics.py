"""Per-band mean, deviation and covariance accumulated window by window in float64.

Windows are merged with Chan, Golub and LeVeque's pairwise update (each window centred on
its own mean), which is as accurate as the two-pass formula of the in-memory path.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 65536  # pixels per float64 block


class Moments:
    """Count, mean, centred second moments and range (lo, hi over all bands) of the pixels
    added; ``full``: the whole covariance, else the per-band variances only."""

    def __init__(self, bands: int, full: bool = True):
        self.n = 0
        self.mean = np.zeros(bands)
        self.m2 = np.zeros((bands, bands) if full else bands)
        self.full = full
        self.lo, self.hi = np.inf, -np.inf

    def add(self, pixels: np.ndarray):
        """Add (n, bands) pixels."""
        for s in range(0, pixels.shape[0], _CHUNK):
            x = pixels[s:s + _CHUNK].astype(np.float64)
            nb = x.shape[0]
            if nb == 0:
                continue
            mb = x.sum(axis=0) / nb
            self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
            d = x - mb
            m2b = d.T @ d if self.full else np.einsum("ij,ij->j", d, d)
            delta = mb - self.mean
            total = self.n + nb
            self.mean += delta * (nb / total)
            self.m2 += m2b + (np.outer(delta, delta) if self.full else delta * delta) * (self.n * nb / total)
            self.n = total

    def covariance(self) -> np.ndarray:
        """Sample covariance (divided by n - 1), as the in-memory RX."""
        return self.m2 / max(self.n - 1, 1)

    def deviation(self) -> np.ndarray:
        """Population deviation per band (divided by n), as numpy's std."""
        var = np.diag(self.m2) if self.full else self.m2
        return np.sqrt(np.maximum(var, 0.0) / max(self.n, 1))
