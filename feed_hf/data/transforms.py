"""Image transforms from a model's timm data config, applied lazily to `image`/`label` datasets."""

from __future__ import annotations

from collections.abc import Callable

import datasets
import torch
from timm.data import create_transform
from timm.data.constants import DEFAULT_CROP_MODE, DEFAULT_CROP_PCT
from torchvision import transforms as T

from .images import decode_image, to_model_mode

__all__ = [
    "CIFAR_SIZE_LIMIT",
    "build_transform",
    "column_names",
    "eval_preprocessing",
    "pixel_values_batch",
    "random_crop_flip",
    "with_pixel_values",
]

# Inputs at or below this side length get the CIFAR recipe (reflect-pad 4 + random crop + flip)
# instead of timm's ImageNet-style random-resized-crop, which destroys 32-pixel images.
CIFAR_SIZE_LIMIT = 64

# Evaluation geometry at CIFAR sizes: the whole image, resized to H×W (what the CIFAR training recipe resizes to).
_SMALL_EVAL = {"interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "squash"}


def eval_preprocessing(pretrained_cfg: dict, size: tuple[int, int], in_chans: int) -> dict:
    """The eval preprocessing of a student at H×W `size`: timm data-config keys for its `pretrained_cfg`.

    At CIFAR sizes (<= CIFAR_SIZE_LIMIT) the whole image resized to H×W, bilinear; larger, the cfg's own
    interpolation and crop. Mean/std stay the cfg's. Written into the student's cfg, exported in config.json
    and read back by `build_transform` and by transformers' TimmWrapperImageProcessor: one description of eval.
    """
    if max(size) <= CIFAR_SIZE_LIMIT:
        geometry = dict(_SMALL_EVAL)
    else:
        geometry = {
            "interpolation": pretrained_cfg.get("interpolation") or "bicubic",
            "crop_pct": pretrained_cfg.get("crop_pct") or DEFAULT_CROP_PCT,
            "crop_mode": pretrained_cfg.get("crop_mode") or DEFAULT_CROP_MODE,
        }
    return {"input_size": (in_chans, *size), **geometry}


def build_transform(data_config: dict, training: bool, horizontal_flip: bool = True) -> Callable:
    """PIL image → normalised `[C, H, W]` tensor for a model whose timm data config is `data_config`.

    Evaluation is timm's own eval transform of `data_config` at every size, exactly what a `pipeline` /
    `AutoImageProcessor` user of the exported folder gets; training at CIFAR sizes is the CIFAR recipe.
    """
    size = tuple(data_config["input_size"][1:])
    small = max(size) <= CIFAR_SIZE_LIMIT
    if not training:
        return create_transform(**({**_SMALL_EVAL, **data_config} if small else data_config), is_training=False)
    if not small:
        return create_transform(**data_config, is_training=True, hflip=0.5 if horizontal_flip else 0.0)
    steps: list[Callable] = [
        T.Resize(size, interpolation=T.InterpolationMode.BILINEAR),
        T.RandomCrop(size, padding=max(1, size[0] // 8), padding_mode="reflect"),
    ]
    if horizontal_flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    return T.Compose(steps)


def with_pixel_values(
    dataset: datasets.Dataset | datasets.IterableDataset, transform: Callable, in_chans: int = 3
) -> datasets.Dataset | datasets.IterableDataset:
    """The dataset (or stream), yielding `{"pixel_values": [C, H, W], "labels": int}` lazily.

    Images are decoded here, not by `datasets`, so that one that does not decode raises an
    `UndecodableImageError` naming the `undecodable_images` policy instead of a bare PIL traceback;
    every PIL mode is brought to the model's 8-bit mode by `to_model_mode` (16-bit and float images
    scaled, not saturated; grayscale ↔ RGB as needed).
    """
    if isinstance((dataset.features or {}).get("image"), datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    per_batch = pixel_values_batch(transform, in_chans)
    if isinstance(dataset, datasets.Dataset):
        return dataset.with_transform(per_batch)

    def _stacked(batch: dict) -> dict:  # a stream has no with_transform: the same work as a map, tensors stacked
        transformed = per_batch(batch)
        return {**transformed, "pixel_values": torch.stack(transformed["pixel_values"])}

    columns = ["image", "label"] if "label" in column_names(dataset) else ["image"]
    return dataset.map(_stacked, batched=True, remove_columns=columns).with_format("torch")


def column_names(dataset: datasets.Dataset | datasets.IterableDataset) -> list[str]:
    """Its columns; a stream whose features are unknown until read: its first example's keys."""
    names = dataset.column_names
    if names is None:
        names = list(next(iter(dataset.take(1))))
    return list(names)


def pixel_values_batch(transform: Callable, in_chans: int) -> Callable[[dict], dict]:
    """Batch `{"image": [...], "label": [...]?}` → `{"pixel_values": [...], "labels": tensor?}` (no label: none)."""
    mode = "L" if in_chans == 1 else "RGB"

    def _apply(batch: dict) -> dict:
        pixel_values = [transform(to_model_mode(decode_image(value), mode)) for value in batch["image"]]
        if "label" not in batch:  # an unlabelled split (label-free FEED): pixel_values only
            return {"pixel_values": pixel_values}
        return {"pixel_values": pixel_values, "labels": torch.as_tensor(batch["label"])}

    return _apply


def random_crop_flip(pixel_values: torch.Tensor, padding: int, flip: bool) -> torch.Tensor:
    """CIFAR augmentation on a batch, on its device: reflect-pad, random H×W crop per image, random h-flip.

    `[B, C, H, W]` → `[B, C, H, W]`. Uses the global torch RNG inside the training step, which the
    Trainer checkpoints at step boundaries: resumed runs draw exactly the crops they would have.
    """
    batch, _, height, width = pixel_values.shape
    padded = torch.nn.functional.pad(pixel_values, (padding,) * 4, mode="reflect")
    device = pixel_values.device
    top = torch.randint(0, 2 * padding + 1, (batch, 1), device=device)
    left = torch.randint(0, 2 * padding + 1, (batch, 1), device=device)
    rows = (top + torch.arange(height, device=device))[:, None, :, None]  # [B, 1, H, 1]
    cols = (left + torch.arange(width, device=device))[:, None, None, :]  # [B, 1, 1, W]
    images = torch.arange(batch, device=device)[:, None, None, None]
    channels = torch.arange(pixel_values.shape[1], device=device)[None, :, None, None]
    cropped = padded[images, channels, rows, cols]
    if not flip:
        return cropped
    flipped = torch.rand(batch, device=device) < 0.5
    return torch.where(flipped[:, None, None, None], cropped.flip(-1), cropped)


def draw_crop_flip(
    count: int, padding: int, flip: bool, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` draws of (top, left, flipped) as `random_crop_flip` draws them: same ranges, same RNG order.

    Returns three `[count]` int64 tensors on the CPU (flipped is 0/1, all 0 without `flip`).
    """
    top = torch.randint(0, 2 * padding + 1, (count, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (count, 1), generator=generator)
    flipped = (torch.rand(count, generator=generator) < 0.5) if flip else torch.zeros(count, dtype=torch.bool)
    return top.view(-1), left.view(-1), flipped.long()


def replay_crop_flip(
    pixel_values: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flipped: torch.Tensor, padding: int
) -> torch.Tensor:
    """`random_crop_flip` with given draws: reflect-pad, crop at (top, left) `[B]`, h-flip where flipped `[B]`.

    `[B, C, H, W]` → `[B, C, H, W]`; the same pixels `random_crop_flip` gives when it draws these offsets.
    """
    batch, _, height, width = pixel_values.shape
    device = pixel_values.device
    padded = torch.nn.functional.pad(pixel_values, (padding,) * 4, mode="reflect")
    rows = (top.to(device).view(-1, 1) + torch.arange(height, device=device))[:, None, :, None]
    cols = (left.to(device).view(-1, 1) + torch.arange(width, device=device))[:, None, None, :]
    images = torch.arange(batch, device=device)[:, None, None, None]
    channels = torch.arange(pixel_values.shape[1], device=device)[None, :, None, None]
    cropped = padded[images, channels, rows, cols]
    return torch.where(flipped.to(device).bool()[:, None, None, None], cropped.flip(-1), cropped)
