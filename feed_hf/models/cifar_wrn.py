"""CIFAR Wide ResNets WRN-d-k (Zagoruyko & Komodakis 2016) in the RepDistiller layout, as timm models.

Pre-activation blocks (BN → ReLU → conv), 1×1-conv shortcuts where the width changes, a final
BN + ReLU before pooling. That final BN + ReLU belongs to the last feature map: feature index -1 is
the map global pooling sees, as for every model in this package.
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ._common import CifarNet, cifar_cfg

__all__ = ["CifarWideResNet"]


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.act1(self.bn1(x))
        # A projecting block takes its shortcut from the pre-activation, an identity block from x.
        shortcut = x if self.shortcut is None else self.shortcut(preact)
        out = self.conv1(preact)
        out = self.conv2(self.drop(self.act2(self.bn2(out))))
        return out + shortcut


class CifarWideResNet(CifarNet):
    """WRN-depth-widen_factor for 32×32 inputs: depth = 6n + 4."""

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 2,
        num_classes: int = 100,
        in_chans: int = 3,
        global_pool: str = "avg",
        block_drop_rate: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4 (16, 28, 40, ...), got {depth}")
        blocks_per_stage = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.layer1 = _make_stage(widths[0], widths[1], blocks_per_stage, 1, block_drop_rate)
        self.layer2 = _make_stage(widths[1], widths[2], blocks_per_stage, 2, block_drop_rate)
        self.layer3 = _make_stage(widths[2], widths[3], blocks_per_stage, 2, block_drop_rate)
        self.final_norm = nn.Sequential(nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True))
        self.feature_info = [
            dict(num_chs=widths[0], reduction=1, module="conv1"),
            dict(num_chs=widths[1], reduction=1, module="layer1"),
            dict(num_chs=widths[2], reduction=2, module="layer2"),
            dict(num_chs=widths[3], reduction=4, module="final_norm"),
        ]
        self._make_head(widths[3], num_classes, global_pool)
        self._init_conv_and_norm()
        nn.init.zeros_(self.fc.bias)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(x)

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_norm(x)


def _make_stage(in_channels: int, out_channels: int, num_blocks: int, stride: int, drop: float) -> nn.Sequential:
    blocks = [PreActBlock(in_channels, out_channels, stride, drop)]
    blocks += [PreActBlock(out_channels, out_channels, 1, drop) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def _create(variant: str, pretrained: bool, **kwargs) -> CifarWideResNet:
    return build_model_with_cfg(CifarWideResNet, variant, pretrained, feature_cfg=dict(feature_cls="getter"), **kwargs)


default_cfgs = generate_default_cfgs(
    {name: cifar_cfg() for name in ("wrn_16_2_cifar", "wrn_40_1_cifar", "wrn_40_2_cifar", "wrn_28_10_cifar")}
)


@register_model
def wrn_16_2_cifar(pretrained: bool = False, **kwargs) -> CifarWideResNet:
    return _create("wrn_16_2_cifar", pretrained, depth=16, widen_factor=2, **kwargs)


@register_model
def wrn_40_1_cifar(pretrained: bool = False, **kwargs) -> CifarWideResNet:
    return _create("wrn_40_1_cifar", pretrained, depth=40, widen_factor=1, **kwargs)


@register_model
def wrn_40_2_cifar(pretrained: bool = False, **kwargs) -> CifarWideResNet:
    return _create("wrn_40_2_cifar", pretrained, depth=40, widen_factor=2, **kwargs)


@register_model
def wrn_28_10_cifar(pretrained: bool = False, **kwargs) -> CifarWideResNet:
    return _create("wrn_28_10_cifar", pretrained, depth=28, widen_factor=10, **kwargs)
