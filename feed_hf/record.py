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

import torch
from torch import nn

from .files import RESULTS_NAME
from .portable import portable_feed_config

__all__ = [
    "code_version",
    "describe_teacher",
    "feed_settings_record",
    "hardware_description",
    "library_versions",
    "recorded_teacher_top1",
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
    """What `feed_config.json` records: `args.feed_settings()` as resolved for this student and these teachers."""
    settings = portable_feed_config(args.feed_settings())
    settings["student"] = student.pretrained_cfg.get("architecture", settings["student"])
    settings["num_labels"] = student.num_classes
    settings["feed_beta"] = betas
    settings["teachers"] = sources
    settings["resolved_teachers"] = [
        describe_teacher(index, teacher, source)
        for index, (teacher, source) in enumerate(zip(teachers, sources, strict=True))
    ]
    return settings


def describe_teacher(index: int, teacher: nn.Module, source: str) -> dict[str, Any]:
    """A `FrozenTeacher` as recorded: `source` is portable; its measured accuracy is the caller's to add."""
    pretrained_cfg = getattr(teacher.model, "pretrained_cfg", {}) or {}
    hub_id, _, revision = (pretrained_cfg.get("hf_hub_id") or "").partition("@")
    if hub_id and revision:  # a Hub teacher is recorded with the commit its weights came from
        source = f"hf-hub:{hub_id}@{revision}"
    return {
        "name": f"teacher {index} ({source})",
        "source": source,
        "top1": None,
        "architecture": pretrained_cfg.get("architecture", type(teacher.model).__name__),
        "hf_hub_id": hub_id or None,
        "revision": revision or None,
        "num_classes": getattr(teacher.model, "num_classes", None),
        "feature_index": teacher.feature_tap.index,
        "feature_module": teacher.feature_tap.module_name,
        "feature_shape": list(teacher.feature_shape),
        "compared_at": list(teacher.compare_size),
    }


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
