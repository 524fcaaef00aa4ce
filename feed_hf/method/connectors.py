"""The non-linear transformation layer (NTL, "connector") that maps a student map onto a teacher's."""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import get_act_layer, get_norm_layer
from torch import nn

from .features import match_spatial_size

__all__ = ["FeedConnector"]


def _activation(name: str) -> type[nn.Module] | partial:
    if name == "leaky_relu":
        # Factor Transfer's translator uses a 0.1 slope, not torch's 0.01 default.
        return partial(nn.LeakyReLU, negative_slope=0.1)
    return get_act_layer(name)


class FeedConnector(nn.Sequential):
    """NTL: `num_layers` 3×3 convs (stride 1, padding 1, bias), each followed by norm and activation.

    Default layout = Factor Transfer's translator: C_s → mid → C_t → C_t with mid = C_s,
    LeakyReLU(0.1), no norm. Input `[B, C_s, H, W]`, output `[B, C_t, *output_size]` (pooled down
    when `output_size` is smaller than H×W; see `common_spatial_size`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        num_layers: int = 3,
        norm: str = "none",
        activation: str = "leaky_relu",
        output_size: tuple[int, int] | None = None,
    ) -> None:
        mid_channels = mid_channels or in_channels
        # Channel widths along the stack: C_s, then mid for all but the last two convs, then C_t.
        widths = [in_channels] + [mid_channels] * (num_layers - 2) + [out_channels] * min(num_layers, 2)
        act_layer = _activation(activation)
        norm_layer = None if norm == "none" else get_norm_layer(norm)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=True))
            if norm_layer is not None:
                layers.append(norm_layer(c_out))
            layers.append(act_layer())
        super().__init__(*layers)
        self.output_size = tuple(output_size) if output_size is not None else None

    def forward(self, student_map: torch.Tensor) -> torch.Tensor:
        connected = super().forward(student_map)
        return connected if self.output_size is None else match_spatial_size(connected, self.output_size)
