"""The key of a teacher store: every fact its maps depend on, and the fingerprint (folder name) made from it.

Two runs share a store exactly when their keys are equal. The key holds, per teacher, a SHA-256 of its weights
and buffers (so a new revision, a retrained checkpoint or random weights from another seed all give another key;
the teacher's path or Hub id does not matter, its weights do), its feature selection (index or module), the
compared map shape, its autocast dtype and its input re-normalisation; for the data, the number of images, the
`datasets` fingerprint when there is one and a SHA-256 of a few images' pixels as the model receives them (so a
change of input size, resize or normalisation is seen); and the store's own settings (views K, the augmentation's
padding and flip, the draw seed, the storage dtype, whether logits and summaries are stored, and the maps'
compression with its energy share when there is one). Labels are not part of it.
Format 2 added the stores' checksums (`store_integrity`): a store of format 1 has another key, so it is rebuilt
beside the old folder, never opened without checksums.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from ..teachers.frozen import FrozenTeacher
from .limits import check_store_views

__all__ = [
    "DEFAULT_ENERGY_SHARE",
    "StoreSettings",
    "dataset_facts",
    "settings_facts",
    "store_fingerprint",
    "store_key",
    "teacher_facts",
]

# Images hashed to fingerprint the pixels (spread over the set): enough to see another preprocessing or another
# set, cheap enough to check on every run. A change to images not sampled is not seen (documented).
_SAMPLED_IMAGES = 16
DEFAULT_ENERGY_SHARE = 0.99  # of each teacher's map variance kept by pca_int8 codes (teacher_store_energy_share)


@dataclass(frozen=True)
class StoreSettings:
    """What a store is built with, besides the teachers and the data."""

    views: int = 1
    padding: int = 4
    augmentation: str = "none"  # "none", "crop" or "crop_flip", as FeedConfig.batch_augmentation
    seed: int = 0
    dtype: str = "bfloat16"
    with_logits: bool = False
    with_summaries: bool = False  # each teacher's summary `[D]` per view, for the summary terms (agglomeration.py)
    compression: str = "none"  # "pca_int8": maps as feature_codec codes (PCA to energy_share, int8), decoded at replay
    energy_share: float = DEFAULT_ENERGY_SHARE

    def __post_init__(self) -> None:
        if self.augmentation not in ("none", "crop", "crop_flip"):
            raise ValueError(f"store augmentation must be none, crop or crop_flip, got {self.augmentation!r}")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"teacher_store_dtype must be bfloat16, float16 or float32, got {self.dtype!r}")
        if self.compression not in ("none", "pca_int8") or not 0.0 < self.energy_share <= 1.0:
            raise ValueError(
                f"store compression must be none or pca_int8 with an energy share in (0, 1], got "
                f"{self.compression!r} with {self.energy_share}"
            )
        if self.padding < 0:
            raise ValueError(f"batch_augmentation_padding must be >= 0, got {self.padding}")
        check_store_views(self.views, self.augmentation, self.padding)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def _tensor_digest(tensors: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def teacher_facts(teacher: FrozenTeacher) -> dict[str, Any]:
    """What one teacher's stored maps depend on (its weights by digest, not by name or path)."""
    model = teacher.model
    return {
        "architecture": getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__),
        "weights_sha256": _tensor_digest(list(model.state_dict().values())),
        "feature_index": teacher.feature_tap.index,
        "feature_module": teacher.feature_tap.module_name,
        "map_shape": [int(teacher.feature_shape[0]), *(int(side) for side in teacher.compare_size)],
        "autocast_dtype": str(teacher.autocast_dtype),
        "input_scale": [round(float(v), 8) for v in teacher.input_scale.flatten()],
        "input_shift": [round(float(v), 8) for v in teacher.input_shift.flatten()],
    }


def dataset_facts(dataset: Dataset) -> dict[str, Any]:
    """The number of images, the `datasets` fingerprint when there is one and a digest of sampled pixels."""
    count = len(dataset)
    base = getattr(dataset, "dataset", dataset)  # IndexedDataset wraps the training set
    sampled = sorted({round(i * (count - 1) / max(1, _SAMPLED_IMAGES - 1)) for i in range(_SAMPLED_IMAGES)})
    pixels = [torch.as_tensor(dataset[index]["pixel_values"]) for index in sampled]
    return {
        "num_images": count,
        "datasets_fingerprint": getattr(base, "_fingerprint", None),
        "image_shape": list(pixels[0].shape),
        "sampled_pixels_sha256": _tensor_digest(pixels),
    }


def store_key(teachers: Sequence[FrozenTeacher], dataset: Dataset, settings: StoreSettings) -> dict[str, Any]:
    """Everything the store's content depends on, as JSON-ready values."""
    return {
        "format": 2,
        "teachers": [teacher_facts(teacher) for teacher in teachers],
        "data": dataset_facts(dataset),
        "settings": settings_facts(settings),
    }


def settings_facts(settings: StoreSettings) -> dict[str, Any]:
    """The settings as keyed: without the compression fields when there is none, without `with_summaries` when
    off (stores built before those options keep their key)."""
    facts = asdict(settings)
    if settings.compression == "none":
        del facts["compression"], facts["energy_share"]
    if not settings.with_summaries:
        del facts["with_summaries"]
    return facts


def store_fingerprint(key: dict[str, Any]) -> str:
    """A short stable digest of `key`: the store's folder name."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
