"""A transformers vision model behind the timm interface FEED reads, so it serves as a teacher or a student as is.

`TransformersVisionModel` wraps a transformers model (a vision backbone such as `Dinov2Model`, `CLIPVisionModel`,
`ConvNextModel`, or an `…ForImageClassification`) and offers what `FeatureTap`, `FrozenTeacher`, `FeedStudent`,
`resolution` and the records use from a timm model: `pretrained_cfg` (mean/std/input size from the image processor),
`forward_features` (the head's input: tokens `[B, N, C]` with `num_prefix_tokens` special tokens first, or a map
`[B, C, H, W]`), `forward_head`, `forward_intermediates` and `feature_info` (one entry per hidden state after the
embeddings), `num_features`, `num_classes`, `reset_classifier`, `set_input_size`, and for token models a `patch_embed`
that states the patch grid and whether the input size is fixed (`img_size`, `grid_size`, `strict_img_size`,
`dynamic_feat_size`). `feature_map` is the `-1` map as `[B, C, H, W]`. See docs/foundation_models.md.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed
from timm.models._features import feature_take_indices
from torch import nn

from .maps import FINAL_NORM, HEAD_POOLING, MapLayout, map_layout, pool_head_input, tokens_to_map
from .preprocessing import forward_takes, interpolates_positions

__all__ = [
    "PatchGrid",
    "TransformersVisionModel",
    "check_vision_model",
    "keep_every_patch",
    "patch_order_noise",
    "vision_backbone",
]

logger = logging.getLogger(__name__)


def vision_backbone(model: nn.Module) -> nn.Module:
    """The module of `model` that takes `pixel_values` and returns hidden states (its vision tower or base model)."""
    if not isinstance(getattr(model, "classifier", None), nn.Module):
        # A bare network is its own backbone; its `base_model` may be an inner encoder (DINOv3's `model`).
        return model
    tower = getattr(model, "vision_model", None)
    if isinstance(tower, nn.Module):
        return tower  # CLIPForImageClassification, SiglipForImageClassification
    return getattr(model, "base_model", model)


def check_vision_model(model: nn.Module) -> None:
    """Refuse, in one line naming its model type, a model whose network takes no `pixel_values` (a text model)."""
    if not forward_takes(vision_backbone(model), "pixel_values"):
        config = getattr(model.config, "vision_config", None) or model.config
        raise ValueError(
            f"model type {config.model_type!r} ({type(model).__name__}) takes no pixel_values: it is not a vision "
            "model, so it yields no feature map; use a vision model or a vision-language model's vision tower"
        )


def keep_every_patch(model: nn.Module) -> float:
    """An MAE-style encoder (its forward takes `noise`; `config.mask_ratio`) drops that share of its patches at random
    and shuffles the rest: pre-training, not what a teacher or a backbone sees. Set its mask ratio to 0 (the forward
    then keeps every patch; `patch_order_noise` keeps them in order) and return the ratio it had (0.0 if none)."""
    backbone = vision_backbone(model)
    config = getattr(backbone, "config", None)
    if not forward_takes(backbone, "noise") or not getattr(config, "mask_ratio", 0):
        return 0.0
    ratio, config.mask_ratio = float(config.mask_ratio), 0.0
    return ratio


def patch_order_noise(backbone: nn.Module, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
    """`{"noise": ascending}` for an MAE-style forward, whose patches are ordered by argsort(noise): with ascending
    noise they stay on their grid (random noise would shuffle them, a different map at every call); else `{}`."""
    if not forward_takes(backbone, "noise"):
        return {}
    patch = backbone.config.patch_size
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    count = (pixel_values.shape[-2] // patch) * (pixel_values.shape[-1] // patch)
    order = torch.arange(count, device=pixel_values.device, dtype=torch.float32)
    return {"noise": order.expand(pixel_values.shape[0], count)}


class PatchGrid:
    """The patch grid of a token model at its input size, as timm's `patch_embed` states it (not a module)."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, strict_img_size: bool) -> None:
        self.patch_size = (patch_size, patch_size)
        self.strict_img_size = strict_img_size
        self.set_img_size(img_size)

    def set_img_size(self, img_size: tuple[int, int]) -> None:
        self.img_size = tuple(img_size)
        self.grid_size = self.dynamic_feat_size(self.img_size)

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        return img_size[0] // self.patch_size[0], img_size[1] // self.patch_size[1]


