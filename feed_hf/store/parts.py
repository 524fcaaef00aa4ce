"""A run's teacher store as one part per teacher: parts are built, pulled and shared one teacher at a time.

Each teacher's maps are a store of their own (`teacher_store.open_or_build_store` with that teacher alone), in the
folder named by the fingerprint of its key (that teacher's facts, the data, the store settings). A run with
teachers A, B, C reads the parts of A, B and C side by side (`ComposedStore`): a part already there (built by
another run, or pulled from the Hub, `store_hub`) costs no teacher forward, a missing one is built alone. So
adding a teacher to an experiment builds (and pushes) only its part, and the files of the others are never
rewritten. Every part records the same crops (they depend on the images' count and the settings only, which are
in every part's key), so the views drawn once per batch select the same (crop, flip) in every part. Building a
part leaves the global RNG as it found it, so a run trains the same whether it built, reused or pulled its parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..teachers.frozen import FrozenTeacher
from ..teachers.targets import TeacherTargets
from .key import StoreSettings, store_fingerprint, store_key
from .nodes import check_shared_store
from .reader import MANIFEST, TeacherStore, Verification, default_store_root, open_or_build_store
from .shard_codec import fit_part_codec

__all__ = ["ComposedStore", "open_store_parts", "part_fingerprints"]

logger = logging.getLogger(__name__)


class ComposedStore:
    """The parts of a run's teachers (one `TeacherStore` each), answered as one store, teacher order kept.

    `sources[t]` says where teacher t's features came from: `"store"` (this machine's store folder) or
    `"hub:REPO@SHA"` (pulled from that Hub dataset repo at that commit by this run).
    """

    def __init__(self, parts: Sequence[TeacherStore], sources: Sequence[str]) -> None:
        self.parts, self.sources = list(parts), list(sources)
        self.settings = self.parts[0].settings
        self.num_teachers = len(self.parts)

    @property
    def paths(self) -> list[Path]:
        return [part.path for part in self.parts]

    def lookup(self, images: torch.Tensor, views: torch.Tensor, device: torch.device) -> TeacherTargets:
        """Every teacher's stored maps (logits, summaries) of images `[B]` seen through views `[B]`, teacher order."""
        answers = [part.lookup(images, views, device) for part in self.parts]
        return TeacherTargets(*([value for answer in answers for value in answer[kind]] for kind in range(3)))

    def augmentation(self, images: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The recorded (top, left, flipped) of each (image, view): the same in every part (same key settings)."""
        return self.parts[0].augmentation(images, views)

    # One of the K views per image (global RNG, one draw for all parts), its pixels and every part's outputs.
    replay = TeacherStore.replay
    stored_maps = TeacherStore.stored_maps  # every part's maps through the first view


def part_fingerprints(teachers: Sequence[FrozenTeacher], dataset: Dataset, settings: StoreSettings) -> list[str]:
    """The folder name (fingerprint) of each teacher's part."""
    return [store_fingerprint(store_key([teacher], dataset, settings)) for teacher in teachers]


def open_store_parts(
    teachers: Sequence[FrozenTeacher],
    dataset: Dataset,
    settings: StoreSettings,
    root: str | Path | None = None,
    build: dict[str, Any] | None = None,
    distributed: tuple[int, int, Callable[[], None], Callable[[Any], list[Any]] | None] = (0, 1, lambda: None, None),
    verify: Verification = "sampled",
    repo: str | None = None,
) -> ComposedStore:
    """Each teacher's part under `root`: pulled from Hub dataset `repo` ("REPO" or "REPO@REVISION") when it is
    there and not here, else built here (that teacher alone), then all opened and verified.

    `build` holds `batch_size` and `device`; `distributed` is (rank, world_size, barrier, gather_object). Under
    several processes the store folder must be the same one for all of them (`store_nodes.check_shared_store`).
    """
    rank, world_size, barrier, gather_object = distributed
    root = Path(root or default_store_root())
    fingerprints = part_fingerprints(teachers, dataset, settings)
    check_shared_store(root, fingerprints, rank, world_size, barrier, gather_object)
    sources = ["store"] * len(teachers)
    if repo is not None:
        from .hub import pull_missing_parts  # huggingface_hub's download machinery only when asked for

        sources = pull_missing_parts(repo, root, fingerprints, rank, barrier, gather_object)
    build = {"batch_size": 256, "device": torch.device("cpu"), **(build or {})}
    parts = []
    with torch.random.fork_rng(devices=[]):  # building (its loaders draw seeds) leaves the run's RNG as it was
        for teacher, fingerprint in zip(teachers, fingerprints, strict=True):
            codecs = None
            if settings.compression != "none" and not (root / fingerprint / MANIFEST).is_file():  # to be built
                codecs = [fit_part_codec(teacher, dataset, settings.energy_share, **build)]
            parts.append(open_or_build_store([teacher], dataset, settings, root, rank=rank, world_size=world_size,
                                             barrier=barrier, verify=verify, codecs=codecs, **build))  # fmt: skip
    return ComposedStore(parts, sources)
