"""A persistent teacher-feature store: every teacher's map for K recorded augmentations of every image, on disk.

Why this design (docs/performance.md, "Teacher store", has the measurements):

- **Work done once.** For each image, K draws of (crop top, crop left, flip) are made as `random_crop_flip` makes
  them (FKD, Shen & Xing, ECCV 2022, for logits; here for feature maps) and every teacher's map of each view is
  stored with them (`build.py`). Training draws one of the K views per image per epoch and applies exactly
  that crop/flip to the student's input (`replay_crop_flip`). K = 1 without augmentation is the in-memory cache's
  behaviour.
- **Safetensors shards, memory-mapped** (`files.py`), not Arrow: a step gathers 128 random rows of
  `[C, H, W]` maps; from a mapped file that is one indexed copy per teacher, where `datasets` would convert rows
  through Arrow/NumPy one by one. Each rank writes its own shard with no coordination, the files carry no
  pickle, and `safetensors.torch.load_file` reads them.
- **bf16 by default**, the loss still in fp32 (`losses.normalize_feature_map` upcasts): half the bytes of fp32;
  the Eq. 2 distance it changes is measured in docs/performance.md.
- **Keyed, refused when stale.** The folder is `<root>/<fingerprint>`, the fingerprint of `key.py` (teacher
  weights by digest, feature selection, map shape, preprocessing, data, K, augmentation, seed, dtype). Opening
  compares the manifest's key with this run's, field by field, and refuses any difference (`StaleTeacherStoreError`).
- **Verified, not trusted.** Every row's checksum is written at build and a sample of them (all, on request) is
  checked at every opening (`integrity.py`): a truncated, edited or shuffled store is refused, never used.
- **Bounded, and clean when it fails.** The views are bounded by the crops the augmentation can draw and the size
  is checked against the disk before any teacher forward (`limits.py`); the shard is reserved on disk before
  it is filled, so a full disk is an error, not SIGBUS; a failed build removes its `.building` folder; one builder
  at a time (`lock.py`), the others wait and reuse its store.
- **Shared across ranks and runs.** Under DDP rank r computes the views of its contiguous block of images only, a
  barrier waits for every shard, the main process writes the manifest (the completion marker) and renames the
  folder into place, and every rank maps every shard. Another run, a β sweep, an experiment grid or an sFEED
  generation with the same teachers and data finds the folder and computes nothing. No labels are read.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from ..data.transforms import replay_crop_flip
from ..teachers.frozen import FrozenTeacher
from ..teachers.targets import TeacherTargets
from .build import build_shard, image_block, shard_bytes, shard_name
from .codec import decode_maps
from .files import map_safetensors
from .integrity import StoreIntegrityError, checksum_fields, read_manifest, verify_shard
from .key import StoreSettings, store_fingerprint, store_key
from .limits import StoreSpaceError, check_free_space, human_bytes
from .lock import StoreBuildLock, StoreFolderError, folder_error
from .shard_codec import shard_codecs

__all__ = [
    "StaleTeacherStoreError",
    "StoreFolderError",
    "StoreIntegrityError",
    "StoreSettings",
    "StoreSpaceError",
    "TeacherStore",
    "default_store_root",
    "image_block",
    "open_or_build_store",
]

logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"
Verification = Literal["sampled", "full"]
_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StaleTeacherStoreError(ValueError):
    """A store whose key differs from this run's (other teachers, data, preprocessing or settings)."""


