"""What the CIFAR model families share: the default cfg and the timm model interface (`CifarNet`)."""

from __future__ import annotations

import torch
from timm.layers import create_classifier
from timm.models._features import feature_take_indices
from torch import nn

# CIFAR-100 statistics, as RepDistiller / mdistiller normalise; CIFAR-10's differ by < 0.02.
CIFAR_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR_STD = (0.2673, 0.2564, 0.2762)


def cifar_cfg(**overrides) -> dict:
    """Default pretrained cfg of a 32×32 CIFAR classifier (no weights are shipped)."""
    cfg = {
        "url": "",
        "num_classes": 100,
        "input_size": (3, 32, 32),
        "pool_size": (8, 8),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
    }
    cfg.update(overrides)
    return cfg


class CifarNet(nn.Module):
    """The timm model interface shared by the CIFAR families: stem → stages → final norm → pool → fc.

    Subclasses build `conv1`…, `layer1..3`, `final_norm`, `feature_info` and call `_make_head`.
    Feature index 0 is the stem output, 1..3 the stage outputs; the last stage's map is taken after
    `final_norm`, so index -1 is exactly what `forward_features` returns (what global pooling sees).
    """

    num_classes: int
    num_features: int
    drop_rate: float
    grad_checkpointing: bool = False

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def _stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3]

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _make_head(self, num_features: int, num_classes: int, global_pool: str) -> None:
        self.num_features = self.head_hidden_size = num_features
        self.reset_classifier(num_classes, global_pool)

    def _init_conv_and_norm(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

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
        """timm's contract: the maps at `indices` (and the final map unless `intermediates_only`)."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' for {type(self).__name__}, got {output_fmt!r}")
        stages = self._stages
        take_indices, max_index = feature_take_indices(len(stages) + 1, indices)
        intermediates = []
        x = self._stem(x)
        if 0 in take_indices:
            intermediates.append(x)
        for stage_index, stage in enumerate(stages[:max_index] if stop_early else stages, start=1):
            x = stage(x)
            if stage_index == len(stages):
                x = self._final_norm(x)
            if stage_index in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem(x)
        for stage in self._stages:
            x = stage(x)
        return self._final_norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
