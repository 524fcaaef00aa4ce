"""A persistent teacher-feature store: every teacher's map for K recorded augmentations of every image, on disk.

Why this design (docs/performance.md, "Teacher store", has the measurements):

- **Work done once.** For each image, K draws of (crop top, crop left, flip) are made as `random_crop_flip` makes
  them (FKD, Shen & Xing, ECCV 2022, for logits; here for feature maps) and every teacher's map of each view is
  stored with them. Training draws one of the K views per image per epoch and applies exactly that crop/flip to
  the student's input (`replay_crop_flip`). K = 1 without augmentation is the in-memory cache's behaviour.
- **Safetensors shards, memory-mapped** (`store_files.py`), not Arrow: a step gathers 128 random rows of
  `[C, H, W]` maps; from a mapped file that is one indexed copy per teacher, where `datasets` would convert rows
  through Arrow/NumPy one by one. Each rank writes its own shard with no coordination, the files carry no
  pickle, and `safetensors.torch.load_file` reads them.
- **bf16 by default**, the loss still in fp32 (`losses.normalize_feature_map` upcasts): half the bytes of fp32;
  the Eq. 2 distance it changes is measured in docs/performance.md.
- **Keyed, refused when stale.** The folder is `<root>/<fingerprint>`, the fingerprint of `store_key` (teacher
  weights by digest, feature selection, map shape, preprocessing, data, K, augmentation, seed, dtype). Opening
  compares the manifest's key with this run's, field by field, and refuses any difference (`StaleTeacherStoreError`).
- **Shared across ranks and runs.** Under DDP rank r computes the views of its contiguous block of images only, a
  barrier waits for every shard, the main process writes the manifest (the completion marker) and renames the
  folder into place, and every rank maps every shard. Another run, a β sweep, an experiment grid or an sFEED
  generation with the same teachers and data finds the folder and computes nothing. No labels are read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from transformers import default_data_collator

from .store_files import allocate_safetensors, map_safetensors
from .teacher_store_key import StoreSettings, store_fingerprint, store_key
from .teachers import FrozenTeacher
from .transforms import draw_crop_flip, replay_crop_flip

__all__ = ["StaleTeacherStoreError", "StoreSettings", "TeacherStore", "default_store_root", "open_or_build_store"]

MANIFEST = "manifest.json"


class StaleTeacherStoreError(ValueError):
    """A store whose key differs from this run's (other teachers, data, preprocessing or settings)."""


def default_store_root() -> Path:
    """`$XDG_CACHE_HOME/feed_hf/teacher_store` (default `~/.cache/feed_hf/teacher_store`)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "feed_hf" / "teacher_store"


def image_block(num_images: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous block [start, end) of images rank `rank` of `world_size` computes."""
    return rank * num_images // world_size, (rank + 1) * num_images // world_size


