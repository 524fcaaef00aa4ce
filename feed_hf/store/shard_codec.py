"""Compressed teacher store parts (issue 22, item 1): maps stored as `feature_codec` codes, decoded at replay.

With `StoreSettings(compression="pca_int8", energy_share=s)` a part's maps are stored as the codes of a
`FeatureCodec` (PCA rotation truncated to the components holding a share s of the energy, then per-channel int8):
one byte per kept component and position instead of two bytes per channel and position (bf16). The codec is
fitted once per part, before its build, on the teacher's maps of the first `FIT_IMAGES` images as loaded (no
crop: the recorded views are crops of the same images, values outside the calibrated range saturate), and written
into every shard beside the codes (`codec_mean_t`, `codec_rotation_t`, `codec_scale_t`, `codec_zero_point_t`), so
the store's checksums cover it and a part carries what decodes it. Every rank fits it on the same images; opening
refuses shards whose codecs differ. Decoding (`feature_codec.decode_maps`) runs on the device, after the codes
(a quarter to an eighth of the bf16 bytes at CIFAR's 64 channels) were moved there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from transformers import default_data_collator

from ..teachers.frozen import FrozenTeacher
from .codec import FeatureCodec, fit_feature_codec
from .integrity import StoreIntegrityError

__all__ = ["CODEC_PARTS", "FIT_IMAGES", "codec_tensors", "fit_part_codec", "shard_codecs"]

FIT_IMAGES = 512  # images whose maps fit a part's codec (stated in docs/performance.md)
CODEC_PARTS = ("mean", "rotation", "scale", "zero_point")


@torch.no_grad()
def fit_part_codec(
    teacher: FrozenTeacher, dataset: Dataset, energy_share: float, batch_size: int, device: torch.device
) -> FeatureCodec:
    """The codec of `teacher`'s part, fitted on its maps of the first `FIT_IMAGES` images (the same on every rank)."""
    sample = Subset(dataset, range(min(FIT_IMAGES, len(dataset))))
    loader = DataLoader(sample, batch_size, collate_fn=default_data_collator)
    maps = [teacher(batch["pixel_values"].to(device))[0].float().cpu() for batch in loader]
    return fit_feature_codec(maps, energy_share=energy_share, rotation="pca", code_dtype="int8")


def codec_tensors(codec: FeatureCodec, index: int) -> dict[str, torch.Tensor]:
    """The shard tensors that hold teacher `index`'s codec."""
    return {f"codec_{name}_{index}": tensor.float().contiguous() for name, tensor in codec.tensors().items()}


def shard_codecs(shards: Sequence[dict[str, torch.Tensor]], num_teachers: int, where: str) -> list[FeatureCodec]:
    """Each teacher's codec, read from the first shard; `StoreIntegrityError` when a shard holds another one."""
    codecs = []
    for index in range(num_teachers):
        names = [f"codec_{name}_{index}" for name in CODEC_PARTS]
        if any(name not in shard for shard in shards for name in names):
            raise StoreIntegrityError(f"teacher store {where} is compressed but a shard lacks teacher {index}'s codec")
        if any(not torch.equal(shard[name], shards[0][name]) for shard in shards[1:] for name in names):
            raise StoreIntegrityError(
                f"teacher store {where}: its shards hold different codecs of teacher {index} (ranks fitted them on "
                "other maps); the store is not used. Delete the folder to rebuild it"
            )
        codecs.append(FeatureCodec(*(shards[0][name].clone() for name in names), code_dtype="int8"))
    return codecs