def default_store_root() -> Path:
    """`$XDG_CACHE_HOME/feed_hf/teacher_store` (default `~/.cache/feed_hf/teacher_store`)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "feed_hf" / "teacher_store"


class TeacherStore:
    """Read side: maps every shard and answers each teacher's (maps, logits, summaries) for (image, view) pairs."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.settings = StoreSettings(**manifest["key"]["settings"])
        self.num_teachers = len(manifest["key"]["teachers"])
        self.shards = [map_safetensors(path / shard["file"])[0] for shard in manifest["shards"]]
        self.shard_starts = torch.tensor([shard["start"] for shard in manifest["shards"]])
        compressed = self.settings.compression != "none"  # codes decoded on the device at lookup (store_codec)
        self.codecs = shard_codecs(self.shards, self.num_teachers, str(path)) if compressed else None

    @classmethod
    def open(cls, path: str | Path, expected_key: dict[str, Any], verify: Verification = "sampled") -> TeacherStore:
        """The store at `path`, verified (`store_integrity.verify_shard`; every row with `verify="full"`).

        Refused with `StaleTeacherStoreError` unless its key equals `expected_key`, with `StoreIntegrityError` when a
        file is missing, truncated or differs from what its build wrote.
        """
        path = Path(path)
        manifest = read_manifest(path, MANIFEST)
        differing = _differing_fields(manifest["key"], expected_key)
        if differing:
            raise StaleTeacherStoreError(
                f"teacher store {path} was built for other {', '.join(differing)} than this run's; it is not used. "
                "Delete that folder, or point teacher_store_dir elsewhere, to build a fresh store."
            )
        views = StoreSettings(**manifest["key"]["settings"]).views
        for entry in manifest["shards"]:
            verify_shard(path, entry, views, full=verify == "full")
        return cls(path, manifest)

    def lookup(self, images: torch.Tensor, views: torch.Tensor, device: torch.device) -> TeacherTargets:
        """Stored maps `[B, C, H, W]` (and logits `[B, K_cls]`, summaries `[B, D]` when kept) of images `[B]` seen
        through views `[B]`, on device."""
        images, views = images.cpu().long(), views.cpu().long()
        shard_ids = torch.searchsorted(self.shard_starts, images, right=True) - 1
        names = [f"maps_{t}" for t in range(self.num_teachers)]
        if self.settings.with_logits:
            names += [f"logits_{t}" for t in range(self.num_teachers)]
        if self.settings.with_summaries:
            names += [f"summaries_{t}" for t in range(self.num_teachers)]
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
        for index, codec in enumerate(self.codecs or []):
            moved[f"maps_{index}"] = decode_maps(moved[f"maps_{index}"], codec)
        kinds = ("maps", "logits", "summaries")
        return TeacherTargets(*([moved[name] for name in names if name.startswith(kind)] for kind in kinds))

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

    def stored_maps(self, images: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """Each teacher's stored map `[B, C, H, W]` of images `[B]` through their first view (no RNG drawn)."""
        return self.lookup(images, torch.zeros_like(images), device).maps

    def replay(self, pixel_values: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, TeacherTargets]:
        """One of the K views per image (global RNG: checkpointed, resumes exactly), its pixels and stored outputs."""
        views = torch.randint(0, self.settings.views, (len(images),))
        targets = self.lookup(images, views, pixel_values.device)
        if self.settings.augmentation != "none":
            top, left, flipped = self.augmentation(images, views)
            pixel_values = replay_crop_flip(pixel_values, top, left, flipped, self.settings.padding)
        return pixel_values, targets


def _differing_fields(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    differing = [name for name in ("format", "data", "settings") if found.get(name) != expected.get(name)]
    found_teachers, expected_teachers = found.get("teachers", []), expected.get("teachers", [])
    if len(found_teachers) != len(expected_teachers):
        return [*differing, f"teachers ({len(found_teachers)} stored, {len(expected_teachers)} here)"]
    for index, (stored, wanted) in enumerate(zip(found_teachers, expected_teachers, strict=True)):
        differing += [f"teacher {index} {name}" for name in wanted if stored.get(name) != wanted[name]]
    return differing


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
    verify: Verification = "sampled",
    codecs: Sequence[Any] | None = None,
) -> TeacherStore:
    """The store for (teachers, data, settings) under `root`, built first if absent (this rank's block only;
    a compressed store with the teachers' fitted `codecs`, `store_codec`).

    Every rank must call it (it holds `barrier` twice, four times when building). Rank 0 checks the size against the
    free space, holds the build lock, writes the manifest last and moves the folder into place, so a store is either
    complete or absent; a build that fails leaves no `.building` folder (one killed is cleared by the next builder).
    """
    key = store_key(teachers, dataset, settings)
    final = _store_folder(Path(root or default_store_root()), store_fingerprint(key))
    build = (teachers, dataset, settings, batch_size, device or torch.device("cpu"), codecs)
    _build_if_absent(final, key, build, rank, world_size, barrier)
    store = TeacherStore.open(final, key, verify)
    barrier()  # every rank verified its sample before any rank reads a row
    return store


def _store_folder(root: Path, fingerprint: str) -> Path:
    if root.exists() and not root.is_dir():
        raise StoreFolderError(f"teacher_store_dir {root} is a file, not a folder; point teacher_store_dir at a folder")
    final = root / fingerprint
    if final.exists() and not final.is_dir():
        raise StoreFolderError(f"teacher store {final} is a file, not a store folder; delete it or move it away")
    return final


def _check_writable(final: Path) -> None:
    """Before a build: the folder that will hold the store can be written (checked before its size is)."""
    existing = next(path for path in (final, *final.parents) if path.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise folder_error(existing, PermissionError(errno.EACCES, "not writable"), "create a store in")


def _blocks(num_images: int, world_size: int) -> list[tuple[int, int]]:
    return [image_block(num_images, rank, world_size) for rank in range(world_size)]


def _lowering(settings: StoreSettings) -> str:
    options = [f"teacher_store_views (now {settings.views})"]
    if settings.dtype == "float32":
        options.append("teacher_store_dtype (now float32; bfloat16 halves it)")
    return ", ".join(options) + ", or the number of images (max_train_samples)"


def _build_if_absent(
    final: Path, key: dict[str, Any], build: tuple, rank: int, world_size: int, barrier: Callable[[], None]
) -> None:
    """Build the store at `final` unless it is complete: collective, every rank takes the branch rank 0 decides.

    Rank 0 decides under the lock, and only a lock holder completes a store, so after the first barrier every rank
    sees the same folder: complete (reuse it), or with a fresh `.building` folder (build).
    """
    teachers, dataset, settings, batch_size, device, codecs = build
    needed = sum(shard_bytes(teachers, end - start, settings) for start, end in _blocks(len(dataset), world_size))
    what = f"{len(dataset)} images × {settings.views} views × {len(teachers)} teachers in {settings.dtype}"
    building = final.with_name(final.name + ".building")
    lock = None
    try:
        if rank == 0 and not (final / MANIFEST).is_file():
            _check_writable(final)
            lock = StoreBuildLock(final)
            lock.acquire()  # waits while another run builds this store
            if not (final / MANIFEST).is_file():  # the disk as it is once no other builder writes to it
                check_free_space(final, needed, what, _lowering(settings))
                _fresh_folder(building)  # a killed builder's leftovers are cleared under the lock
                logger.info("building teacher store %s: %s, %s", final, what, human_bytes(needed))
        barrier()
        if not (final / MANIFEST).is_file():
            shard = building / shard_name(rank, world_size)
            block = image_block(len(dataset), rank, world_size)
            build_shard(shard, teachers, dataset, block, settings, batch_size, device, codecs)
            barrier()
            if rank == 0:
                _finish(building, final, key, len(dataset), world_size)
            barrier()
    except OSError as error:
        _discard(building, rank, world_size, lock is not None)
        raise _build_error(error, building, f"{what}, {human_bytes(needed)}") from None
    except BaseException:
        _discard(building, rank, world_size, lock is not None)
        raise
    finally:
        if lock is not None:
            lock.release(complete=(final / MANIFEST).is_file())


def _fresh_folder(building: Path) -> None:
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
    except OSError as error:
        raise folder_error(building.parent, error, "create a store in") from None


def _discard(building: Path, rank: int, world_size: int, locked: bool) -> None:
    """What this rank wrote of a failed build: the whole `.building` folder by the lock holder, else its own shard."""
    if locked:
        shutil.rmtree(building, ignore_errors=True)
        return
    shard = building / shard_name(rank, world_size)
    for path in (shard, shard.with_name(shard.name + ".digests.safetensors")):
        path.unlink(missing_ok=True)


def _build_error(error: OSError, building: Path, description: str) -> ValueError:
    where = error.filename or building
    if error.errno in _SPACE_ERRORS:
        return StoreSpaceError(
            f"the disk filled while building the teacher store ({description}) at {where} ({error.strerror}); "
            "nothing was kept. Free space there, lower teacher_store_views, or point teacher_store_dir at a "
            "larger disk"
        )
    return folder_error(Path(where), error, "write the teacher store to")


def _finish(building: Path, final: Path, key: dict[str, Any], num_images: int, world_size: int) -> None:
    shards = []
    for rank, (start, end) in enumerate(_blocks(num_images, world_size)):
        file = shard_name(rank, world_size)
        shards.append({"file": file, "start": start, "end": end, **checksum_fields(building / file)})
    manifest = {"key": key, "num_images": num_images, "shards": shards}
    (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(final, ignore_errors=True)  # an incomplete folder (no manifest) is never read
    os.replace(building, final)
