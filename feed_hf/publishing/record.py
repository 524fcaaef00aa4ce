"""What a run records beside its model: the FEED settings as resolved, the teachers' facts, and where it ran."""

from __future__ import annotations

import json
import logging
import math
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from torch import nn

from ..training.config.readouts import feed_settings
from ..training.resolution import RESOLUTION_ATTRIBUTE
from .files import RESULTS_NAME
from .portable import PASSED_IN, portable_feed_config

__all__ = [
    "code_version",
    "describe_teacher",
    "feed_settings_record",
    "hardware_description",
    "is_passed_in",
    "library_versions",
    "recorded_teacher_top1",
    "run_summary",
    "student_input_size",
]

logger = logging.getLogger(__name__)

_LIBRARIES = ("feed-hf", "torch", "torchvision", "timm", "transformers", "accelerate", "datasets", "huggingface-hub")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def hardware_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    return f"CPU: {_cpu_model()}, {torch.get_num_threads()} threads"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def code_version() -> str:
    """`git describe` of the feed-hf source tree when run from a checkout, else the package version."""
    source_dir = Path(__file__).resolve().parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=source_dir, capture_output=True, text=True, timeout=5
        )
        if described.returncode == 0 and described.stdout.strip():
            return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return library_versions()["feed-hf"]


def feed_settings_record(
    args: Any, student: nn.Module, betas: list[float], teachers: nn.ModuleList, sources: list[str]
) -> dict[str, Any]:
    """What `feed_config.json` records: `feed_settings(args)` as resolved for this student and these teachers,
    with the input size the student was trained at and why, and the size each teacher was fed."""
    settings = portable_feed_config(feed_settings(args))
    settings["student"] = student.pretrained_cfg.get("architecture", settings["student"])
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


def recorded_teacher_top1(spec: str) -> float | None:
    """A local teacher's measured top-1, from the results.json feed-hf wrote beside its export (or beside the
    NAME=CHECKPOINT file). An optional fact: unreadable or malformed, it is logged and recorded as unknown."""
    if spec.startswith("hf-hub:"):
        return None
    location = spec.removeprefix("local-dir:")
    _, separator, checkpoint = location.partition("=")
    folder = Path(checkpoint).parent if separator and not Path(location).is_dir() else Path(location)
    results_file = folder / RESULTS_NAME
    if not results_file.is_file():
        return None
    try:
        recorded = json.loads(results_file.read_text(encoding="utf-8"))
        top1 = (recorded.get("metrics") or {}).get("eval_top1")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as error:
        top1, reason = "?", f"{type(error).__name__}: {error}"
    else:
        reason = f"its eval_top1 is {top1!r}, not a number"
    if top1 is None:  # a teacher that was never evaluated
        return None
    if isinstance(top1, (int, float)) and not isinstance(top1, bool) and math.isfinite(top1):
        return float(top1)
    logger.warning("teacher top-1 recorded as unknown: %s is malformed (%s)", results_file, reason)
    return None
