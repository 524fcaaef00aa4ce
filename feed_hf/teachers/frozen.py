"""Teachers: load them from any source FEED accepts, freeze them, and feed them their own input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from torch import nn
from torch.nn import functional as F

from ..method.features import FeatureTap, common_spatial_size, match_spatial_size, probe_feature_shape
from ..method.summary_features import timm_summary
from ..transformers_models.formats import is_transformers_spec, transformers_spec_parts
from ..transformers_models.teachers import load_transformers_teacher
from .sources import (
    HubTeacherError,
    TeacherSourceError,
    check_weights_fit,
    load_adapted_state_dict,
    load_checkpoint_state_dict,
    load_folder_teacher,
    load_hub_teacher,
    pin_hub_revision,
    pretrained_weights_overlay,
    split_model_kwargs,
    weight_shapes,
)
from .spec_kwargs import take_checkpoint_kwarg

__all__ = [
    "FrozenTeacher",
    "HubTeacherError",
    "TeacherSourceError",
    "check_finite_maps",
    "check_finite_weights",
    "check_kd_classes",
    "fixed_input_size",
    "load_checkpoint_state_dict",
    "load_teacher_model",
    "pin_hub_revision",
    "recorded_teacher_spec",
]


def load_teacher_model(
    spec: str,
    allow_pickle: bool = False,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """A teacher network from a spec string (the `teachers` option accepts exactly these forms).

    - `hf-hub:ns/name[@revision]`: a timm-format repo on the Hub, pinned to a commit (cached; offline from cache).
    - `local-dir:PATH` or a plain `PATH` to a folder holding `config.json` (e.g. exported by feed-hf).
    - `NAME=CHECKPOINT`: a timm architecture plus a weights file.
    - `NAME`: a timm model that has pretrained weights of its own.
    - any of these + `?key=value&…`: timm.create_model keyword arguments for this teacher, e.g.
      `hf-hub:ns/vit?dynamic_img_size=true` or `?img_size=64` (the weights are adapted by timm's checkpoint
      filter), `?num_classes=0` (headless: FEED needs no head).

    Every source reads `model.safetensors` when there is one; weights that exist only as a pickle
    (`.pth`/`.pt`/`.bin`/`.ckpt`) need `allow_pickle` and are then read with `weights_only=True`. Weights are
    checked against the architecture on the meta device, so a model they cannot fill is never built.

    A folder or repo in transformers' format (its config.json names a `model_type`) goes to
    `load_transformers_teacher` (docs/foundation_models.md); given `batch_size`, its inference memory at that batch
    size (activations in `dtype`, the teacher's autocast dtype; None: float32) is estimated first and a teacher that
    would not fit in the free memory of `device` (None: RAM) is refused.
    """
    if is_transformers_spec(spec):
        base, model_kwargs = transformers_spec_parts(spec)
        return load_transformers_teacher(
            base, allow_pickle, model_kwargs, batch_size=batch_size, dtype=dtype or torch.float32, device=device
        )
    if Path(spec).is_dir():  # a folder whose name looks like keyword arguments is still that folder
        return load_folder_teacher(spec, spec, allow_pickle)
    full_spec = spec
    spec, model_kwargs = split_model_kwargs(spec)
    model_kwargs, checkpoint = take_checkpoint_kwarg(full_spec, model_kwargs)
    if checkpoint is None:
        return _load_by_source(spec, allow_pickle, model_kwargs)
    # `?checkpoint_path=FILE`: read by feed-hf's loader (pickle policy, weights_only) before anything is built.
    state_dict = load_checkpoint_state_dict(checkpoint, allow_pickle)
    model = _load_by_source(spec, allow_pickle, model_kwargs, pretrained=False)
    load_adapted_state_dict(full_spec, model, state_dict, model_kwargs)
    return model


def _load_by_source(spec: str, allow_pickle: bool, model_kwargs: dict[str, Any], pretrained: bool = True) -> nn.Module:
    if spec.startswith("hf-hub:"):
        return load_hub_teacher(spec, allow_pickle, model_kwargs)
    if spec.startswith("local-dir:"):
        return load_folder_teacher(spec, spec.removeprefix("local-dir:"), allow_pickle, model_kwargs=model_kwargs)
    if Path(spec).is_dir():  # before NAME=CHECKPOINT: a folder's name may hold '='
        return load_folder_teacher(spec, spec, allow_pickle, model_kwargs=model_kwargs)
    if "=" in spec:
        name, checkpoint = spec.split("=", 1)
        return _model_from_checkpoint(name, checkpoint, allow_pickle, model_kwargs)
    if not pretrained:  # weights come from checkpoint_path: the architecture alone
        if not timm.is_model(spec):
            raise ValueError(f"teacher architecture {spec!r} (with ?checkpoint_path=) is not a timm model name")
        return timm.create_model(spec, **model_kwargs)
    return _pretrained_timm_model(spec, allow_pickle, model_kwargs)


def recorded_teacher_spec(spec: str, resolved: dict[str, Any] | None) -> str:
    """The spec that reloads a recorded teacher exactly: a Hub teacher at the commit its run used.

    `resolved` is the teacher's `resolved_teachers` entry of feed_config.json, whose `source` names a Hub
    teacher as `hf-hub:ns/name@<sha>`; the spec's own `?key=value` keyword arguments are kept.
    """
    source = (resolved or {}).get("source") or ""
    base, _ = split_model_kwargs(spec)
    if base.startswith("hf-hub:") and source.startswith("hf-hub:") and "@" in source:
        return source + spec[len(base) :]
    return spec


def _pretrained_timm_model(
    name: str, allow_pickle: bool = False, model_kwargs: dict[str, Any] | None = None
) -> nn.Module:
    if not timm.is_model(name.split(".")[0]):
        raise ValueError(
            f"teacher {name!r} is neither a timm model name, an existing folder, 'hf-hub:ns/name' nor "
            "'local-dir:PATH'. Check the spelling (timm.list_models()) or the path."
        )
    try:
        pretrained_cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # an unknown pretrained tag
        pretrained_cfg = None
    if (
        not timm.models.is_model_pretrained(name)
        or pretrained_cfg is None
        or not (pretrained_cfg.hf_hub_id or pretrained_cfg.url or pretrained_cfg.file)
    ):
        raise ValueError(
            f"teacher {name!r} has no pretrained weights, and a randomly initialised teacher teaches nothing. "
            f"Give its weights: '{name}=path/to/model.safetensors', or a folder exported by feed-hf."
        )
    overlay = pretrained_weights_overlay(name, pretrained_cfg, allow_pickle)
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay or None, **(model_kwargs or {}))


def _model_from_checkpoint(
    name: str, checkpoint: str, allow_pickle: bool, model_kwargs: dict[str, Any] | None = None
) -> nn.Module:
    if not timm.is_model(name):
        raise ValueError(f"teacher architecture {name!r} (in {name}={checkpoint}) is not a timm model name")
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
    shapes = weight_shapes(Path(checkpoint), allow_pickle)
    with torch.device("meta"):  # checked before building: a large architecture is never allocated in vain
        shell = timm.create_model(name)
    classifier_shape = shapes.get(f"{shell.pretrained_cfg.get('classifier', 'fc')}.weight")
    num_classes = classifier_shape[0] if classifier_shape else shell.num_classes
    if num_classes != shell.num_classes:
        shell.reset_classifier(num_classes)
    check_weights_fit(
        shapes, shell, f"checkpoint {checkpoint!r} does not fit {name!r}", "Is it the right architecture?"
    )
    model = timm.create_model(name, **{"num_classes": num_classes, **(model_kwargs or {})})
    load_adapted_state_dict(
        f"{name}={checkpoint}", model, load_checkpoint_state_dict(checkpoint, allow_pickle), model_kwargs or {}
    )
    return model


class FrozenTeacher(nn.Module):
    """A teacher that never trains: eval mode always, no gradients, its own input normalisation.

    The student's normalised pixels are re-normalised to the teacher's mean/std by a fixed affine
    map, x_T = x_S·(σ_S/σ_T) + (μ_S − μ_T)/σ_T, so each network sees the pixels it was trained on.
    Its `num_classes` may differ from the student's (or be 0, headless): features are what is distilled.

    Resolution: the teacher runs at `input_size` (px) when given, else at the size its model only accepts
    (a ViT without `dynamic_img_size`: its patch embedding's `img_size`, asked of the model, not of its
    pretrained cfg), else at the batch's own size. A size other than the batch's resizes the re-normalised
    batch on its device (bilinear, antialiased) for this teacher alone; its map is then pooled to the
    compared H×W as any other.

    Speed options: `autocast_dtype` runs the teacher under autocast (bf16/fp16; the FEED loss is
    still computed in fp32), `channels_last` converts weights and input, `compile` wraps the feature
    extraction in `torch.compile` (needs `forward_intermediates`, not a hook).
    """

    def __init__(
        self,
        model: nn.Module,
        student_data_config: dict,
        feature_index: int = -1,
        feature_module: str | None = None,
        name: str = "teacher",
        autocast_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        compile: bool = False,
        student_map_size: tuple[int, int] | None = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        check_finite_weights(name, model)
        self.model = model.requires_grad_(False)
        self.name = name
        self.feature_tap = FeatureTap(model, feature_index, feature_module, role=name)
        teacher_data_config = resolve_model_data_config(model)
        _check_channels(name, teacher_data_config, student_data_config)
        student_hw = tuple(student_data_config["input_size"][1:])
        # None: the batch's own size (no resize); decided once, like compare_size.
        self.input_size: tuple[int, int] | None = _teacher_input_size(name, model, input_size, student_hw)
        scale, shift = _renormalization(student_data_config, teacher_data_config)
        self.renormalizes = bool((scale != 1).any() or (shift != 0).any())
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)
        self._input_shape = (student_data_config["input_size"][0], *(self.input_size or student_hw))
        self.feature_shape = _probe(name, model, self.feature_tap, self._input_shape)
        self._summary_dim: int | None = None
        # Decided once, here: the H×W this teacher's map is compared at (the smaller of its own and the student's).
        own_size = tuple(self.feature_shape[1:])
        self.compare_size: tuple[int, int] = (
            common_spatial_size(tuple(student_map_size), own_size) if student_map_size is not None else own_size
        )
        self.autocast_dtype = autocast_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if compile and feature_module is not None:
            raise ValueError(f"{name}: compiling teachers needs forward_intermediates; drop the feature module hook")
        self._extract = torch.compile(self._extract_features) if compile else self._extract_features
        self.eval()

    @property
    @torch.no_grad()
    def summary_dim(self) -> int:
        """D of the summary `[B, D]` (`timm_summary`), probed once on one blank image at this teacher's input size."""
        if self._summary_dim is None:
            probe = torch.zeros(1, *self._input_shape, device=self.input_scale.device)
            self._summary_dim = int(self._extract_features(probe, False, True)[2].shape[1])  # not compiled
        return self._summary_dim

    def train(self, mode: bool = True) -> FrozenTeacher:
        # Frozen means frozen: `.train()` from a wrapper must not let BatchNorm statistics drift.
        return super().train(False)

    @torch.no_grad()
    def forward(
        self, pixel_values: torch.Tensor, with_logits: bool = False, with_summary: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Student-normalised pixels `[B, 3, H, W]` → (feature map `[B, C_t, *compare_size]`, logits or None), and
        with `with_summary` a third item, the summary `[B, D]` in fp32 (`timm_summary`), all from one forward."""
        pixel_values = self.prepare_input(pixel_values)
        with torch.autocast(
            pixel_values.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            return self._extract(pixel_values, with_logits, with_summary)

    def prepare_input(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Student-normalised pixels → this teacher's input: re-normalised, resized to its size, its memory format."""
        if self.renormalizes:
            pixel_values = pixel_values * self.input_scale.to(pixel_values.dtype) + self.input_shift.to(
                pixel_values.dtype
            )
        if self.input_size is not None and tuple(pixel_values.shape[-2:]) != self.input_size:
            pixel_values = F.interpolate(
                pixel_values, size=self.input_size, mode="bilinear", align_corners=False, antialias=True
            )
        return pixel_values.contiguous(memory_format=self.memory_format)

    def _extract_features(
        self, pixel_values: torch.Tensor, with_logits: bool, with_summary: bool = False
    ) -> tuple[torch.Tensor, ...]:
        if with_summary:  # the trunk once: map, and from its head input the summary (and logits)
            head_input, feature_map = self.feature_tap.head_input_and_map(self.model, pixel_values)
            logits = self.model.forward_head(head_input) if with_logits else None
            summary = timm_summary(self.model, head_input).float()
            return match_spatial_size(feature_map, self.compare_size), logits, summary
        if with_logits:
            logits, feature_map = self.feature_tap.logits_and_map(self.model, pixel_values)
        else:
            logits, feature_map = None, self.feature_tap.map_only(self.model, pixel_values)
        return match_spatial_size(feature_map, self.compare_size), logits


def check_finite_weights(name: str, model: nn.Module) -> None:
    """Refuse a teacher whose parameters or buffers (e.g. BatchNorm statistics) hold NaN or Inf, naming the tensor."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for tensor_name, tensor in tensors:
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            raise ValueError(
                f"{name}: its weights hold non-finite values ({tensor_name}: {count} of {tensor.numel()} values "
                "NaN or Inf); a teacher with NaN/Inf weights or statistics cannot teach. Check its checkpoint "
                "(a diverged training, a bad conversion) or use another teacher"
            )


def check_finite_maps(name: str, feature_map: torch.Tensor, where: str) -> None:
    """Refuse a teacher whose feature map on `where` (e.g. "the first training batch") holds NaN or Inf."""
    if not bool(torch.isfinite(feature_map).all()):
        count = int((~torch.isfinite(feature_map)).sum())
        raise FloatingPointError(
            f"{name}: its feature maps on {where} hold {count} NaN/Inf values of {feature_map.numel()}; "
            "nothing was trained on them. Check the teacher (its weights, teacher_dtype: float16 overflows) and "
            "the input data"
        )


def _renormalization(student_config: dict, teacher_config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    student_mean, student_std = (torch.tensor(student_config[k], dtype=torch.float32) for k in ("mean", "std"))
    teacher_mean, teacher_std = (torch.tensor(teacher_config[k], dtype=torch.float32) for k in ("mean", "std"))
    scale = student_std / teacher_std
    shift = (student_mean - teacher_mean) / teacher_std
    return scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)


def _check_channels(name: str, teacher_config: dict, student_config: dict) -> None:
    teacher_channels, student_channels = teacher_config["input_size"][0], student_config["input_size"][0]
    if teacher_channels != student_channels:
        raise ValueError(
            f"{name} takes {teacher_channels}-channel images but the student takes {student_channels}; FEED feeds "
            "both the same pixels. Use a student and teachers with the same input channels (grayscale data is "
            "converted to RGB for 3-channel models automatically)."
        )


def check_kd_classes(teachers: list[FrozenTeacher], student_classes: int | None, kd_weight: float) -> None:
    """Logit KD compares class scores: refuse, before any step, a teacher whose classes are not the student's.

    FEED alone (kd_weight=0) never reads a teacher's head, so any class count (or none) is fine then.
    """
    if kd_weight <= 0 or student_classes is None:
        return
    for teacher in teachers:
        teacher_classes = getattr(teacher.model, "num_classes", None)
        if teacher_classes != student_classes:
            raise ValueError(
                f"kd_weight={kd_weight} (logit KD) needs teachers with the student's {student_classes} classes, but "
                f"{teacher.name} has {teacher_classes}; set kd_weight=0 (FEED only), or use teachers trained on the "
                "same classes"
            )


def fixed_input_size(model: nn.Module) -> tuple[int, int] | None:
    """The H×W `model` only accepts, asked of the model itself: a ViT-style patch embedding built with a
    strict `img_size` and no `dynamic_img_size`. None when any size works (convnets, dynamic ViTs)."""
    patch_embed = getattr(model, "patch_embed", None)
    img_size = getattr(patch_embed, "img_size", None)
    if (
        img_size is None
        or getattr(model, "dynamic_img_size", False)
        or not getattr(patch_embed, "strict_img_size", True)
    ):
        return None
    return tuple(img_size)


def _teacher_input_size(
    name: str, model: nn.Module, requested: int | None, student_size: tuple[int, int]
) -> tuple[int, int] | None:
    fixed = fixed_input_size(model)
    if not requested:  # None or 0: the size the model only accepts, else the batch's (None)
        return fixed if fixed != tuple(student_size) else None
    if fixed is not None and fixed != (requested, requested):
        raise ValueError(
            f"{name} only accepts {fixed[0]}x{fixed[1]} inputs (its patch embedding) but teacher_input_sizes asks "
            f"{requested}; set that entry to {fixed[0]} or 0, or build it with '?dynamic_img_size=true' on its spec"
        )
    return None if (requested, requested) == tuple(student_size) else (requested, requested)


def _probe(name: str, model: nn.Module, tap: FeatureTap, input_size: tuple[int, int, int]) -> torch.Size:
    try:
        return probe_feature_shape(model, tap, input_size)
    except (RuntimeError, AssertionError) as error:  # the model's own refusal of this size
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        native = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
        fix = f"give its native size{f' ({native[-1]})' if native else ''} in teacher_input_sizes"
        if hasattr(model, "patch_embed") and not getattr(model, "dynamic_img_size", False):
            fix += ", or build it with '?dynamic_img_size=true' (or '?img_size=N') on its spec"
        raise ValueError(f"{name} cannot take {input_size} inputs ({detail}); {fix}") from None
