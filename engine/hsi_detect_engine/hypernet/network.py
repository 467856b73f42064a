"""HyperNet's network (Hu, Wu and Zhang, TGRS 2022), written from the method description.

One network is shared by both dates: a spatial branch (three residual blocks with CBAM,
then a 5x5 average pool) and a spectral branch (three per-pixel blocks with channel
attention) are fused into 2h feature channels per pixel; a projector and a predictor
(training only) produce z and p for the SimSiam-style loss.

Channel attention pools GLOBALLY (average and maximum over the whole image), and so do
the encoder's BatchNorm layers at detection when they normalise each date with its own
statistics (``date_norm``; the paper uses the running statistics). In ``features`` (training,
whole-image detection) they get them from one shared ``GlobalStats``, over the valid pixels.
``layerwise_features`` spells the same encoder out step by step, so that tiled detection
(layerwise.py) can compute each global statistic over the whole image, layer after layer.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

REDUCTION = 16  # channel attention's reduction ratio
SPATIAL_KERNEL = 7  # spatial attention's kernel
POOL_SIZE = 5  # the spatial branch's final average pool
# How far the encoder reaches around a pixel: three blocks of (conv 3x3 + spatial
# attention 7x7) = 3 * (1 + 3), the 5x5 pool = 2, and the spectral branch's 3x3 fusion
# conv = 1 (less than the spatial side's total). Tiled detection reads each of its
# layer-by-layer passes with the reach of that pass's layers only (at most 3).
RECEPTIVE_RADIUS = 3 * (1 + SPATIAL_KERNEL // 2) + POOL_SIZE // 2


def hidden_width(bands: int, requested: int = 0) -> int:
    """h: the requested width, or B/2 rounded to a multiple of 8, at least 16."""
    if requested and requested > 0:
        return int(requested)
    return max(16, int(bands / 2 / 8 + 0.5) * 8)


class GlobalStats:
    """Where channel attention (global average and maximum) and, with ``date_norm``, the
    encoder's BatchNorm layers at detection (mean and variance) get their statistics: over
    the valid pixels (``mask``, (1, 1, H, W) bool, None: all) of the current input.
    Tiled detection computes the same statistics layer by layer instead (layerwise.py)."""

    def __init__(self, date_norm: bool = False):
        self.date_norm = date_norm
        self.mask: Optional[torch.Tensor] = None

    def pooled(self, x: torch.Tensor):
        """(avg, max) of x (1, C, H, W) over the image, as (1, C, 1, 1) tensors."""
        return _masked_pool(x, self.mask)

    def moments(self, x: torch.Tensor):
        """(mean, biased variance) of x (1, C, H, W) over the image, as (1, C, 1, 1) tensors."""
        return _masked_moments(x, self.mask)


def _masked_pool(x: torch.Tensor, mask: Optional[torch.Tensor]):
    if mask is None or bool(mask.all()):
        return x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    m = mask.to(x.dtype)
    count = m.sum().clamp_min(1.0)
    avg = (x * m).sum(dim=(2, 3), keepdim=True) / count
    mx = x.masked_fill(~mask, float("-inf")).amax(dim=(2, 3), keepdim=True)
    return avg, torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))


def _masked_moments(x: torch.Tensor, mask: Optional[torch.Tensor]):
    if mask is None or bool(mask.all()):
        return x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)
    m = mask.to(x.dtype)
    count = m.sum().clamp_min(1.0)
    mean = (x * m).sum(dim=(2, 3), keepdim=True) / count
    var = (((x - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / count
    return mean, var


class DateNorm(nn.BatchNorm2d):
    """BatchNorm that, at detection with ``stats.date_norm``, normalises an image with its own
    statistics (as training did, one date at a time) instead of the running averages over
    both dates; otherwise exactly nn.BatchNorm2d."""

    def __init__(self, channels: int, stats: GlobalStats):
        super().__init__(channels)
        self.stats = stats

    def forward(self, x):
        if self.training or not self.stats.date_norm:
            return super().forward(x)
        return self.normalise(x, *self.stats.moments(x))

    def normalise(self, x, mean, var):
        """x normalised with the given (1, C, 1, 1) mean and variance."""
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ChannelAttention(nn.Module):
    """Sigmoid(mlp(global avg) + mlp(global max)), multiplied into the input."""

    def __init__(self, channels: int, stats: GlobalStats):
        super().__init__()
        hidden = max(1, channels // REDUCTION)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1, bias=False))
        self.stats = stats

    def forward(self, x):
        return self.weigh(x, *self.stats.pooled(x))

    def weigh(self, x, avg, mx):
        """x weighed by the attention of the given (1, C, 1, 1) average and maximum."""
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

    def __init__(self, cin: int, cout: int, stats: GlobalStats):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = DateNorm(cout, stats)
        self.channel = ChannelAttention(cout, stats)
        self.spatial = SpatialAttention()
        self.shortcut = (nn.Identity() if cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), DateNorm(cout, stats)))

    def forward(self, x):
        out = self.spatial(self.channel(self.bn(self.conv(x))))
        return _add_relu(out, self.shortcut(x))

    def layerwise(self, x, g):
        """``forward`` for HyperNetModel.layerwise_features; the output is stored (it feeds
        the next block twice)."""
        out = g.attend(self.channel, g.norm(self.bn, g.local(self.conv, x, 1)))
        out = g.local(self.spatial, out, SPATIAL_KERNEL // 2)
        shortcut = x if isinstance(self.shortcut, nn.Identity) else g.norm(self.shortcut[1],
                                                                           g.local(self.shortcut[0], x, 0))
        return g.keep(g.pointwise(_add_relu, out, shortcut))


class SpectralBlock(nn.Module):
    """conv 1x1 -> BN -> channel attention; with a residual ReLU when the width is kept."""

    def __init__(self, cin: int, cout: int, stats: GlobalStats):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = DateNorm(cout, stats)
        self.channel = ChannelAttention(cout, stats)
        self.residual = cin == cout

    def forward(self, x):
        out = self.channel(self.bn(self.conv(x)))
        return _add_relu(x, out) if self.residual else out

    def layerwise(self, x, g):
        """``forward`` for HyperNetModel.layerwise_features; a residual output is stored (it
        feeds the next block twice)."""
        out = g.attend(self.channel, g.norm(self.bn, g.local(self.conv, x, 0)))
        return g.keep(g.pointwise(_add_relu, x, out)) if self.residual else out


class HyperNetModel(nn.Module):
    """Encoder (both branches and the fusion), projector and predictor."""

    def __init__(self, bands: int, hidden: int):
        super().__init__()
        if hidden < REDUCTION:
            raise ValueError(f"hidden width must be at least {REDUCTION}")
        self.bands, self.hidden = bands, hidden
        self.stats = GlobalStats()
        h, f = hidden, 2 * hidden
        # The forward pass runs the spectral branch first (cheap), so the passes of tiled
        # detection that collect the spatial branch's statistics redo little work.
        self.spectral = nn.Sequential(SpectralBlock(bands, h, self.stats), SpectralBlock(h, h, self.stats),
                                      SpectralBlock(h, h, self.stats))
        self.spatial = nn.Sequential(SpatialBlock(bands, h, self.stats), SpatialBlock(h, h, self.stats),
                                     SpatialBlock(h, h, self.stats),
                                     nn.AvgPool2d(POOL_SIZE, stride=1, padding=POOL_SIZE // 2))
        self.fuse_spatial = nn.Sequential(nn.Conv2d(h, h, 1, bias=False), DateNorm(h, self.stats))
        self.fuse_spectral = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, bias=False), DateNorm(h, self.stats))
        self.projector = nn.Sequential(
            nn.Conv2d(f, f, 1, bias=False), nn.BatchNorm2d(f), nn.ReLU(),
            nn.Conv2d(f, f, 1, bias=False), nn.BatchNorm2d(f), nn.ReLU(),
            nn.Conv2d(f, f, 1, bias=True), nn.BatchNorm2d(f, affine=False))
        self.predictor = nn.Sequential(nn.Conv2d(f, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
                                       nn.Conv2d(h, f, 1, bias=False))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Fused features (1, 2h, H, W) of one image (1, B, H, W); mask: the pixels global
        statistics cover (valid pixels)."""
        self.stats.mask = mask
        try:
            spectral = self.fuse_spectral(self.spectral(x))
            spatial = self.fuse_spatial(self.spatial(x))
        finally:
            self.stats.mask = None
        return torch.cat([spatial, spectral], dim=1)

    def layerwise_features(self, x, g):
        """``features`` again, step by step for a layer-by-layer evaluator ``g`` (tiled
        detection, layerwise.py): x and the results are g's whole-image activations; g.local
        applies a module that reaches ``radius`` pixels around each pixel, g.pointwise a
        per-pixel function, g.norm and g.attend a DateNorm or channel attention (computing
        their global statistics), g.keep stores an activation used more than once."""
        spectral = x
        for block in self.spectral:
            spectral = block.layerwise(spectral, g)
        spectral = g.norm(self.fuse_spectral[1], g.local(self.fuse_spectral[0], spectral, 1))
        spatial = x
        for block in self.spatial[:-1]:
            spatial = block.layerwise(spatial, g)
        spatial = g.local(self.spatial[-1], spatial, POOL_SIZE // 2)
        spatial = g.norm(self.fuse_spatial[1], g.local(self.fuse_spatial[0], spatial, 0))
        return g.pointwise(lambda a, b: torch.cat([a, b], dim=1), spatial, spectral)

    def embed(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        """(z, p) of one image: projector output and predictor output, (1, 2h, H, W) each."""
        z = self.projector(self.features(x, mask))
        return z, self.predictor(z)


def _add_relu(a, b):
    """A residual connection: relu(a + b)."""
    return torch.relu(a + b)


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