class TransformersVisionModel(nn.Module):
    """A transformers vision model with timm's interface (module docstring); `model` is the wrapped model.

    `pretrained_cfg`: timm data-config keys (`input_size`, `mean`, `std`, …) read from the model's image processor
    (`transformers_preprocessing.processor_data_config`), plus whatever the loader records (`hf_hub_id`, `license`).
    `dynamic_img_size`: a token model runs at any input size (position embeddings interpolated); otherwise it runs at
    `pretrained_cfg["input_size"]` and says so (`patch_embed.strict_img_size`), as a timm ViT does.
    """

    def __init__(self, model: nn.Module, pretrained_cfg: dict[str, Any], dynamic_img_size: bool = False) -> None:
        super().__init__()
        self.model = model
        self.training = model.training  # the wrapper states the mode it holds (the head check below restores it)
        config = self.vision_config
        self.role = type(model).__name__
        check_vision_model(model)
        if masked := keep_every_patch(model):
            logger.warning(
                "%s: its forward masked %.0f%% of the patches at random (MAE pre-training); here it keeps every patch, "
                "in order (mask_ratio 0), as a teacher or backbone needs",
                self.role,
                100 * masked,
            )
        self.in_chans = int(getattr(config, "num_channels", 3) or 3)
        size = tuple(pretrained_cfg["input_size"][1:])
        self.final_norm = FINAL_NORM.get(type(model).__name__) if not self.has_classifier else None
        shapes = self._probe(size)  # sets self.layout
        self.dynamic_img_size = dynamic_img_size or self.layout.kind == "spatial" or self.layout.convolutional
        fixed = not self.dynamic_img_size
        self.pretrained_cfg = {
            "architecture": type(model).__name__,
            **pretrained_cfg,
            "fixed_input_size": fixed,
            "num_classes": self.num_classes,
        }
        self.default_cfg = self.pretrained_cfg
        self._traits = {"img_size": size, "fixed_input_size": fixed}
        if self.layout.kind != "spatial":
            self.patch_embed = PatchGrid(size, self.layout.patch_size or 1, strict_img_size=fixed)
            self.num_prefix_tokens = self.layout.num_prefix_tokens if self.layout.kind == "tokens" else 0
        self.num_features, self.head_hidden_size, self.feature_info = shapes
        if self.has_classifier and config.model_type not in HEAD_POOLING:
            self._check_head(size)

    @property
    def backbone(self) -> nn.Module:
        return vision_backbone(self.model)

    @property
    def vision_config(self):
        return getattr(self.model.config, "vision_config", None) or self.model.config

    @property
    def has_classifier(self) -> bool:
        return isinstance(getattr(self.model, "classifier", None), nn.Module)

    @property
    def num_classes(self) -> int:
        if not self.has_classifier:
            return 0
        linears = [module for module in self.model.classifier.modules() if isinstance(module, nn.Linear)]
        return linears[-1].out_features if linears else 0

    def _probe(self, size: tuple[int, int]) -> tuple[int, int, list[dict[str, Any]]]:
        """`self.layout`, then (`num_features`, `head_hidden_size`, `feature_info`), from one forward of a
        meta-device copy of the model (no memory, no compute)."""
        with torch.device("meta"):
            shell = type(self.model)(copy.deepcopy(self.model.config)).eval()
        backbone = vision_backbone(shell)
        pixels = torch.empty(1, self.in_chans, *size, device="meta")
        with torch.no_grad():
            outputs = backbone(pixels, output_hidden_states=True, **self._forward_options(pixels, backbone))
            self.layout = layout = map_layout(
                outputs, getattr(backbone, "embeddings", None), self.vision_config, size, self.role
            )
            head_input = self._head_input(outputs, size, backbone)
            pooled = pool_head_input(head_input, layout, backbone)
            maps = [self._stage_map(outputs, index, size) for index in range(self._num_hidden_states(outputs))]
        num_features = head_input.shape[-1] if layout.kind == "tokens" else head_input.shape[1]
        info = [
            {"num_chs": m.shape[1], "reduction": size[0] // m.shape[-2], "module": f"hidden_states.{i + 1}"}
            for i, m in enumerate(maps)
        ]
        return int(num_features), int(pooled.shape[-1]), info

    def _forward_options(self, pixel_values: torch.Tensor, backbone: nn.Module | None = None) -> dict[str, Any]:
        backbone = backbone if backbone is not None else self.backbone
        size = tuple(pixel_values.shape[-2:])
        options: dict[str, Any] = patch_order_noise(backbone, pixel_values)
        if forward_takes(getattr(backbone, "encoder", None), "output_hidden_states_before_downsampling"):
            options["output_hidden_states_before_downsampling"] = True  # Swin: each stage before its merge, as timm
        image_size = getattr(self.vision_config, "image_size", None)
        image_size = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size, image_size)
        if interpolates_positions(backbone) and tuple(size) != image_size:
            options["interpolate_pos_encoding"] = True
        return options

    def _run(self, pixel_values: torch.Tensor, hidden_states: bool) -> Any:
        hidden_states = hidden_states or self.layout.kind == "windowed"  # its last grid comes with them
        return self.backbone(pixel_values, output_hidden_states=hidden_states, **self._forward_options(pixel_values))

    def _head_input(self, outputs: Any, size: tuple[int, int], backbone: nn.Module | None = None) -> torch.Tensor:
        final = outputs.last_hidden_state
        if self.layout.kind == "windowed":
            grid = outputs.reshaped_hidden_states[-1].shape[-2:]
            return final.transpose(1, 2).reshape(final.shape[0], final.shape[2], *grid)
        if not self.final_norm:
            return final
        return getattr(backbone if backbone is not None else self.backbone, self.final_norm)(final)

    def _num_hidden_states(self, outputs: Any) -> int:
        states = outputs.reshaped_hidden_states if self.layout.kind == "windowed" else outputs.hidden_states
        return len(states or ()) - 1  # the first is the embeddings' output

    def _stage_map(self, outputs: Any, index: int, size: tuple[int, int]) -> torch.Tensor:
        if self.layout.kind == "windowed":
            return outputs.reshaped_hidden_states[index + 1]
        state = outputs.hidden_states[index + 1]
        return tokens_to_map(state, self.layout, size, self.role) if state.ndim == 3 else state

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the model's head reads (`-1`): normed tokens `[B, N, C]` for token models, else `[B, C, H, W]`."""
        return self._head_input(self._run(pixel_values, False), tuple(pixel_values.shape[-2:]))

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The `-1` map `[B, C, H, W]`: `forward_features` with special tokens dropped and tokens on their grid."""
        features = self.forward_features(pixel_values)
        if self.layout.kind != "tokens":
            return features
        return tokens_to_map(features, self.layout, tuple(pixel_values.shape[-2:]), self.role)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """`forward_features`' output → logits `[B, K]` (the pooled `[B, D]` with `pre_logits` or no classifier)."""
        pooled = pool_head_input(features, self.layout, self.backbone)
        return pooled if pre_logits or not self.has_classifier else self.model.classifier(pooled)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(pixel_values))

    def forward_intermediates(
        self,
        pixel_values: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's contract: maps `[B, C, H, W]` of the hidden states `indices` selects in `feature_info` (negative
        from the end; an int n: the last n), unnormed; with the head input unless `intermediates_only`. A
        transformers model runs all its layers whatever `stop_early` says."""
        if norm or output_fmt != "NCHW":
            raise ValueError(f"{self.role}: forward_intermediates gives unnormed NCHW maps (norm=False, 'NCHW')")
        take, _ = feature_take_indices(len(self.feature_info), indices)
        size = tuple(pixel_values.shape[-2:])
        outputs = self._run(pixel_values, True)
        maps = [self._stage_map(outputs, index, size) for index in take]
        return maps if intermediates_only else (self._head_input(outputs, size), maps)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for `num_classes` (0: none, the head then returns pooled features), initialised as
        transformers initialises it; the model's config follows (`num_labels`)."""
        if not self.has_classifier:
            if num_classes:
                raise ValueError(
                    f"{self.role} has no classifier to give {num_classes} classes; load it as an image-classification "
                    "model (AutoModelForImageClassification; for CLIP/SigLIP from the full CLIPConfig/SiglipConfig)"
                )
            return
        classifier = self.model.classifier
        linears = [(name, m) for name, m in classifier.named_modules() if isinstance(m, nn.Linear)]
        in_features = linears[-1][1].in_features if linears else self.head_hidden_size
        new_head = nn.Linear(in_features, num_classes) if num_classes else nn.Identity()
        if num_classes:
            self.model._init_weights(new_head)
        parameter = next(self.model.parameters())
        new_head.to(device=parameter.device, dtype=parameter.dtype)
        if linears and linears[-1][0]:  # a Sequential head (ResNet: Flatten, Linear): replace its Linear
            classifier.set_submodule(linears[-1][0], new_head)
        else:
            self.model.classifier = new_head
        self.model.config.num_labels = num_classes
        self.pretrained_cfg = self.default_cfg = {**self.pretrained_cfg, "num_classes": num_classes}

    def set_input_size(self, img_size: int | tuple[int, int] | None = None, **_: Any) -> None:
        """Run at `img_size` from now on; a model with a fixed-size position table gets it resampled (bicubic, as
        the model's own `interpolate_pos_encoding`), so an export runs at that size without being asked to."""
        if img_size is None:
            return
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if self.layout.kind == "tokens" and interpolates_positions(self.backbone):
            self.model = _rebuilt_at_size(self.model, self.vision_config, size, self.layout, self.role)
        self._traits["img_size"] = size
        if hasattr(self, "patch_embed"):
            self.patch_embed.set_img_size(size)
        self.pretrained_cfg = self.default_cfg = {**self.pretrained_cfg, "input_size": (self.in_chans, *size)}

    def _check_head(self, size: tuple[int, int]) -> None:
        """A family not in HEAD_POOLING: refuse a classifier whose logits the default pooling does not reproduce."""
        pixels = torch.randn(1, self.in_chans, *size, generator=torch.Generator().manual_seed(0))
        parameter = next(self.model.parameters())
        pixels = pixels.to(device=parameter.device, dtype=parameter.dtype)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            own = self.model(pixels).logits
            ours = self(pixels)
        self.train(was_training)
        if not torch.allclose(own, ours, rtol=1e-4, atol=1e-5):
            raise ValueError(
                f"{self.role} (model type {self.vision_config.model_type!r}): feed-hf does not know what its "
                f"classifier reads (pooling {self.layout.pooling!r} does not reproduce its logits); add the family to "
                "feed_hf.transformers_models.maps.HEAD_POOLING, or load it headless (AutoModel) as a teacher"
            )


