"""Building one shard of a teacher store: the recorded crops, one teacher forward per (image, view, teacher) giving
its map, and from the same forward its logits (KD) and summary (summary terms) when the settings keep them.

Each rank builds the shard of its contiguous block of images (`image_block`) with no coordination: the crops are
drawn from the store's seed, the same on every rank; the shard is reserved on disk before it is filled
(`store_files.allocate_safetensors`), every teacher's maps are checked to be finite as they are computed, and
the rows' checksums are written beside the shard (`store_integrity.write_checksums`) before it is synced to disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from transformers import default_data_collator

from ..data.transforms import draw_crop_flip, replay_crop_flip
from ..teachers.frozen import FrozenTeacher, check_finite_maps
from .codec import FeatureCodec, encode_maps
from .files import allocate_safetensors, safetensors_layout
from .integrity import write_checksums
from .key import StoreSettings
from .shard_codec import codec_tensors

__all__ = ["build_shard", "image_block", "recorded_augmentations", "shard_bytes", "shard_name", "shard_specs"]

Specs = dict[str, tuple[torch.dtype, tuple[int, ...]]]


def image_block(num_images: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous block [start, end) of images rank `rank` of `world_size` computes."""
    return rank * num_images // world_size, (rank + 1) * num_images // world_size


def shard_name(rank: int, world_size: int) -> str:
    return f"shard-{rank:05d}-of-{world_size:05d}.safetensors"


def recorded_augmentations(num_images: int, settings: StoreSettings) -> torch.Tensor:
    """`[3, num_images, K]` (top, left, flipped) drawn from `settings.seed`: the same on every rank, no messages."""
    generator = torch.Generator().manual_seed(settings.seed)
    if settings.augmentation == "none":  # nothing to replay: the views are the images as loaded
        return torch.zeros((3, num_images, settings.views), dtype=torch.int64)
    draws = draw_crop_flip(
        num_images * settings.views, settings.padding, settings.augmentation == "crop_flip", generator
    )
    return torch.stack(draws).view(3, num_images, settings.views)


def shard_specs(
    teachers: Sequence[FrozenTeacher], num_images: int, settings: StoreSettings, codecs: Sequence[Any] | None = None
) -> Specs:
    """{part: (dtype, shape)} of the shard of `num_images` images: recorded crops, then each teacher's rows (codes
    of K kept components and the codec with compression; K = C, the bound, before the codecs are fitted)."""
    rows = num_images * settings.views
    specs: Specs = {"augmentation": (torch.int64, (3, num_images, settings.views))}
    for index, teacher in enumerate(teachers):
        map_shape = (int(teacher.feature_shape[0]), *(int(side) for side in teacher.compare_size))
        if settings.compression != "none":
            kept = codecs[index].kept_channels if codecs else map_shape[0]
            specs[f"maps_{index}"] = (torch.uint8, (rows, kept, *map_shape[1:]))
            for name, tensor in (codec_tensors(codecs[index], index) if codecs else {}).items():
                specs[name] = (torch.float32, tuple(tensor.shape))
        else:
            specs[f"maps_{index}"] = (settings.torch_dtype, (rows, *map_shape))
        if settings.with_logits:
            specs[f"logits_{index}"] = (settings.torch_dtype, (rows, int(teacher.model.num_classes)))
        if settings.with_summaries:
            specs[f"summaries_{index}"] = (settings.torch_dtype, (rows, teacher.summary_dim))
    return specs


def shard_bytes(teachers: Sequence[FrozenTeacher], num_images: int, settings: StoreSettings) -> int:
    """Bytes on disk of one shard of `num_images` images and its checksums (8 bytes per row and part)."""
    specs = shard_specs(teachers, num_images, settings)
    digests = sum(8 * shape[0] for _, shape in specs.values()) + 1024  # + the digests file's header
    return safetensors_layout(specs, {"start": "0", "end": str(num_images)})[1] + digests


@torch.no_grad()
def build_shard(
    path: Path,
    teachers: Sequence[FrozenTeacher],
    dataset: Dataset,
    block: tuple[int, int],
    settings: StoreSettings,
    batch_size: int,
    device: torch.device,
    codecs: Sequence[FeatureCodec] | None = None,
) -> None:
    """Compute and write the views of images [start, end), their checksums, and sync both to disk."""
    start, end = block
    views = settings.views
    draws = recorded_augmentations(len(dataset), settings)[:, start:end]
    if settings.compression != "none" and codecs is None:
        raise ValueError(f"a {settings.compression} teacher store is built with fitted codecs (store_codec)")
    tensors = allocate_safetensors(
        path, shard_specs(teachers, end - start, settings, codecs), {"start": str(start), "end": str(end)}
    )
    tensors["augmentation"].copy_(draws)
    for index, codec in enumerate(codecs or []):
        for name, tensor in codec_tensors(codec, index).items():
            tensors[name].copy_(tensor)
    loader = DataLoader(Subset(dataset, range(start, end)), batch_size, collate_fn=default_data_collator)
    first = 0
    for batch in loader:
        pixels = batch["pixel_values"].to(device)
        local = torch.arange(first, first + len(pixels))
        first += len(pixels)
        for view in range(views):
            top, left, flipped = draws[:, local, view]
            seen = (
                pixels
                if settings.augmentation == "none"
                else replay_crop_flip(pixels, top, left, flipped, settings.padding)
            )
            rows = local * views + view
            where = f"images {start + first - len(pixels)}..{start + first - 1} (view {view})"
            for index, teacher in enumerate(teachers):
                outputs = teacher(seen, with_logits=settings.with_logits, with_summary=settings.with_summaries)
                feature_map, logits = outputs[:2]
                check_finite_maps(teacher.name, feature_map, where)
                tensors[f"maps_{index}"][rows] = (
                    encode_maps(feature_map.float(), codecs[index]).cpu()
                    if codecs
                    else _stored(teacher.name, feature_map, settings.torch_dtype, where)
                )
                if logits is not None:
                    tensors[f"logits_{index}"][rows] = _stored(teacher.name, logits, settings.torch_dtype, where)
                if settings.with_summaries:
                    tensors[f"summaries_{index}"][rows] = _stored(teacher.name, outputs[2], settings.torch_dtype, where)
    del tensors  # unmaps: the pages are written back to the file
    for written in (path, write_checksums(path)):
        with open(written, "rb+") as file:
            os.fsync(file.fileno())  # on disk before the manifest says the store is complete


def _stored(name: str, values: torch.Tensor, dtype: torch.dtype, where: str) -> torch.Tensor:
    stored = values.to("cpu", dtype)
    if dtype == torch.float16 and not bool(torch.isfinite(stored).all()):  # finite in fp32, beyond fp16's range
        raise ValueError(
            f"{name}: its outputs on {where} exceed float16's range (65504) and would be stored as Inf; set "
            "teacher_store_dtype to bfloat16 or float32"
        )
    return stored
