"""SRVGGNetCompact: the small Real-ESRGAN network (``realesr-animevideov3``, ``realesr-general-x4v3``).

A plain stack of 3x3 convolutions with PReLU, a pixel shuffle to the output
size, and the nearest-neighbour upscaled input added back (the network learns
the residual). The shape is read from a checkpoint's state dict, so any
SRVGGNetCompact checkpoint loads (Real-ESRGAN, BSD-3-Clause; the layer names
are theirs, which is what lets their ``.pth`` files load as they are).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional

_CONV_WEIGHT = re.compile(r"^body\.(\d+)\.weight$")


class SRVGGNetCompact(nn.Module):
    """``in_channels`` -> ``num_feat`` features through ``num_conv`` + 2 convolutions, upscaled ``scale`` times."""

    def __init__(self, *, in_channels: int = 3, num_feat: int = 64, num_conv: int = 16, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.num_conv = num_conv
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, in_channels * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    @property
    def receptive_radius(self) -> int:
        """How many input pixels away a pixel of the result can see: one per 3x3 convolution."""
        return self.num_conv + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N x C x H x W, values 0..1) upscaled to N x C x sH x sW."""
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + functional.interpolate(x, scale_factor=self.scale, mode="nearest")


def from_state_dict(state: Mapping[str, torch.Tensor]) -> SRVGGNetCompact:
    """The network a checkpoint's state dict describes, with its weights; ``ValueError`` when it is not one."""
    convs = sorted(int(match[1]) for key in state if (match := _CONV_WEIGHT.match(key)) and state[key].dim() == 4)
    if len(convs) < 2 or convs[0] != 0:
        raise ValueError("no SRVGGNetCompact convolutions (body.N.weight) in the state dict")
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    in_channels, num_feat = first.shape[1], first.shape[0]
    scale = math.isqrt(last.shape[0] // in_channels)
    if scale < 1 or scale * scale * in_channels != last.shape[0]:
        raise ValueError(f"the last convolution has {last.shape[0]} channels, not {in_channels} x scale²")
    network = SRVGGNetCompact(in_channels=in_channels, num_feat=num_feat, num_conv=len(convs) - 2, scale=scale)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:  # a missing, extra or mis-shaped tensor
        raise ValueError(str(error).splitlines()[0]) from error
    return network.eval()
