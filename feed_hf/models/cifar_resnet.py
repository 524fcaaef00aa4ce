"""CIFAR ResNets (He et al. 2016, §4.2) in the RepDistiller / mdistiller layout, as timm models.

Three stages at 32×32, 16×16 and 8×8; BasicBlocks; 1×1-conv + BN projection shortcuts wherever
stride or width changes (not the paper's option A zero-padding), so parameter counts and accuracy
compare with the CRD / DKD tables (resnet56: 0.86 M parameters with 100 classes).
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ._common import CifarNet, cifar_cfg

__all__ = ["CifarResNet"]


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


def _make_stage(in_channels: int, out_channels: int, num_blocks: int, stride: int) -> nn.Sequential:
    blocks = [BasicBlock(in_channels, out_channels, stride)]
    blocks += [BasicBlock(out_channels, out_channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class CifarResNet(CifarNet):
    """ResNet-(6n+2) for 32×32 inputs; `widths` = (stem, stage1, stage2, stage3)."""

    def __init__(
        self,
        depth: int = 56,
        widths: tuple[int, int, int, int] = (16, 16, 32, 64),
        num_classes: int = 100,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        self.layer1 = _make_stage(widths[0], widths[1], blocks_per_stage, 1)
        self.layer2 = _make_stage(widths[1], widths[2], blocks_per_stage, 2)
        self.layer3 = _make_stage(widths[2], widths[3], blocks_per_stage, 2)
        self.feature_info = [
            dict(num_chs=widths[0], reduction=1, module="act1"),
            dict(num_chs=widths[1], reduction=1, module="layer1"),
            dict(num_chs=widths[2], reduction=2, module="layer2"),
            dict(num_chs=widths[3], reduction=4, module="layer3"),
        ]
        self._make_head(widths[3], num_classes, global_pool)
        self._init_conv_and_norm()

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))


def _create(variant: str, pretrained: bool, **kwargs) -> CifarResNet:
    return build_model_with_cfg(CifarResNet, variant, pretrained, feature_cfg=dict(feature_cls="getter"), **kwargs)


_NARROW = (16, 16, 32, 64)
_WIDE_X4 = (32, 64, 128, 256)

default_cfgs = generate_default_cfgs(
    {
        name: cifar_cfg()
        for name in (
            "resnet8_cifar",
            "resnet14_cifar",
            "resnet20_cifar",
            "resnet32_cifar",
            "resnet44_cifar",
            "resnet56_cifar",
            "resnet110_cifar",
            "resnet8x4_cifar",
            "resnet32x4_cifar",
        )
    }
)


@register_model
def resnet8_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet8_cifar", pretrained, depth=8, widths=_NARROW, **kwargs)


@register_model
def resnet14_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet14_cifar", pretrained, depth=14, widths=_NARROW, **kwargs)


@register_model
def resnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet20_cifar", pretrained, depth=20, widths=_NARROW, **kwargs)


@register_model
def resnet32_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet32_cifar", pretrained, depth=32, widths=_NARROW, **kwargs)


@register_model
def resnet44_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet44_cifar", pretrained, depth=44, widths=_NARROW, **kwargs)


@register_model
def resnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet56_cifar", pretrained, depth=56, widths=_NARROW, **kwargs)


@register_model
def resnet110_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet110_cifar", pretrained, depth=110, widths=_NARROW, **kwargs)


@register_model
def resnet8x4_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet8x4_cifar", pretrained, depth=8, widths=_WIDE_X4, **kwargs)


@register_model
def resnet32x4_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _create("resnet32x4_cifar", pretrained, depth=32, widths=_WIDE_X4, **kwargs)
