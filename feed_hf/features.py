"""Where a model's distilled feature map is read: a timm `feature_info` index or a named module."""

from __future__ import annotations

import torch
from timm.models._features import feature_take_indices
from torch import nn
from torch.nn import functional as F

__all__ = ["FeatureTap", "common_spatial_size", "match_spatial_size", "probe_feature_shape"]


class FeatureTap:
    """Reads one feature map of `model` during its forward pass.

    By default (`index=-1`) the map is the final pre-pool map, the one `forward_features` returns,
    read through timm's `forward_intermediates` (works under `torch.compile` and gradient
    checkpointing). `index` selects another entry of `model.feature_info`. Models without
    `forward_intermediates` name a module instead (`module_name`) and the map is its output,
    captured by a forward hook.
    """

    def __init__(self, model: nn.Module, index: int = -1, module_name: str | None = None, role: str = "model") -> None:
        self.role = role
        self.module_name = module_name
        self._captured: torch.Tensor | None = None
        if module_name is not None:
            self.index = None
            modules = dict(model.named_modules())
            if module_name not in modules:
                raise ValueError(
                    f"{role} has no module named {module_name!r}; pick one of its named modules, e.g. "
                    f"{[name for name, _ in list(model.named_children())]}"
                )
            modules[module_name].register_forward_hook(self._capture)
            return
        if not hasattr(model, "forward_intermediates"):
            raise ValueError(
                f"{role} ({type(model).__name__}) has no forward_intermediates; name the module whose "
                f"output is the feature map instead (the *_feature_module option)."
            )
        self.index = _absolute_index(model, index, role)

    def _capture(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._captured = output

    def _take_captured(self) -> torch.Tensor:
        feature_map, self._captured = self._captured, None
        if feature_map is None:
            raise RuntimeError(f"{self.role}: module {self.module_name!r} did not run during the forward pass")
        return feature_map

    def logits_and_map(self, model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward: class logits `[B, K]` and the feature map `[B, C, H, W]`."""
        if self.module_name is not None:
            logits = model(pixel_values)
            return logits, self._take_captured()
        final_map, intermediates = model.forward_intermediates(pixel_values, indices=[self.index])
        return model.forward_head(final_map), intermediates[0]

    def map_only(self, model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """The feature map `[B, C, H, W]`, stopping the forward as early as the model allows."""
        if self.module_name is not None:
            model(pixel_values)
            return self._take_captured()
        return model.forward_intermediates(
            pixel_values, indices=[self.index], stop_early=True, intermediates_only=True
        )[0]


def _absolute_index(model: nn.Module, index: int, role: str) -> int:
    feature_info = getattr(model, "feature_info", None)
    if not feature_info:
        raise ValueError(f"{role} ({type(model).__name__}) has no feature_info; name a feature module instead.")
    num_maps = len(feature_info)
    try:  # timm's own index resolution (negative indices count from the last map), its range check made ours
        (absolute,), _ = feature_take_indices(num_maps, [index])
    except AssertionError:
        raise ValueError(
            f"{role} feature index {index} is out of range: {type(model).__name__} has {num_maps} feature maps, "
            f"valid indices are {-num_maps}..{num_maps - 1} (-1 = the final pre-pool map)."
        ) from None
    return absolute


@torch.no_grad()
def probe_feature_shape(model: nn.Module, tap: FeatureTap, input_size: tuple[int, int, int]) -> torch.Size:
    """`(C, H, W)` of the tapped map for one input of `input_size`, found by a forward in eval mode."""
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else None
        dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else None
        feature_map = tap.map_only(model, torch.zeros(1, *input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    if feature_map.ndim != 4:
        raise ValueError(
            f"{tap.role}'s feature map has shape {tuple(feature_map.shape)}; FEED needs a [B, C, H, W] map. "
            "Pick a convolutional stage (feature index or module)."
        )
    return feature_map.shape[1:]


def common_spatial_size(student_size: tuple[int, int], teacher_size: tuple[int, int]) -> tuple[int, int]:
    """The H×W both maps are compared at: the smaller of the two, per axis.

    The larger map is average-pooled down (as RepDistiller's Factor Transfer does), never upsampled,
    so no detail is invented; equal sizes are left alone.
    """
    return min(student_size[0], teacher_size[0]), min(student_size[1], teacher_size[1])


def match_spatial_size(feature_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`[B, C, H, W]` → `[B, C, *size]` by adaptive average pooling; identity when already that size."""
    if tuple(feature_map.shape[-2:]) == tuple(size):
        return feature_map
    if feature_map.shape[-2] < size[0] or feature_map.shape[-1] < size[1]:
        raise ValueError(f"cannot pool a {tuple(feature_map.shape[-2:])} map up to {tuple(size)}")
    return F.adaptive_avg_pool2d(feature_map, size)
