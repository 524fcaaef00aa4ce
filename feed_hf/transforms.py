"""Image transforms from a model's timm data config, applied lazily to `image`/`label` datasets."""

from __future__ import annotations

from collections.abc import Callable

import datasets
import torch
from timm.data import create_transform
from torchvision import transforms as T

from .images import decode_image, to_model_mode

__all__ = ["CIFAR_SIZE_LIMIT", "build_transform", "random_crop_flip", "with_pixel_values"]

# Inputs at or below this side length get the CIFAR recipe (reflect-pad 4 + random crop + flip)
# instead of timm's ImageNet-style random-resized-crop, which destroys 32-pixel images.
CIFAR_SIZE_LIMIT = 64


def build_transform(data_config: dict, training: bool, horizontal_flip: bool = True) -> Callable:
    """PIL image → normalised `[C, H, W]` tensor for a model whose timm data config is `data_config`."""
    size = tuple(data_config["input_size"][1:])
    if max(size) > CIFAR_SIZE_LIMIT:
        return create_transform(**data_config, is_training=training, hflip=0.5 if horizontal_flip else 0.0)
    steps: list[Callable] = [T.Resize(size, interpolation=T.InterpolationMode.BILINEAR)]
    if training:
        steps.append(T.RandomCrop(size, padding=max(1, size[0] // 8), padding_mode="reflect"))
        if horizontal_flip:
            steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    return T.Compose(steps)


def with_pixel_values(dataset: datasets.Dataset, transform: Callable, in_chans: int = 3) -> datasets.Dataset:
    """The dataset, yielding `{"pixel_values": [C, H, W], "labels": int}` lazily.

    Images are decoded here, not by `datasets`, so that one that does not decode raises an
    `UndecodableImageError` naming the `undecodable_images` policy instead of a bare PIL traceback;
    every PIL mode is brought to the model's 8-bit mode by `to_model_mode` (16-bit and float images
    scaled, not saturated; grayscale ↔ RGB as needed).
    """
    mode = "L" if in_chans == 1 else "RGB"
    if isinstance(dataset.features.get("image"), datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image(decode=False))

    def _apply(batch: dict) -> dict:
        pixel_values = [transform(to_model_mode(decode_image(value), mode)) for value in batch["image"]]
        return {"pixel_values": pixel_values, "labels": torch.as_tensor(batch["label"])}

    return dataset.with_transform(_apply)


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