class TeacherStore:
    """Read side: maps every shard and answers (feature maps, logits) for (image, view) pairs."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.settings = StoreSettings(**manifest["key"]["settings"])
        self.num_teachers = len(manifest["key"]["teachers"])
        self.shards = [map_safetensors(path / shard["file"])[0] for shard in manifest["shards"]]
        self.shard_starts = torch.tensor([shard["start"] for shard in manifest["shards"]])

    @classmethod
    def open(cls, path: str | Path, expected_key: dict[str, Any]) -> TeacherStore:
        """The store at `path`, refused with `StaleTeacherStoreError` unless its key equals `expected_key`."""
        path = Path(path)
        manifest = json.loads((path / MANIFEST).read_text())
        differing = _differing_fields(manifest.get("key", {}), expected_key)
        if differing:
            raise StaleTeacherStoreError(
                f"teacher store {path} was built for other {', '.join(differing)} than this run's; it is not used. "
                "Delete that folder, or point teacher_store_dir elsewhere, to build a fresh store."
            )
        missing = [shard["file"] for shard in manifest["shards"] if not (path / shard["file"]).is_file()]
        if missing:
            raise StaleTeacherStoreError(f"teacher store {path} lacks {missing}; delete the folder to rebuild it")
        return cls(path, manifest)

    def lookup(
        self, images: torch.Tensor, views: torch.Tensor, device: torch.device
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Stored maps `[B, C, H, W]` (and logits `[B, K_cls]`) of images `[B]` seen through views `[B]`, on device."""
        images, views = images.cpu().long(), views.cpu().long()
        shard_ids = torch.searchsorted(self.shard_starts, images, right=True) - 1
        names = [f"maps_{t}" for t in range(self.num_teachers)]
        if self.settings.with_logits:
            names += [f"logits_{t}" for t in range(self.num_teachers)]
        gathered = {
            name: torch.empty((len(images), *self.shards[0][name].shape[1:]), dtype=self.shards[0][name].dtype)
            for name in names
        }
        for shard_id in shard_ids.unique().tolist():
            chosen = shard_ids == shard_id
            rows = (images[chosen] - self.shard_starts[shard_id]) * self.settings.views + views[chosen]
            for name in names:
                gathered[name][chosen] = self.shards[shard_id][name][rows]
        moved = {name: tensor.to(device, non_blocking=True) for name, tensor in gathered.items()}
        return [moved[n] for n in names if n.startswith("maps")], [moved[n] for n in names if n.startswith("logits")]

    def augmentation(self, images: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The recorded (top, left, flipped) `[B]` of each (image, view)."""
        images, views = images.cpu().long(), views.cpu().long()
        shard_ids = torch.searchsorted(self.shard_starts, images, right=True) - 1
        draws = torch.empty((3, len(images)), dtype=torch.int64)
        for shard_id in shard_ids.unique().tolist():
            chosen = shard_ids == shard_id
            local = images[chosen] - self.shard_starts[shard_id]
            draws[:, chosen] = self.shards[shard_id]["augmentation"][:, local, views[chosen]]
        return draws[0], draws[1], draws[2]

    def replay(
        self, pixel_values: torch.Tensor, images: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """One of the K views per image (global RNG: checkpointed, resumes exactly), its pixels and stored outputs."""
        views = torch.randint(0, self.settings.views, (len(images),))
        maps, logits = self.lookup(images, views, pixel_values.device)
        if self.settings.augmentation != "none":
            top, left, flipped = self.augmentation(images, views)
            pixel_values = replay_crop_flip(pixel_values, top, left, flipped, self.settings.padding)
        return pixel_values, maps, logits


def _differing_fields(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    differing = [name for name in ("format", "data", "settings") if found.get(name) != expected.get(name)]
    found_teachers, expected_teachers = found.get("teachers", []), expected.get("teachers", [])
    if len(found_teachers) != len(expected_teachers):
        return [*differing, f"teachers ({len(found_teachers)} stored, {len(expected_teachers)} here)"]
    for index, (stored, wanted) in enumerate(zip(found_teachers, expected_teachers, strict=True)):
        differing += [f"teacher {index} {name}" for name in wanted if stored.get(name) != wanted[name]]
    return differing


def recorded_augmentations(num_images: int, settings: StoreSettings) -> torch.Tensor:
    """`[3, num_images, K]` (top, left, flipped) drawn from `settings.seed`: the same on every rank, no messages."""
    generator = torch.Generator().manual_seed(settings.seed)
    if settings.augmentation == "none":  # nothing to replay: the views are the images as loaded
        return torch.zeros((3, num_images, settings.views), dtype=torch.int64)
    draws = draw_crop_flip(
        num_images * settings.views, settings.padding, settings.augmentation == "crop_flip", generator
    )
    return torch.stack(draws).view(3, num_images, settings.views)


@torch.no_grad()
def build_shard(
    path: Path,
    teachers: Sequence[FrozenTeacher],
    dataset: Dataset,
    block: tuple[int, int],
    settings: StoreSettings,
    batch_size: int,
    device: torch.device,
) -> None:
    """Compute and write the views of images [start, end): one teacher forward per (image, view, teacher)."""
    start, end = block
    views = settings.views
    draws = recorded_augmentations(len(dataset), settings)[:, start:end]
    specs: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {"augmentation": (torch.int64, tuple(draws.shape))}
    for index, teacher in enumerate(teachers):
        specs[f"maps_{index}"] = (settings.torch_dtype, ((end - start) * views, *_map_shape(teacher)))
        if settings.with_logits:
            specs[f"logits_{index}"] = (settings.torch_dtype, ((end - start) * views, _num_classes(teacher)))
    tensors = allocate_safetensors(path, specs, {"start": str(start), "end": str(end)})
    tensors["augmentation"].copy_(draws)
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
            for index, teacher in enumerate(teachers):
                feature_map, logits = teacher(seen, with_logits=settings.with_logits)
                tensors[f"maps_{index}"][rows] = feature_map.to("cpu", settings.torch_dtype)
                if logits is not None:
                    tensors[f"logits_{index}"][rows] = logits.to("cpu", settings.torch_dtype)
    del tensors  # unmaps: the pages are written back to the file


def _map_shape(teacher: FrozenTeacher) -> tuple[int, int, int]:
    return (int(teacher.feature_shape[0]), *(int(side) for side in teacher.compare_size))


def _num_classes(teacher: FrozenTeacher) -> int:
    return int(teacher.model.num_classes)


def open_or_build_store(
    teachers: Sequence[FrozenTeacher],
    dataset: Dataset,
    settings: StoreSettings,
    root: str | Path | None = None,
    batch_size: int = 256,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] = lambda: None,
) -> TeacherStore:
    """The store for (teachers, data, settings) under `root`, built first if absent (this rank's block only).

    Every rank must call it (it holds `barrier` twice when building). Rank 0 writes the manifest last and moves
    the folder into place, so a store is either complete or absent.
    """
    key = store_key(teachers, dataset, settings)
    final = Path(root or default_store_root()) / store_fingerprint(key)
    if not (final / MANIFEST).is_file():
        building = final.with_name(final.name + ".building")
        building.mkdir(parents=True, exist_ok=True)
        block = image_block(len(dataset), rank, world_size)
        shard = f"shard-{rank:05d}-of-{world_size:05d}.safetensors"
        build_shard(building / shard, teachers, dataset, block, settings, batch_size, device or torch.device("cpu"))
        barrier()
        if rank == 0:
            _finish(building, final, key, len(dataset), world_size)
        barrier()
    return TeacherStore.open(final, key)


def _finish(building: Path, final: Path, key: dict[str, Any], num_images: int, world_size: int) -> None:
    shards = [
        {
            "file": f"shard-{rank:05d}-of-{world_size:05d}.safetensors",
            "start": image_block(num_images, rank, world_size)[0],
        }
        for rank in range(world_size)
    ]
    manifest = {"key": key, "num_images": num_images, "shards": shards}
    (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if (final / MANIFEST).is_file():  # another run finished the same store first: keep theirs
        shutil.rmtree(building)
        return
    shutil.rmtree(final, ignore_errors=True)  # an incomplete folder (no manifest) is never read
    os.replace(building, final)
