"""HyperNet's network (Hu, Wu and Zhang, TGRS 2022), written from the method description.

One network is shared by both dates: a spatial branch (three residual blocks with CBAM,
then a 5x5 average pool) and a spectral branch (three per-pixel blocks with channel
attention) are fused into 2h feature channels per pixel; a projector and a predictor
(training only) produce z and p for the SimSiam-style loss.

Channel attention pools GLOBALLY (average and maximum over the whole image). To make
detection by tiles equal to whole-image detection, every channel-attention module reads
its pooled statistics through one shared ``GlobalPool`` object, which can (a) pool the
current input over its valid pixels (training, whole-image detection), (b) use pooled
statistics fixed from outside, or (c) accumulate the statistics of a tile's core and
stop the forward pass (the first passes of tiled detection, see hypernet_tiles.py).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

REDUCTION = 16  # channel attention's reduction ratio
SPATIAL_KERNEL = 7  # spatial attention's kernel
POOL_SIZE = 5  # the spatial branch's final average pool
# Pixels a tile must reach beyond its core so that its core is computed exactly:
# three blocks of (conv 3x3 + spatial attention 7x7) = 3 * (1 + 3), the 5x5 pool = 2,
# and the spectral branch's 3x3 fusion conv = 1 (less than the spatial side's total).
RECEPTIVE_RADIUS = 3 * (1 + SPATIAL_KERNEL // 2) + POOL_SIZE // 2


def hidden_width(bands: int, requested: int = 0) -> int:
    """h: the requested width, or B/2 rounded to a multiple of 8, at least 16."""
    if requested and requested > 0:
        return int(requested)
    return max(16, int(bands / 2 / 8 + 0.5) * 8)


class StopForward(Exception):
    """Raised by GlobalPool once the statistics being collected have been accumulated."""


class GlobalPool:
    """Where every channel-attention module gets its global average and maximum.

    mask: (1, 1, H, W) bool of the pixels to pool over (None: all pixels).
    fixed: module index -> (avg (C,), max (C,)) given from outside.
    collect: index of the module whose statistics to accumulate over ``core``
    (row slice, col slice of the current tile), after which StopForward is raised.
    """

    def __init__(self):
        self.mask: Optional[torch.Tensor] = None
        self.fixed: dict = {}
        self.collect: Optional[int] = None
        self.core = None
        self.sum = None
        self.count = 0
        self.max = None

    def reset(self):
        self.__init__()

    def pooled(self, index: int, x: torch.Tensor):
        """(avg, max) of x (1, C, H, W) as (1, C, 1, 1) tensors."""
        if index in self.fixed:
            avg, mx = self.fixed[index]
            return avg.view(1, -1, 1, 1).to(x.dtype), mx.view(1, -1, 1, 1).to(x.dtype)
        if index == self.collect:
            self._accumulate(x)
            raise StopForward()
        return _masked_pool(x, self.mask)

    def _accumulate(self, x: torch.Tensor):
        rs, cs = self.core
        core = x[0, :, rs, cs].reshape(x.shape[1], -1)
        if self.mask is not None:
            keep = self.mask[0, 0, rs, cs].reshape(-1)
            core = core[:, keep]
        if core.shape[1] == 0:
            return
        s = core.sum(dim=1, dtype=torch.float64)
        m = core.max(dim=1).values
        self.sum = s if self.sum is None else self.sum + s
        self.max = m if self.max is None else torch.maximum(self.max, m)
        self.count += core.shape[1]

    def collected(self):
        """(avg, max) accumulated so far, as (C,) tensors."""
        return (self.sum / max(self.count, 1)).float(), self.max


def _masked_pool(x: torch.Tensor, mask: Optional[torch.Tensor]):
    if mask is None or bool(mask.all()):
        return x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    m = mask.to(x.dtype)
    count = m.sum().clamp_min(1.0)
    avg = (x * m).sum(dim=(2, 3), keepdim=True) / count
    mx = x.masked_fill(~mask, float("-inf")).amax(dim=(2, 3), keepdim=True)
    return avg, torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))


class ChannelAttention(nn.Module):
    """Sigmoid(mlp(global avg) + mlp(global max)), multiplied into the input."""

    def __init__(self, channels: int, pool: GlobalPool, index: int):
        super().__init__()
        hidden = max(1, channels // REDUCTION)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1, bias=False))
        self.pool = pool
        self.index = index

    def forward(self, x):
        avg, mx = self.pool.pooled(self.index, x)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class SpatialAttention(nn.Module):
    """Sigmoid(conv7x7([mean over channels, max over channels])), multiplied into the input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, SPATIAL_KERNEL, padding=SPATIAL_KERNEL // 2, bias=False)

    def forward(self, x):
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class SpatialBlock(nn.Module):
    """conv 3x3 -> BN -> CBAM, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, pool: GlobalPool, index: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.channel = ChannelAttention(cout, pool, index)
        self.spatial = SpatialAttention()
        self.shortcut = (nn.Identity() if cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        out = self.spatial(self.channel(self.bn(self.conv(x))))
        return torch.relu(out + self.shortcut(x))


class SpectralBlock(nn.Module):
    """conv 1x1 -> BN -> channel attention; with a residual ReLU when the width is kept."""

    def __init__(self, cin: int, cout: int, pool: GlobalPool, index: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.channel = ChannelAttention(cout, pool, index)
        self.residual = cin == cout

    def forward(self, x):
        out = self.channel(self.bn(self.conv(x)))
        return torch.relu(x + out) if self.residual else out


class HyperNetModel(nn.Module):
    """Encoder (both branches and the fusion), projector and predictor."""

    def __init__(self, bands: int, hidden: int):
        super().__init__()
        if hidden < REDUCTION:
            raise ValueError(f"hidden width must be at least {REDUCTION}")
        self.bands, self.hidden = bands, hidden
        self.pool = GlobalPool()
        h, f = hidden, 2 * hidden
        # Channel-attention indices follow the order of the forward pass: spectral first
        # (cheap), so the passes that collect the spatial statistics redo little work.
        self.spectral = nn.Sequential(SpectralBlock(bands, h, self.pool, 0), SpectralBlock(h, h, self.pool, 1),
                                      SpectralBlock(h, h, self.pool, 2))
        self.spatial = nn.Sequential(SpatialBlock(bands, h, self.pool, 3), SpatialBlock(h, h, self.pool, 4),
                                     SpatialBlock(h, h, self.pool, 5),
                                     nn.AvgPool2d(POOL_SIZE, stride=1, padding=POOL_SIZE // 2))
        self.fuse_spatial = nn.Sequential(nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h))
        self.fuse_spectral = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, bias=False), nn.BatchNorm2d(h))
        self.projector = nn.Sequential(
            nn.Conv2d(f, f, 1, bias=False), nn.BatchNorm2d(f), nn.ReLU(),
            nn.Conv2d(f, f, 1, bias=False), nn.BatchNorm2d(f), nn.ReLU(),
            nn.Conv2d(f, f, 1, bias=True), nn.BatchNorm2d(f, affine=False))
        self.predictor = nn.Sequential(nn.Conv2d(f, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
                                       nn.Conv2d(h, f, 1, bias=False))
        self.attention_count = 6
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Fused features (1, 2h, H, W) of one image (1, B, H, W); mask: pixels to pool over."""
        self.pool.mask = mask
        try:
            spectral = self.fuse_spectral(self.spectral(x))
            spatial = self.fuse_spatial(self.spatial(x))
        finally:
            self.pool.mask = None
        return torch.cat([spatial, spectral], dim=1)

    def embed(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        """(z, p) of one image: projector output and predictor output, (1, 2h, H, W) each."""
        z = self.projector(self.features(x, mask))
        return z, self.predictor(z)


def focal_cosine(p1, p2, z1, z2, pixels: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """HyperNet's loss: -(mean of (2-c)^gamma * c over the training pixels, both directions)/2.

    c1 = cos(p1, z2) and c2 = cos(p2, z1) over the channels, with z taken as constants
    (stop-gradient). pixels: flat indices (row-major) of the training pixels.
    """
    def term(p, z):
        c = nn.functional.cosine_similarity(p.flatten(2)[0], z.detach().flatten(2)[0], dim=0, eps=1e-6)
        c = c.index_select(0, pixels)
        return (torch.pow(2.0 - c, gamma) * c).mean()

    return -(term(p1, z2) + term(p2, z1)) * 0.5
