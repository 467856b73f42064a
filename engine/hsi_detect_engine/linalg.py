"""Float64 products of (pixels, bands) blocks, computed by torch where it is installed.

numpy's matrix products run on whichever BLAS the system installed, and a generic build (or
an OpenBLAS that does not recognise a virtual machine's processor and falls back to its
oldest kernels) runs them several times slower than torch's own: RX's covariance and
distances were most of its time. RX and CVA also run without torch, on numpy. Blocks are
converted to float64 one at a time, so a caller bounds the memory by the rows it passes
(BLOCK at a time).
"""

from __future__ import annotations

import numpy as np

BLOCK = 8192  # pixels per float64 block (15 MB at 224 bands; blocks of 65536 pixels ran half as fast)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def centred_gram(pixels: np.ndarray) -> tuple:
    """(mean (bands,), sum of the outer products of the rows centred on it (bands, bands)), float64."""
    torch = _torch()
    if torch is None:
        d = pixels.astype(np.float64)
        mean = d.mean(axis=0)
        d -= mean
        return mean, d.T @ d
    t = torch.from_numpy(pixels).to(torch.float64, copy=True)
    mean = t.mean(dim=0)
    t -= mean
    return mean.numpy(), (t.T @ t).numpy()


def quadratic_forms(pixels: np.ndarray, centre: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(x - centre)ᵀ matrix (x - centre) for each row x, float64."""
    centre, matrix = np.asarray(centre, dtype=np.float64), np.asarray(matrix, dtype=np.float64)
    torch = _torch()
    if torch is None:
        d = pixels.astype(np.float64) - centre
        return np.einsum("ij,jk,ik->i", d, matrix, d, optimize=True)
    t = torch.from_numpy(pixels).to(torch.float64, copy=True)
    t -= torch.from_numpy(centre)
    return (t @ torch.from_numpy(matrix)).mul_(t).sum(dim=1).numpy()
