"""Per-band mean, deviation and covariance accumulated window by window in float64.

Small float64 blocks of pixels are merged with Chan, Golub and LeVeque's pairwise update
(each block centred on its own mean), which is as accurate as the two-pass formula; the
covariance's products go through linalg.py.
"""

from __future__ import annotations

import numpy as np

from ..linalg import BLOCK, centred_gram


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
        if pixels.shape[0] == 0:
            return
        self.lo, self.hi = min(self.lo, float(pixels.min())), max(self.hi, float(pixels.max()))
        for s in range(0, pixels.shape[0], BLOCK):
            block = pixels[s:s + BLOCK]
            if self.full:
                self._merge(block.shape[0], *centred_gram(block))
            else:
                d = block.astype(np.float64)
                mb = d.mean(axis=0)
                d -= mb
                self._merge(d.shape[0], mb, np.einsum("ij,ij->j", d, d))

    def _merge(self, nb: int, mb: np.ndarray, m2b: np.ndarray):
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
