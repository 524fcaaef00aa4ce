"""Where a run's weights came from, as recorded: the student's starting point and the licence of every source.

Only what feed-hf itself loaded is claimed: a student built by `create_student` carries its spec
(`students.STUDENT_SOURCE_ATTRIBUTE`); a module passed in is "a module passed in", whatever its `pretrained_cfg`
says. A student started from a feed-hf export records that export's lineage (its teachers, its licence, its own
base model). The licence is the user's (`model_license`, or `license=` given to `push_to_hub`/`create_model_card`),
else the one every source shares; sources whose licences differ are named, and none is picked.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import timm
from torch import nn

from ..teachers.licenses import card_license
from ..training.students import STUDENT_SOURCE_ATTRIBUTE, student_base_model, student_has_pretrained_weights
from .card.metadata import teacher_license
from .feed_record import is_passed_in
from .files import FEED_CONFIG_NAME, MODEL_CONFIG_NAME, RESULTS_NAME
from .portable import PASSED_IN, portable_folder

__all__ = ["license_sources", "recorded_license", "resolve_license", "student_source"]

logger = logging.getLogger(__name__)


def student_source(student: nn.Module) -> dict[str, Any]:
    """What the student's weights started from: `kind` (fresh, timm pretrained, hub, feed-hf export, local folder,
    module passed in), `base_model` (a Hub id, pinned where known), `license`, and for an export its lineage."""
    spec = getattr(student, STUDENT_SOURCE_ATTRIBUTE, None)
    if spec is None:
        architecture = (getattr(student, "pretrained_cfg", None) or {}).get("architecture") or type(student).__name__
        return {"kind": "module passed in", "name": f"{architecture}{PASSED_IN}", "base_model": None, "license": None}
    if not student_has_pretrained_weights(spec):
        return {"kind": "fresh", "spec": spec, "base_model": None, "license": None}
    try:
        base_model = student_base_model(SimpleNamespace(student=spec))
    except ValueError as error:  # the Hub cannot be asked for the commit: the origin is still the spec
        logger.warning("the student's base model is recorded without its commit (%s)", error)
        base_model = spec.removeprefix("hf-hub:")
    if spec.startswith("local-dir:") or Path(spec).is_dir():
        return _local_lineage(Path(spec.removeprefix("local-dir:")), base_model)
    hub_id, _, revision = (base_model or "").partition("@")
    if spec.startswith("hf-hub:"):
        return {"kind": "hub", "spec": spec, "base_model": base_model, "license": teacher_license(hub_id, revision)}
    declared = getattr(timm.models.get_pretrained_cfg(spec), "license", None)
    return {"kind": "timm pretrained", "spec": spec, "base_model": base_model, "license": declared}


def _local_lineage(folder: Path, base_model: str | None) -> dict[str, Any]:
    """A student started from a local folder: a feed-hf export's record says what it was trained from."""
    feed, results = _read_json(folder / FEED_CONFIG_NAME), _read_json(folder / RESULTS_NAME)
    lineage = {
        "kind": "feed-hf export" if feed else "local folder",
        "spec": f"local-dir:{portable_folder(folder)}",
        "name": portable_folder(folder),
        "base_model": results.get("base_model") or base_model,
        "license": recorded_license(folder),
        "architecture": _read_json(folder / MODEL_CONFIG_NAME).get("architecture"),
    }
    if feed:
        lineage["teachers"] = [t.get("source") for t in feed.get("resolved_teachers") or []]
        lineage["task"] = results.get("task")
    return lineage


def recorded_license(folder: str | Path) -> str | None:
    """The licence a feed-hf export recorded for itself (results.json), or None."""
    licence = (_read_json(Path(folder) / RESULTS_NAME).get("license") or {}).get("id")
    return licence if isinstance(licence, str) and licence else None


def license_sources(feed: dict[str, Any], student: dict[str, Any], teacher_specs: list[str | None]) -> list[dict]:
    """Every source of this model's weights with its licence: the student's starting point (unless fresh) and each
    teacher. `teacher_specs` are the specs as given (None for a module), aligned with the teachers."""
    sources = []
    if student.get("kind") != "fresh":
        name = student.get("base_model") or student.get("name") or student.get("kind")
        sources.append({"role": "student", "name": name, "license": student.get("license")})
    for index, teacher in enumerate(feed.get("resolved_teachers") or []):
        spec = teacher_specs[index] if index < len(teacher_specs) else None
        licence = _teacher_licence(teacher, spec)
        sources.append({"role": f"teacher {index}", "name": teacher.get("source"), "license": licence})
    return sources


def _teacher_licence(teacher: dict[str, Any], spec: str | None) -> str | None:
    if is_passed_in(teacher.get("source") or "") or spec is None:
        return None
    if teacher.get("hf_hub_id"):
        return teacher_license(teacher["hf_hub_id"], teacher.get("revision")) or teacher.get("declared_license")
    location = spec.removeprefix("local-dir:")
    _, separator, checkpoint = location.partition("=")
    folder = Path(checkpoint).parent if separator and not Path(location).is_dir() else Path(location)
    return recorded_license(folder) or card_license(folder)  # a feed-hf export's record, else the folder's card


def resolve_license(declared: str | None, declared_by: str, sources: list[dict]) -> dict[str, Any]:
    """The licence recorded for the card: `declared` (by `declared_by`), else the one every source shares; with no
    source, unknown ones, or sources that differ, none, and the reason (naming them)."""
    if declared:
        return {"id": declared, "source": declared_by, "sources": sources}
    if not sources:
        return {"id": None, "source": None, "reason": "no licence chosen (set model_license)", "sources": sources}
    unknown = [source["name"] or source["role"] for source in sources if not source["license"]]
    if unknown:
        return {
            "id": None,
            "source": None,
            "reason": f"the licence of {', '.join(map(str, unknown))} is unknown; set model_license",
            "sources": sources,
        }
    if len({source["license"] for source in sources}) == 1:
        return {"id": sources[0]["license"], "source": "inherited", "sources": sources}
    listed = "; ".join(f"{s['role']} {s['name']}: {s['license']}" for s in sources)
    return {
        "id": None,
        "source": None,
        "conflict": True,
        "reason": f"the licences of its sources differ ({listed}) and feed-hf does not pick one; choose with "
        "model_license (or push_to_hub(license=...)) what their terms allow",
        "sources": sources,
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
