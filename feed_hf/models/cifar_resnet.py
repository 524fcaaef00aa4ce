"""CIFAR ResNets (He et al. 2016, §4.2) in the RepDistiller / mdistiller layout, as timm models.

Three stages at 32×32, 16×16 and 8×8; BasicBlocks; 1×1-conv + BN projection shortcuts wherever
stride or width changes (not the paper's option A zero-padding), so parameter counts and accuracy
compare with the CRD / DKD tables (resnet56: 0.86 M parameters with 100 classes).
"""

from __future__ import annotations

import torch
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ._common import cifar_cfg, run_intermediates

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


class CifarResNet(nn.Module):
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
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        self.layer1 = _make_stage(widths[0], widths[1], blocks_per_stage, 1)
        self.layer2 = _make_stage(widths[1], widths[2], blocks_per_stage, 2)
        self.layer3 = _make_stage(widths[2], widths[3], blocks_per_stage, 2)
        self.num_features = self.head_hidden_size = widths[3]
        self.feature_info = [
            dict(num_chs=widths[0], reduction=1, module="act1"),
            dict(num_chs=widths[1], reduction=1, module="layer1"),
            dict(num_chs=widths[2], reduction=2, module="layer2"),
            dict(num_chs=widths[3], reduction=4, module="layer3"),
        ]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))

    @property
    def _stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3]

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Feature maps after the stem (index 0) and after each stage (1–3); see timm's contract."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' for {type(self).__name__}, got {output_fmt!r}")
        return run_intermediates(self._stem, self._stages, nn.Identity(), x, indices, stop_early, intermediates_only)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem(x)
        for stage in self._stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
