"""A transformers vision model as a FEED teacher: any `AutoModel` vision network, checked before its weights load.

`load_transformers_teacher` returns a `TransformersVisionModel` that `FrozenTeacher` takes as it takes a timm model.
Before any weight is read: the source's files are resolved under the pickle policy (a Hub repo pinned to a commit),
the network is built on the meta device, its preprocessing read from its image processor and checked against its
config, and, given a batch size, its inference memory is estimated and refused when it does not fit. The model
card's licence is recorded in `pretrained_cfg["license"]` and stated in the log (`model_licenses.license_verdict`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..teachers.licenses import card_license, license_verdict
from ..teachers.memory import MemoryEstimate, check_fits_memory, estimate_forward_memory
from ..teachers.sources import TeacherSourceError
from .adapter import TransformersVisionModel, vision_backbone
from .sources import TransformersSource, load_transformers_model, prepare_transformers_source

__all__ = ["load_transformers_teacher", "source_pretrained_cfg", "teacher_memory_estimate"]

logger = logging.getLogger(__name__)

_MODEL_KWARGS = ("dynamic_img_size",)


def load_transformers_teacher(
    spec: str,
    allow_pickle: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> TransformersVisionModel:
    """`hf-hub:ns/name[@rev]`, `local-dir:PATH` or `PATH` holding a transformers vision model → a teacher.

    `model_kwargs`: the spec's `?key=value` options; `dynamic_img_size=True` lets a token model run at any input
    size (position embeddings interpolated) instead of its processor's. `batch_size`: refuse, before loading, a
    teacher whose forward at that batch size and its input size would not fit in the free memory of `device`.
    """
    dynamic_img_size = _dynamic_img_size(spec, model_kwargs or {})
    prepared = prepare_transformers_source(spec, allow_pickle)
    if batch_size:
        input_size = tuple(prepared.data_config["input_size"])
        estimate = teacher_memory_estimate(prepared.shell, input_size, batch_size, dtype)
        check_fits_memory(f"teacher {spec!r}", estimate, batch_size, input_size, device)
    model = load_transformers_model(prepared.source, prepared.model_class)
    pretrained_cfg = source_pretrained_cfg(prepared.source, prepared.data_config)
    teacher = TransformersVisionModel(model, pretrained_cfg, dynamic_img_size)
    verdict = license_verdict(teacher.pretrained_cfg.get("license"))
    log = logger.warning if verdict.forbids_derivatives or not verdict.known else logger.info
    log("teacher %r: %s", spec, verdict.note)
    return teacher


def source_pretrained_cfg(source: TransformersSource, data_config: dict[str, Any]) -> dict[str, Any]:
    """The `pretrained_cfg` a loaded model starts from: its preprocessing, where it came from, its licence."""
    cfg: dict[str, Any] = {**data_config, "license": card_license(source.folder)}
    if source.hub_id is not None:
        cfg.update(hf_hub_id=source.hub_id, source="hf-hub")
    return cfg


def teacher_memory_estimate(
    meta_model: torch.nn.Module, input_size: tuple[int, int, int], batch_size: int, dtype: torch.dtype
) -> MemoryEstimate:
    """Inference memory of a transformers network built on the meta device, run as the adapter runs it."""
    return estimate_forward_memory(
        meta_model, input_size, batch_size, dtype, forward=lambda model, pixels: vision_backbone(model)(pixels)
    )


def _dynamic_img_size(spec: str, model_kwargs: dict[str, Any]) -> bool:
    unknown = sorted(set(model_kwargs) - set(_MODEL_KWARGS))
    if unknown:
        raise TeacherSourceError(
            f"teacher {spec!r}: {unknown} are not options of a transformers teacher; the one it takes is "
            "'?dynamic_img_size=true' (run at any input size). Drop the others from the spec"
        )
    return bool(model_kwargs.get("dynamic_img_size", False))