def _rebuilt_at_size(model: nn.Module, vision_config, size: tuple[int, int], layout: MapLayout, role: str) -> nn.Module:
    """`model` rebuilt with `image_size=size`, its weights carried over and its position table resampled."""
    old_size = vision_config.image_size
    old_size = tuple(old_size) if isinstance(old_size, (tuple, list)) else (old_size, old_size)
    if tuple(size) == old_size:
        return model
    if size[0] != size[1] or size[0] % layout.patch_size:
        raise ValueError(
            f"{role} runs at one square size that is a multiple of its patch size {layout.patch_size}, not "
            f"{size[0]}x{size[1]}; choose such an input_size"
        )
    config = copy.deepcopy(model.config)
    (getattr(config, "vision_config", None) or config).image_size = size[0]
    parameter = next(model.parameters())
    rebuilt = type(model)(config).to(device=parameter.device, dtype=parameter.dtype).train(model.training)
    state = model.state_dict()
    new_state = rebuilt.state_dict()
    patch = layout.patch_size
    for key, target in new_state.items():
        if key not in state or state[key].shape == target.shape:
            continue
        if key.endswith("relative_position_bias_table"):  # BEiT-style: offsets between patches, not positions
            grids = ((old_size[0] // patch, old_size[1] // patch), (size[0] // patch, size[1] // patch))
            state[key] = _resampled_relative_table(state[key], *grids)
            continue
        if "position" not in key:
            raise ValueError(f"{role}: weight {key!r} depends on the input size; it cannot run at {size[0]}")
        old = state[key].reshape(1, -1, state[key].shape[-1])
        old_grid = (old_size[0] // patch, old_size[1] // patch)
        resampled = resample_abs_pos_embed(
            old,
            new_size=[size[0] // patch, size[1] // patch],
            old_size=list(old_grid),
            num_prefix_tokens=old.shape[1] - old_grid[0] * old_grid[1],
            interpolation="bicubic",
            antialias=False,
        )
        state[key] = resampled.reshape(target.shape)
    rebuilt.load_state_dict({key: state[key] for key in new_state}, strict=True)
    return rebuilt


def _resampled_relative_table(
    table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """A BEiT-style relative position bias table (`(2H-1)(2W-1)` offsets + 3 class-token entries, × heads) for
    another patch grid: the offsets resampled bilinearly as the model itself does when it runs at another size
    (transformers' `BeitRelativePositionBias.forward`), the class-token entries kept."""
    old_offsets = (2 * old_grid[0] - 1, 2 * old_grid[1] - 1)
    new_offsets = (2 * new_grid[0] - 1, 2 * new_grid[1] - 1)
    grid = table[:-3].reshape(1, old_offsets[1], old_offsets[0], -1).permute(0, 3, 1, 2)
    resampled = nn.functional.interpolate(grid, size=new_offsets, mode="bilinear")
    return torch.cat([resampled.permute(0, 2, 3, 1).reshape(new_offsets[0] * new_offsets[1], -1), table[-3:]])
