"""The BS3LNet network: a small fully convolutional residual network, B bands in and out.

Every convolution is 3x3 with reflection padding, so the network's receptive-field
radius is one pixel per convolution: 3 + 2 * blocks (7 for the paper's 2 blocks).
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance")


def _conv(cin: int, cout: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=1, padding=1, padding_mode="reflect", bias=bias)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # Running statistics make the instance-norm variant act pixel-wise at detection, so
    # that tiled and whole-image detection agree.
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class ResidualBlock(nn.Module):
    def __init__(self, features: int, norm: str):
        super().__init__()
        bias = norm == "instance"
        self.body = nn.Sequential(_conv(features, features, bias), _norm(norm, features), nn.ReLU(inplace=True),
                                  _conv(features, features, bias), _norm(norm, features))

    def forward(self, x):
        return x + self.body(x)


class BS3LNet(nn.Module):
    def __init__(self, bands: int, features: int = 64, blocks: int = 2, norm: str = "batch"):
        super().__init__()
        bias = norm == "instance"
        self.encoder = nn.Sequential(_conv(bands, features, True), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(features, norm) for _ in range(blocks)])
        self.decoder = nn.Sequential(_conv(features, features, bias), _norm(norm, features))
        self.output = _conv(features, bands, True)
        self.reset_parameters()

    @staticmethod
    def receptive_radius(blocks: int) -> int:
        return 3 + 2 * blocks

    def reset_parameters(self):
        """The paper's initialisation: conv weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.encoder(x)
        return self.output(self.decoder(self.blocks(x0)) + x0)
