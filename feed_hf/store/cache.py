"""Teacher outputs computed before training and looked up by `sample_index`: in memory, or from the on-disk store."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from transformers import default_data_collator

from ..teachers.frozen import FrozenTeacher, check_finite_maps
from ..teachers.targets import TeacherTargets
from .build import image_block
from .parts import ComposedStore, open_store_parts
from .reader import StoreSettings

__all__ = ["IndexedDataset", "TeacherFeatureCache", "check_deterministic", "open_store_for"]


class IndexedDataset(Dataset):
    """`dataset` whose items also carry `sample_index`, the key of the cached teacher outputs."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], "sample_index": index}


def check_deterministic(dataset: Dataset, option: str = "cache_teacher_features") -> None:
    """Refuse a dataset whose first item differs between two reads (random crop/flip/...)."""
    first, second = dataset[0]["pixel_values"], dataset[0]["pixel_values"]
    if not torch.equal(torch.as_tensor(first), torch.as_tensor(second)):
        raise ValueError(
            f"{option} needs a training set without random augmentation: its first image differed between two "
            f"reads (random crop/flip?). Turn the augmentation off (batch_augmentation replays it), or drop {option}."
        )


def open_store_for(
    args: Any,
    teachers: Sequence[FrozenTeacher],
    dataset: Dataset,
    barrier: Callable[[], None],
    gather_object: Callable[[list[Any]], list[Any]] | None = None,
    with_summaries: bool = False,
) -> ComposedStore:
    """The teacher store of a FeedConfig's run (`teacher_store*` and `batch_augmentation*` fields): one part per
    teacher (`store_parts`), pulled from `teacher_store_repo` or built where absent; with each view's teacher
    summaries too when the run's summary terms need them (`with_summaries`)."""
    check_deterministic(dataset, "teacher_store")
    settings = StoreSettings(
        views=args.teacher_store_views,
        padding=args.batch_augmentation_padding,
        augmentation=args.batch_augmentation,
        seed=args.seed if args.teacher_store_seed is None else args.teacher_store_seed,  # the run's, unless pinned
        dtype="bfloat16" if args.teacher_store_dtype == "pca_int8" else args.teacher_store_dtype,  # logits' dtype
        compression="pca_int8" if args.teacher_store_dtype == "pca_int8" else "none",
        energy_share=args.teacher_store_energy_share,
        with_logits=args.kd_weight > 0,
        with_summaries=with_summaries,
    )
    return open_store_parts(
        teachers,
        dataset,
        settings,
        root=args.teacher_store_dir,
        build={"batch_size": args.per_device_eval_batch_size, "device": args.device},
        distributed=(args.process_index, args.world_size, barrier, gather_object),
        verify=args.teacher_store_verify,
        repo=getattr(args, "teacher_store_repo", None),
    )


class TeacherFeatureCache:
    """Every teacher's feature map (and logits, for KD; summary, for the summary terms) for every training image,
    kept on the host, all from one forward per teacher and image.

    Memory: N_images × Σ_teachers C·H·W values in the teachers' output dtype (CIFAR, 50k images,
    one ResNet-56 map of 64×8×8 in fp32: 0.8 GB per teacher; bf16 halves it). Built as the store is: rank r of W
    computes its contiguous block of images only, then the blocks are gathered so every rank holds every row.
    """

    def __init__(
        self, feature_maps: list[torch.Tensor], logits: list[torch.Tensor], summaries: list[torch.Tensor] | None = None
    ) -> None:
        self.feature_maps = feature_maps
        self.logits = logits
        self.summaries = summaries or []

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        teachers: Sequence[FrozenTeacher],
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        with_logits: bool,
        rank: int = 0,
        world_size: int = 1,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
        with_summaries: bool = False,
    ) -> TeacherFeatureCache:
        """The cache of `dataset`; with `world_size` > 1, `gather` concatenates equal-sized tensors across ranks in
        rank order (`Accelerator.gather`)."""
        check_deterministic(dataset)
        start, end = image_block(len(dataset), rank, world_size)
        block = Subset(dataset, range(start, end))
        loader = DataLoader(block, batch_size=batch_size, shuffle=False, collate_fn=default_data_collator)
        first_image = default_data_collator([dataset[0]])["pixel_values"][:0]  # an empty batch: shapes, dtypes
        outputs: list[list[list[torch.Tensor]]] = [[[], [], []] for _ in teachers]  # maps, logits, summaries
        for pixels in [batch["pixel_values"] for batch in loader] or [first_image]:
            for index, teacher in enumerate(teachers):
                answer = teacher(pixels.to(device), with_logits=with_logits, with_summary=with_summaries)
                check_finite_maps(teacher.name, answer[0], f"the training images {start}..{end - 1}")
                for kept, value in zip(outputs[index], answer, strict=False):
                    if value is not None:
                        kept.append(value.cpu())
        blocks = [[torch.cat(values) if values else None for values in teacher] for teacher in outputs]
        if world_size > 1:
            sizes = [b - a for a, b in (image_block(len(dataset), r, world_size) for r in range(world_size))]
            move = functools.partial(_gather_blocks, sizes=sizes, gather=gather, device=device)
            blocks = [[None if values is None else move(values) for values in teacher] for teacher in blocks]
        kept = [[teacher[kind] for teacher in blocks if teacher[kind] is not None] for kind in range(3)]
        return cls(*kept)

    def lookup(self, sample_index: torch.Tensor, device: torch.device) -> TeacherTargets:
        """The cached (feature maps, logits, summaries) of the batch's images, on `device`."""
        rows = sample_index.cpu()
        return TeacherTargets(
            *(
                [values[rows].to(device, non_blocking=True) for values in kind]
                for kind in (self.feature_maps, self.logits, self.summaries)
            )
        )

    def stored_maps(self, sample_index: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """Each teacher's cached map `[B, C, H, W]` of the rows `sample_index`, on `device`."""
        return self.lookup(sample_index, device).maps

    def replay(self, pixel_values: torch.Tensor, sample_index: torch.Tensor) -> tuple[torch.Tensor, TeacherTargets]:
        """The batch's pixels as given (nothing to replay) and its cached (feature maps, logits, summaries)."""
        return pixel_values, self.lookup(sample_index, pixel_values.device)


def _gather_blocks(
    block: torch.Tensor, sizes: list[int], gather: Callable[[torch.Tensor], torch.Tensor], device: torch.device
) -> torch.Tensor:
    """Every rank's block, in rank order: padded to the largest block (gather needs one shape), then trimmed."""
    width = max(sizes)
    padded = torch.zeros((width, *block.shape[1:]), dtype=block.dtype)
    padded[: len(block)] = block
    gathered = gather(padded.to(device)).cpu()
    return torch.cat([gathered[rank * width : rank * width + size] for rank, size in enumerate(sizes)])
