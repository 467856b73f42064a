"""Blind-spot training batches for BS3LNet, made batch by batch on the training device.

A batch holds patches of P x P pixels centred on valid pixels of the image, which is
extended at its borders by mirror reflection (without repeating the edge pixel, and
repeatedly for images smaller than the patch). In each patch n = ceil(P*P*(1 - ratio))
positions are blind: the centre, and n - 1 positions drawn uniformly among the others
(repeats allowed). A blind position takes the spectrum found at a random non-zero offset
inside a W x W window, wrapping around inside the patch. Everything is vectorised: no
Python loop over pixels or blind positions, and memory is O(batch * P * P * B) besides
the image itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def reflect_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map any integer coordinates into [0, size) by mirror reflection without repeating
    the edge pixel (..., 2, 1, 0, 1, 2, ..., size-1, size-2, ...), repeated as often as needed."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    m = torch.remainder(index, period)
    return torch.where(m < size, m, period - m)


def blind_count(patch: int, ratio: float) -> int:
    """n = ceil(P*P*(1 - ratio)), at least 1 (the centre)."""
    return max(1, math.ceil(patch * patch * (1.0 - ratio) - 1e-9))


@dataclass
class Batch:
    inputs: torch.Tensor  # (N, B, P, P) patches with the blind positions replaced
    targets: torch.Tensor  # (N, B, P, P) the original patches
    weights: torch.Tensor  # (N, 1, P, P) 1 at blind positions that hold a valid pixel, else 0
    blind: torch.Tensor  # (N, P, P) bool: blind positions
    source: torch.Tensor  # (N, P, P) long: patch position (y*P + x) each position's spectrum comes from
    centres: torch.Tensor  # (N,) flat image index of each patch's centre


class BlindSpotBatches:
    """Draws blind-spot batches from an image (H, W, B) tensor held on the training device.

    Centres are taken in shuffled passes over the valid pixels (an epoch is one pass).
    With ``redraw`` the blind positions and offsets are drawn anew for every batch
    (Noise2Void's practice); without it they are drawn once per centre pixel and reused
    every epoch (the authors' code).
    """

    def __init__(self, image: torch.Tensor, valid: torch.Tensor, patch: int = 19, ratio: float = 0.9,
                 window: int = 5, batch_size: int = 100, redraw: bool = True, seed: int = 1):
        if patch < 3 or patch % 2 == 0:
            raise ValueError("patch must be odd and >= 3")
        if window < 3 or window % 2 == 0:
            raise ValueError("window must be odd and >= 3")
        self.image = image
        self.valid = valid
        self.device = image.device
        self.rows, self.cols, self.bands = image.shape
        self.patch, self.window, self.batch_size, self.redraw = patch, window, batch_size, redraw
        self.count = blind_count(patch, ratio)
        self.centres = torch.nonzero(valid.reshape(-1)).reshape(-1)
        if self.centres.numel() == 0:
            raise ValueError("no valid pixel to train on")
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        self._queue = torch.empty(0, dtype=torch.long, device=self.device)
        r = patch // 2
        self._steps = torch.arange(-r, r + 1, device=self.device)
        if not redraw:
            # One draw per valid pixel (small integers: n per pixel), reused every epoch.
            self._fixed_pos, self._fixed_off = self._draw(self.centres.numel())

    @property
    def pixels(self) -> int:
        return int(self.centres.numel())

    def _draw(self, n: int):
        """Blind positions (n, count) and window-offset codes (n, count)."""
        pp, centre = self.patch * self.patch, (self.patch * self.patch) // 2
        pos = torch.randint(0, pp - 1, (n, self.count), device=self.device, generator=self.generator)
        pos = pos + (pos >= centre).long()  # skip the centre among the random positions
        pos[:, 0] = centre
        ww, zero = self.window * self.window, (self.window * self.window) // 2
        off = torch.randint(0, ww - 1, (n, self.count), device=self.device, generator=self.generator)
        off = off + (off >= zero).long()  # offset (0, 0) excluded
        return pos, off

    def _next_indices(self, n: int) -> torch.Tensor:
        """Indices into self.centres of the next n patches, epoch after shuffled epoch."""
        while self._queue.numel() < n:
            perm = torch.randperm(self.centres.numel(), device=self.device, generator=self.generator)
            self._queue = torch.cat([self._queue, perm])
        out, self._queue = self._queue[:n], self._queue[n:]
        return out

    def next(self) -> Batch:
        idx = self._next_indices(self.batch_size)
        if self.redraw:
            pos, off = self._draw(idx.numel())
        else:
            pos, off = self._fixed_pos[idx], self._fixed_off[idx]
        return self.make(self.centres[idx], pos, off)

    def make(self, centres: torch.Tensor, pos: torch.Tensor, off: torch.Tensor) -> Batch:
        """Build the batch for given centres, blind positions and offset codes."""
        p, w, pp = self.patch, self.window, self.patch * self.patch
        n = centres.numel()
        cy, cx = centres // self.cols, centres % self.cols
        rows = reflect_index(cy[:, None] + self._steps, self.rows)  # (N, P)
        cols = reflect_index(cx[:, None] + self._steps, self.cols)
        patches = self.image[rows[:, :, None], cols[:, None, :]].reshape(n, pp, self.bands)
        valid = self.valid[rows[:, :, None], cols[:, None, :]].reshape(n, pp)
        dy, dx = off // w - w // 2, off % w - w // 2
        src = torch.remainder(pos // p + dy, p) * p + torch.remainder(pos % p + dx, p)
        # Where a position was drawn twice, the later draw wins (deterministically).
        order = torch.arange(self.count, device=self.device).expand(n, -1)
        key = torch.full((n, pp), -1, dtype=torch.long, device=self.device)
        key.scatter_reduce_(1, pos, order * pp + src, reduce="amax")
        blind = key >= 0
        source = torch.where(blind, key % pp, torch.arange(pp, device=self.device).expand(n, -1))
        inputs = torch.gather(patches, 1, source[:, :, None].expand(-1, -1, self.bands))
        to_nchw = lambda t: t.reshape(n, p, p, -1).permute(0, 3, 1, 2)  # noqa: E731  (channels-last)
        weights = (blind & valid).to(patches.dtype)
        return Batch(to_nchw(inputs), to_nchw(patches), to_nchw(weights[:, :, None]),
                     blind.reshape(n, p, p), source.reshape(n, p, p), centres)


def masked_loss(output: torch.Tensor, batch: Batch, kind: str = "l1") -> torch.Tensor:
    """L1 (or L2) between output and target at the blind positions, averaged over all
    elements of the batch as the authors do (non-blind elements count as zeros)."""
    diff = (output - batch.targets) * batch.weights
    per = diff.abs() if kind == "l1" else diff * diff
    return per.mean()
