"""The classic U-Net (Ronneberger et al., 2015) as a configurable 2D torch module.

Contracting path: per level two 'same' 3x3 convolutions (each followed by an optional norm and ReLU),
then 2x2 max-pooling (and optional dropout). Expansive path: 2x2 transposed convolution halving the
channels, concatenation with the skip of the same level, two 3x3 convolutions. A 1x1 convolution maps
to the class logits. With ``base_width=64, depth=4`` the widths run 64 → 1024 as in the original.

Inputs whose height or width is not a multiple of ``2**depth`` are padded (reflect) before the network
and the logits are cropped back, so any size goes in and the same size comes out.

The parameters are float32 whatever torch's default dtype (a notebook's ``torch.set_default_dtype(torch.float64)``
made a float64 network, which the float32 slices of inference and training could not go through).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetConfig", "UNet2D"]

_NORMS = ("none", "batch", "instance")

# every layer's parameters and buffers are made as float32, not in torch's default dtype: the same initial values,
# draw for draw, as in a process left at float32
_FLOAT32 = {"dtype": torch.float32}


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet2D`."""

    in_channels: int = 1
    n_classes: int = 2
    base_width: int = 64
    depth: int = 4
    dropout: float = 0.0
    norm: str = "batch"

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.n_classes < 2:
            raise ValueError(f"in_channels must be >= 1 and n_classes >= 2, got {self.in_channels}, {self.n_classes}")
        if self.base_width < 1 or self.depth < 1:
            raise ValueError(f"base_width and depth must be >= 1, got {self.base_width}, {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {self.norm!r}")


def _double_conv(in_ch: int, out_ch: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in in (in_ch, out_ch):
        layers.append(nn.Conv2d(c_in, out_ch, kernel_size=3, padding=1, bias=norm == "none", **_FLOAT32))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(out_ch, **_FLOAT32))
        elif norm == "instance":
            layers.append(nn.InstanceNorm2d(out_ch, affine=True, **_FLOAT32))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet2D(nn.Module):
    """Classic U-Net for 2D slices: ``(B, in_channels, H, W) -> (B, n_classes, H, W)`` logits."""

    def __init__(self, config: UNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        self.config = config if config is not None else UNetConfig(**kwargs)
        cfg = self.config
        widths = [cfg.base_width * 2**level for level in range(cfg.depth + 1)]
        self.down = nn.ModuleList()
        channels = cfg.in_channels
        for width in widths[:-1]:
            self.down.append(_double_conv(channels, width, cfg.norm))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout2d(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.bottom = _double_conv(widths[-2], widths[-1], cfg.norm)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(width * 2, width, kernel_size=2, stride=2, **_FLOAT32))
            self.up_conv.append(_double_conv(width * 2, width, cfg.norm))
        self.head = nn.Conv2d(widths[0], cfg.n_classes, kernel_size=1, **_FLOAT32)

    @property
    def multiple(self) -> int:
        """Height and width are padded to a multiple of this inside :meth:`forward`."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = -height % self.multiple
        pad_w = -width % self.multiple
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.drop(self.pool(x))
        x = self.bottom(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips)):
            x = conv(torch.cat([skip, up(x)], dim=1))
        x = self.head(x)
        return x[..., :height, :width]

