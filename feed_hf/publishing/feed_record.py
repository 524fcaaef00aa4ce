"""What `feed_config.json` records beside the model: the FEED settings as resolved and each teacher's facts, and
the summary of them a run logs before its first step. The run's results (results.json) are run_record.py's."""

from __future__ import annotations

import logging
from typing import Any

import timm
from timm.data import resolve_model_data_config
from torch import nn

from ..training.config.readouts import feed_settings
from ..training.resolution import RESOLUTION_ATTRIBUTE
from ..transformers_models.adapter import TransformersVisionModel
from .portable import PASSED_IN, portable_feed_config

__all__ = [
    "describe_teacher",
    "feed_settings_record",
    "is_passed_in",
    "run_summary",
    "student_input_size",
]

logger = logging.getLogger(__name__)


def feed_settings_record(
    args: Any, student: nn.Module, betas: list[float], teachers: nn.ModuleList, sources: list[str]
) -> dict[str, Any]:
    """What `feed_config.json` records: `feed_settings(args)` as resolved for this student and these teachers,
    with the input size the student was trained at and why, and the size each teacher was fed."""
    settings = portable_feed_config(feed_settings(args))
    settings["student"] = student.pretrained_cfg.get("architecture", settings["student"])
    if isinstance(student, TransformersVisionModel):  # its export is transformers' format (the card says so)
        settings["student_library"] = "transformers"
    settings["num_labels"] = student.num_classes
    settings["feed_beta"] = betas
    settings["teachers"] = sources
    settings["student_input_size"] = student_input_size(student)
    settings["resolved_teachers"] = [
        describe_teacher(index, teacher, source, settings["student_input_size"]["size"])
        for index, (teacher, source) in enumerate(zip(teachers, sources, strict=True))
    ]
    return settings


def student_input_size(student: nn.Module) -> dict[str, Any]:
    """The H×W the student was trained and is evaluated at, and what decided it (`feed_hf.training.resolution`)."""
    size = list(resolve_model_data_config(student)["input_size"][1:])
    decided = getattr(student, RESOLUTION_ATTRIBUTE, None) or {}
    return {"size": size, "from": decided.get("from", "the student's timm cfg")}


def is_passed_in(source: str) -> bool:
    """Whether a recorded teacher source is a module passed in (`portable.portable_teacher_source`)."""
    return source.endswith(PASSED_IN)


def describe_teacher(index: int, teacher: nn.Module, source: str, student_size: list[int] | None = None) -> dict:
    """A `FrozenTeacher` as recorded: `source` is portable; its measured accuracy is the caller's to add.

    Its Hub id and commit are recorded only when feed-hf loaded its weights from there (`hf-hub:` or a timm name
    with pretrained weights, pinned to a commit when loaded): a module passed in is "a module passed in", whatever
    its `pretrained_cfg` says, for it may hold any weights.
    """
    pretrained_cfg = getattr(teacher.model, "pretrained_cfg", {}) or {}
    hub_id, _, revision = (pretrained_cfg.get("hf_hub_id") or "").partition("@")
    known = bool(hub_id and revision) and _loaded_by_name(source)
    if known and source.startswith("hf-hub:"):  # recorded with the commit its weights came from
        source = f"hf-hub:{hub_id}@{revision}"
    fed = list(teacher.input_size) if teacher.input_size is not None else student_size
    return {
        "name": f"teacher {index} ({source})",
        "source": source,
        "weights": _weights_origin(source, known),
        "top1": None,
        "architecture": pretrained_cfg.get("architecture", type(teacher.model).__name__),
        "hf_hub_id": hub_id if known else None,
        "revision": revision if known else None,
        "declared_license": pretrained_cfg.get("license") if known else None,
        "num_classes": getattr(teacher.model, "num_classes", None),
        "input_size": fed,
        "resized_from_student_input": teacher.input_size is not None and fed != student_size,
        "feature_index": teacher.feature_tap.index,
        "feature_module": teacher.feature_tap.module_name,
        "feature_shape": list(teacher.feature_shape),
        "compared_at": list(teacher.compare_size),
        **({"balance": teacher.balance.metadata()} if getattr(teacher, "balance", None) is not None else {}),
    }


def _loaded_by_name(source: str) -> bool:
    # feed-hf's loaders pin a Hub source's commit into pretrained_cfg: an `hf-hub:` spec or a timm `NAME.TAG`.
    if is_passed_in(source) or source.startswith("local-dir:") or "=" in source:
        return False
    return source.startswith("hf-hub:") or timm.is_model(source.split("?")[0].split(".")[0])


def _weights_origin(source: str, known: bool) -> str:
    if is_passed_in(source):
        return "a module passed in (its weights' origin is not known to feed-hf)"
    if known:
        return "the Hub repo and commit named" if source.startswith("hf-hub:") else "timm's pretrained weights"
    return "the local folder or file named"


def run_summary(student: nn.Module, teachers: nn.ModuleList, sources: list[str]) -> tuple[list[str], list[str]]:
    """The start-of-run summary: (lines, warnings). What size the student is trained at and why, and what each
    teacher is fed: its own input size (batches resized for it; upsampling is warned about) and compared map."""
    resolution = student_input_size(student)
    student_size = resolution["size"]
    lines = [f"student {_architecture(student)} at {_hw(student_size)}, from {resolution['from']}"]
    warnings = []
    for index, (teacher, source) in enumerate(zip(teachers, sources, strict=True)):
        fed = list(teacher.input_size) if teacher.input_size is not None else student_size
        how = f"resized from {_hw(student_size)}" if fed != student_size else "the student's batches as they are"
        lines.append(
            f"teacher {index} ({source}) fed {_hw(fed)} ({how}), map {_hw(list(teacher.feature_shape[1:]))} "
            f"compared at {_hw(list(teacher.compare_size))}"
        )
        if fed[0] * fed[1] > student_size[0] * student_size[1]:
            warnings.append(
                f"teacher {index} ({source}) takes {_hw(fed)} inputs: the student's {_hw(student_size)} images are "
                f"upsampled for it (set input_size, or teacher_input_sizes for this teacher, to choose otherwise)"
            )
    return lines, warnings


def _hw(size: list[int]) -> str:
    return f"{size[0]}×{size[1]}"


def _architecture(model: nn.Module) -> str:
    return (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
