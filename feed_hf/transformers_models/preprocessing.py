"""A transformers model's preprocessing as timm data-config keys, and back: read from its image processor, written
with an exported student.

`processor_data_config` reads `preprocessor_config.json` (what `AutoImageProcessor` reads): mean/std, the input
size (the crop when it center-crops, else the resize target), the interpolation and crop fraction. Nothing falls
back to ImageNet's values: a missing file, missing mean/std, or a size that contradicts the model config (not a
multiple of its patch size; another `image_size` in a model that only runs at that size) is one line naming the
file and the values. `image_processor_for` builds the processor that reproduces feed-hf's eval transform of a
data config (`feed_hf.data.transforms.build_transform`), for `pipeline()` users of an exported student.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from pathlib import Path
from typing import Any

from ..data.transforms import CIFAR_SIZE_LIMIT
from ..teachers.sources import TeacherSourceError

__all__ = ["PROCESSOR_CONFIG_NAME", "image_processor_for", "interpolates_positions", "processor_data_config"]

PROCESSOR_CONFIG_NAME = "preprocessor_config.json"
# PIL resampling codes (what `resample` holds) ↔ timm interpolation names.
_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_RESAMPLE_CODES = {name: code for code, name in _RESAMPLE_NAMES.items()}


def processor_data_config(spec: str, folder: str | Path, config: Any, backbone: Any = None) -> dict[str, Any]:
    """timm data-config keys (`input_size`, `mean`, `std`, `interpolation`, `crop_pct`, `crop_mode`) of the model
    in `folder`, from its `preprocessor_config.json`, checked against `config` (the vision network's config).

    `backbone` (the module that runs the pixels, optional) tells whether the model only runs at its config's
    `image_size` (its forward takes `interpolate_pos_encoding`): its processor must then produce that size.
    """
    path = Path(folder) / PROCESSOR_CONFIG_NAME
    processor = _read_processor(spec, path)
    channels = int(getattr(config, "num_channels", 3) or 3)
    mean, std = _mean_std(spec, processor, channels)
    height, width, crop_pct = _input_size(spec, processor)
    _check_size(spec, config, backbone, (height, width))
    return {
        "input_size": (channels, height, width),
        "mean": mean,
        "std": std,
        "interpolation": _RESAMPLE_NAMES.get(processor.get("resample"), "bicubic"),
        "crop_pct": crop_pct,
        "crop_mode": "center",
    }


def _read_processor(spec: str, path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TeacherSourceError(
            f"{spec!r} has no {PROCESSOR_CONFIG_NAME}, so its mean/std and input size are unknown (feed-hf does not "
            "assume ImageNet's); save the model's image processor beside it (AutoImageProcessor ... "
            ".save_pretrained(folder)) or push it to the repo"
        )
    try:
        processor = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TeacherSourceError(f"{spec!r}: {PROCESSOR_CONFIG_NAME} is not valid JSON ({error}); repair it") from None
    if not isinstance(processor, dict):
        raise TeacherSourceError(f"{spec!r}: {PROCESSOR_CONFIG_NAME} holds {type(processor).__name__}, not an object")
    return processor


def _mean_std(spec: str, processor: dict, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std in timm's convention (pixels scaled to [0, 1] first), whatever the processor's rescale factor."""
    if processor.get("do_normalize", True) is False:
        mean, std = [0.0] * channels, [1.0] * channels
    else:
        mean, std = processor.get("image_mean"), processor.get("image_std")
        if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
            mean, std = [mean] * channels, [std] * channels
        if not (_numbers(mean, channels) and _numbers(std, channels)) or not all(s > 0 for s in std):
            raise TeacherSourceError(
                f"{spec!r}: {PROCESSOR_CONFIG_NAME} has image_mean={mean!r}, image_std={std!r}; expected "
                f"{channels} numbers each (std > 0) for the model's {channels} channels; fix the file"
            )
    # processor: (pixel·r − m)/s with pixel in [0, 255]; timm: (pixel/255 − m')/s' → m' = m/(255·r), s' = s/(255·r)
    rescale = float(processor.get("rescale_factor", 1 / 255)) if processor.get("do_rescale", True) else 1.0
    unit = 255.0 * rescale
    return tuple(float(m) / unit for m in mean), tuple(float(s) / unit for s in std)


def _numbers(values: Any, count: int) -> bool:
    numbers = isinstance(values, (list, tuple)) and all(isinstance(value, (int, float)) for value in values)
    return numbers and len(values) == count


def _input_size(spec: str, processor: dict) -> tuple[int, int, float]:
    """(height, width, crop_pct) of what the processor feeds the model."""
    resize = _size_dict(processor.get("size"))
    crop = _size_dict(processor.get("crop_size")) if processor.get("do_center_crop") else None
    if crop is not None and "height" in crop:
        shortest = (resize or {}).get("shortest_edge")
        crop_pct = min(crop["height"], crop["width"]) / shortest if shortest else 1.0
        return crop["height"], crop["width"], crop_pct
    if resize is not None and "height" in resize:
        return resize["height"], resize["width"], 1.0
    if resize is not None and "shortest_edge" in resize:
        side = resize["shortest_edge"]
        crop_pct = float(processor.get("crop_pct") or 1.0) if side < 384 else 1.0  # ConvNeXt's processor rule
        return side, side, crop_pct
    raise TeacherSourceError(
        f"{spec!r}: {PROCESSOR_CONFIG_NAME} gives no input size (size={processor.get('size')!r}, "
        f"crop_size={processor.get('crop_size')!r}, do_center_crop={processor.get('do_center_crop')!r}); give "
        "size as {'height': H, 'width': W} or {'shortest_edge': S}"
    )


def _size_dict(size: Any) -> dict[str, int] | None:
    if isinstance(size, int):
        return {"height": size, "width": size}
    if isinstance(size, dict) and {"height", "width"} <= size.keys():
        return {"height": int(size["height"]), "width": int(size["width"])}
    if isinstance(size, dict) and "shortest_edge" in size:
        return {"shortest_edge": int(size["shortest_edge"])}
    return None


def forward_takes(module: Any, argument: str) -> bool:
    """Whether `module`'s forward takes `argument`: read once per class (it is asked on every forward)."""
    return module is not None and argument in _forward_parameters(type(module))


@functools.cache
def _forward_parameters(module_class: type) -> frozenset[str]:
    forward = getattr(module_class, "forward", None)
    return frozenset(inspect.signature(forward).parameters) if forward is not None else frozenset()


def interpolates_positions(backbone: Any) -> bool:
    """Whether the model runs at other sizes than its config's `image_size` only when asked
    (its forward takes `interpolate_pos_encoding`); DINOv2-style models always interpolate and say no."""
    return forward_takes(backbone, "interpolate_pos_encoding")


def _check_size(spec: str, config: Any, backbone: Any, size: tuple[int, int]) -> None:
    patch = getattr(config, "patch_size", None)
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    if getattr(config, "window_size", None):
        patch = None  # windowed models (Swin) pad any size to their patches and windows
    if patch and (size[0] % patch or size[1] % patch):
        raise TeacherSourceError(
            f"{spec!r}: {PROCESSOR_CONFIG_NAME} feeds {size[0]}x{size[1]} images but config.json has patch_size="
            f"{patch}; the size must be a multiple of the patch size: fix the processor's size/crop_size"
        )
    image_size = getattr(config, "image_size", None)
    image_size = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size, image_size)
    if patch and image_size[0] and interpolates_positions(backbone) and tuple(size) != image_size:
        raise TeacherSourceError(
            f"{spec!r}: {PROCESSOR_CONFIG_NAME} feeds {size[0]}x{size[1]} images but config.json has image_size="
            f"{image_size[0]}, the only size this model runs at; make the processor's crop/size {image_size[0]} "
            "or config.json's image_size match the size it was trained at"
        )


