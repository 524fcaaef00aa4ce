"""Where a model's distilled feature map is read: `forward_features`, a timm `feature_info` index, or a module."""

from __future__ import annotations

import math

import torch
from timm.models._features import feature_take_indices
from torch import nn
from torch.nn import functional as F

__all__ = ["FINAL_MAP_INDEX", "FeatureTap", "common_spatial_size", "match_spatial_size", "probe_feature_shape"]

# The feature index that means "the map forward_features returns", whatever the model's feature_info says.
FINAL_MAP_INDEX = -1


class FeatureTap:
    """Reads one feature map of `model` during its forward pass.

    `index=-1` (the default) is the map `forward_features` returns, for every timm family: the input of
    `forward_head` (ViT/DeiT: after the final norm, patch tokens laid out as `[B, C, H/p, W/p]` without the
    class/register tokens; EfficientNet: the 1280-channel `conv_head` output; ConvNeXt, ResNet, RegNet,
    MobileNetV3: the last stage's output). Any other index selects that entry of `model.feature_info`
    through timm's `forward_intermediates` (negative indices count from its end). Both work under
    `torch.compile` and gradient checkpointing. Models without them name a module instead (`module_name`)
    and the map is its output, captured by a forward hook; it must be a `[B, C, H, W]` map.
    """

    def __init__(self, model: nn.Module, index: int = -1, module_name: str | None = None, role: str = "model") -> None:
        self.role = role
        self.module_name = module_name
        self._captured: torch.Tensor | None = None
        if module_name is not None:
            self.index = None
            _hook_module(model, module_name, role).register_forward_hook(self._capture)
            return
        if index == FINAL_MAP_INDEX and hasattr(model, "forward_features"):
            self.index = FINAL_MAP_INDEX
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
        if self.module_name is not None:  # the model's own forward: the module may sit in its head
            logits = model(pixel_values)
            return logits, self._take_captured()
        head_input, feature_map = self.head_input_and_map(model, pixel_values)
        return model.forward_head(head_input), feature_map

    def head_input_and_map(self, model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward: what the model's head reads (`forward_features`' output) and the tapped map `[B, C, H, W]`.

        Logits (`forward_head`) and the summary (`forward_head(..., pre_logits=True)`) both come from the first,
        so a teacher that gives its map, logits and summary runs its trunk once.
        """
        if self.module_name is not None:  # the hooked module runs inside forward_features
            head_input = model.forward_features(pixel_values)
            return head_input, self._take_captured()
        if self.index == FINAL_MAP_INDEX:
            head_input = model.forward_features(pixel_values)
            return head_input, _as_nchw(model, head_input, pixel_values.shape[-2:], self.role)
        head_input, intermediates = model.forward_intermediates(pixel_values, indices=[self.index])
        return head_input, intermediates[0]

    def map_only(self, model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """The feature map `[B, C, H, W]`, stopping the forward as early as the model allows."""
        if self.module_name is not None:
            model(pixel_values)
            return self._take_captured()
        if self.index == FINAL_MAP_INDEX:
            return _as_nchw(model, model.forward_features(pixel_values), pixel_values.shape[-2:], self.role)
        return model.forward_intermediates(
            pixel_values, indices=[self.index], stop_early=True, intermediates_only=True
        )[0]


def _hook_module(model: nn.Module, module_name: str, role: str) -> nn.Module:
    if not module_name:  # "" is the model itself: its output is logits, never a feature map
        raise ValueError(
            f"{role} feature module is '' (empty); name a module whose output is a [B, C, H, W] map, e.g. "
            f"{[name for name, _ in model.named_children()]}, or give a feature index instead"
        )
    modules = dict(model.named_modules())
    if module_name not in modules:
        raise ValueError(
            f"{role} has no module named {module_name!r}; pick one of its named modules, e.g. "
            f"{[name for name, _ in model.named_children()]}"
        )
    return modules[module_name]


def _as_nchw(model: nn.Module, features: torch.Tensor, input_size: torch.Size, role: str) -> torch.Tensor:
    """`forward_features`' output as `[B, C, H, W]`: NHWC maps permuted, ViT-style tokens laid out on their grid."""
    if features.ndim == 4:
        return features.permute(0, 3, 1, 2) if getattr(model, "output_fmt", "NCHW") == "NHWC" else features
    if features.ndim != 3:
        return features  # refused with the shape named by probe_feature_shape
    patches = features[:, getattr(model, "num_prefix_tokens", 0) :]  # class/register tokens are not on the grid
    height, width = _token_grid(model, tuple(input_size), patches.shape[1], role)
    return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], height, width)


def _token_grid(model: nn.Module, input_size: tuple[int, int], num_tokens: int, role: str) -> tuple[int, int]:
    patch_embed = getattr(model, "patch_embed", None)
    if getattr(model, "dynamic_img_size", False) and hasattr(patch_embed, "dynamic_feat_size"):
        grid = tuple(patch_embed.dynamic_feat_size(input_size))
    else:
        grid = tuple(getattr(patch_embed, "grid_size", None) or ())
    if len(grid) == 2 and grid[0] * grid[1] == num_tokens:
        return grid
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(
            f"{role}: forward_features returns {num_tokens} patch tokens, which form no grid; pick a feature index "
            "other than -1 or a module whose output is a [B, C, H, W] map"
        )
    return side, side


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
            f"valid indices are {-num_maps}..{num_maps - 1} (-1 = the map forward_features returns)."
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
    if not isinstance(feature_map, torch.Tensor) or feature_map.ndim != 4:
        shape = tuple(feature_map.shape) if isinstance(feature_map, torch.Tensor) else type(feature_map).__name__
        where = f"module {tap.module_name!r}" if tap.module_name is not None else f"feature index {tap.index}"
        raise ValueError(
            f"{tap.role} ({where}): feature map has shape {shape}; FEED needs a [B, C, H, W] map. Pick a "
            "convolutional stage (a feature index, or a module such as a stage or block)."
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
