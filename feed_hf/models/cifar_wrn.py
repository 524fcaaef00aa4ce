"""CIFAR Wide ResNets WRN-d-k (Zagoruyko & Komodakis 2016) in the RepDistiller layout, as timm models.

Pre-activation blocks (BN → ReLU → conv), 1×1-conv shortcuts where the width changes, a final
BN + ReLU before pooling. That final BN + ReLU belongs to the last feature map: feature index -1 is
the map global pooling sees, as for every model in this package.
"""

from __future__ import annotations

import torch
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ._common import cifar_cfg, run_intermediates

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


class CifarWideResNet(nn.Module):
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
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.layer1 = self._stage(widths[0], widths[1], blocks_per_stage, 1, block_drop_rate)
        self.layer2 = self._stage(widths[1], widths[2], blocks_per_stage, 2, block_drop_rate)
        self.layer3 = self._stage(widths[2], widths[3], blocks_per_stage, 2, block_drop_rate)
        self.final_norm = nn.Sequential(nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True))
        self.num_features = self.head_hidden_size = widths[3]
        self.feature_info = [
            dict(num_chs=widths[0], reduction=1, module="conv1"),
            dict(num_chs=widths[1], reduction=1, module="layer1"),
            dict(num_chs=widths[2], reduction=2, module="layer2"),
            dict(num_chs=widths[3], reduction=4, module="final_norm"),
        ]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        self._init_weights()

    @staticmethod
    def _stage(in_channels: int, out_channels: int, num_blocks: int, stride: int, drop: float) -> nn.Sequential:
        blocks = [PreActBlock(in_channels, out_channels, stride, drop)]
        blocks += [PreActBlock(out_channels, out_channels, 1, drop) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

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
        """Maps after the stem conv (index 0) and each stage (1–3, the last after the final BN-ReLU)."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' for {type(self).__name__}, got {output_fmt!r}")
        return run_intermediates(self.conv1, self._stages, self.final_norm, x, indices, stop_early, intermediates_only)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for stage in self._stages:
            x = stage(x)
        return self.final_norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