def image_processor_for(data_config: dict[str, Any]):
    """The transformers image processor that preprocesses as feed-hf's eval transform of `data_config` does.

    At CIFAR sizes (<= CIFAR_SIZE_LIMIT) or with crop mode `squash`: the whole image resized to H×W
    (`ViTImageProcessor`); larger, with crop mode `center`: the shortest edge resized to size/crop_pct and the
    center H×W cut (`CLIPImageProcessor`). Other timm crop modes have no transformers processor and are refused.
    """
    from transformers import CLIPImageProcessor, ViTImageProcessor

    _, height, width = data_config["input_size"]
    normalize = {"image_mean": list(data_config["mean"]), "image_std": list(data_config["std"])}
    small = max(height, width) <= CIFAR_SIZE_LIMIT
    interpolation = "bilinear" if small else data_config.get("interpolation") or "bicubic"
    resample = _RESAMPLE_CODES.get(interpolation)
    crop_mode = data_config.get("crop_mode") or "center"
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    if small or (crop_mode == "squash" and crop_pct == 1.0):
        if resample is None:
            raise ValueError(_unmatched(interpolation, crop_mode, crop_pct))
        return ViTImageProcessor(size={"height": height, "width": width}, resample=resample, **normalize)
    if resample is None or crop_mode != "center" or height != width:
        raise ValueError(_unmatched(interpolation, crop_mode, crop_pct, (height, width)))
    scale = math.floor(height / crop_pct)
    return CLIPImageProcessor(
        size={"shortest_edge": scale},
        crop_size={"height": height, "width": width},
        do_center_crop=True,
        do_convert_rgb=True,
        resample=resample,
        **normalize,
    )


def _unmatched(interpolation: str, crop_mode: str, crop_pct: float, size: tuple[int, int] | None = None) -> str:
    shape = f" at {size[0]}x{size[1]}" if size else ""
    return (
        f"no transformers image processor reproduces interpolation={interpolation!r}, crop_mode={crop_mode!r}, "
        f"crop_pct={crop_pct}{shape}; use bilinear/bicubic with a square center crop, or squash with crop_pct 1.0"
    )
