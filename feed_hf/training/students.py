"""The student network: a fresh timm model or pretrained weights, with a classifier for the user's classes.

`FeedConfig.student` accepts:

- `NAME`: a freshly initialised timm architecture (e.g. `"resnet20_cifar"`, `"resnet18"`).
- `NAME.TAG`: that architecture with timm's pretrained weights of that tag (e.g. `"resnet18.a1_in1k"`).
- `hf-hub:ns/name[@revision]`: a timm-format Hub repo, pinned to the commit it resolves to.
- `local-dir:PATH`, or a plain `PATH` to a folder holding `config.json` (e.g. a folder exported by feed-hf).

Weights go through the teachers' loaders (`teachers/sources.py`): safetensors whenever present, a pickle only with
`teacher_allow_pickle` (it covers the student too), and every weights file is checked against the architecture on
the meta device first. The classifier of a pretrained student is always re-initialised for the run's classes
(`reset_classifier`): the source's head answered another question.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
from torch import nn

from ..teachers.sources import (
    TeacherSourceError,
    load_folder_teacher,
    load_hub_teacher,
    pin_hub_revision,
    pretrained_weights_overlay,
)
from ..transformers_models.formats import is_transformers_spec
from .resolution import set_student_input_size

__all__ = [
    "STUDENT_SOURCE_ATTRIBUTE",
    "StudentSourceError",
    "create_student",
    "student_base_model",
    "student_has_pretrained_weights",
]

# Set on each student create_student builds: the spec its weights came from. The record (provenance.py) trusts it;
# a module passed in has none and is recorded as such.
STUDENT_SOURCE_ATTRIBUTE = "feed_hf_student_source"


class StudentSourceError(ValueError):
    """A `student` whose weights cannot be loaded: missing folder or repo, a refused pickle, another net's weights."""


def create_student(args: Any, num_labels: int | None = None) -> nn.Module:
    """`args.student` with `num_labels` classes (fresh, or pretrained with a new classifier), at `args.input_size`.

    `args` is a `FeedConfig`; `args.num_labels` wins over `num_labels` when set. 0 classes: a backbone (timm
    `num_classes=0`), as for label-free FEED.
    """
    spec = args.student
    if not spec:
        raise ValueError("FeedConfig.student is not set: name a timm model (e.g. 'resnet20_cifar') or pass model=")
    num_labels = args.num_labels if args.num_labels is not None else num_labels
    if num_labels is None:
        raise ValueError(
            "num_labels is unknown: set FeedConfig.num_labels (0 for a backbone without classes) or give a train set "
            "with a ClassLabel"
        )
    if student_has_pretrained_weights(spec) and is_transformers_spec(spec):  # reset_classifier done there
        model = _transformers_student(spec, num_labels, args.teacher_allow_pickle)
    elif student_has_pretrained_weights(spec):
        model = _pretrained_student(spec, args.teacher_allow_pickle)
        model.reset_classifier(num_labels)  # fresh head for the user's classes, whatever the source's count
        model.pretrained_cfg = {**model.pretrained_cfg, "num_classes": num_labels}
        model.default_cfg = model.pretrained_cfg
    elif timm.is_model(spec):
        model = timm.create_model(spec, num_classes=num_labels)
    else:
        raise ValueError(
            f"student {spec!r} is not a timm model name (see timm.list_models()), nor 'NAME.TAG' with pretrained "
            "weights, an existing folder, 'hf-hub:ns/name[@rev]' or 'local-dir:PATH'; check the spelling or the path"
        )
    if args.input_size is not None:
        set_student_input_size(model, (args.input_size, args.input_size))
    setattr(model, STUDENT_SOURCE_ATTRIBUTE, spec)
    return model


def student_has_pretrained_weights(spec: str | None) -> bool:
    """Whether the `student` spec starts from weights (a Hub repo, a folder, or a timm `NAME.TAG`)."""
    if not spec:
        return False
    if spec.startswith(("hf-hub:", "local-dir:")) or Path(spec).is_dir():
        return True
    name, _, tag = spec.partition(".")
    return bool(tag) and timm.is_model(name)


def student_base_model(args: Any) -> str | None:
    """What the student's weights started from, for a card's `base_model`; None for a fresh initialisation.

    `hf-hub:` students: `ns/name@<commit sha>` (offline: from the cache). `NAME.TAG`: timm's Hub repo for those
    weights (e.g. `timm/resnet18.a1_in1k`), or `NAME.TAG` when timm names none. A local folder: the Hub id its
    `config.json` records (`pretrained_cfg.hf_hub_id`), else None: a folder of this machine is no Hub id.
    """
    spec = getattr(args, "student", None)
    if not student_has_pretrained_weights(spec):
        return None
    if spec.startswith("hf-hub:"):
        try:
            return pin_hub_revision(spec.removeprefix("hf-hub:"))
        except TeacherSourceError as error:
            raise _as_student_error(error) from None
    if spec.startswith("local-dir:") or Path(spec).is_dir():
        config_path = Path(spec.removeprefix("local-dir:")) / "config.json"
        try:
            hub_id = json.loads(config_path.read_text(encoding="utf-8")).get("pretrained_cfg", {}).get("hf_hub_id")
        except (OSError, ValueError, AttributeError):
            return None
        return hub_id or None
    pretrained_cfg = timm.models.get_pretrained_cfg(spec)
    return (pretrained_cfg.hf_hub_id if pretrained_cfg is not None else None) or spec


def _pretrained_student(spec: str, allow_pickle: bool) -> nn.Module:
    try:
        if spec.startswith("hf-hub:"):
            return load_hub_teacher(spec, allow_pickle)
        if spec.startswith("local-dir:") or Path(spec).is_dir():
            return load_folder_teacher(spec, spec.removeprefix("local-dir:"), allow_pickle)
        return _timm_pretrained(spec, allow_pickle)
    except TeacherSourceError as error:
        raise _as_student_error(error) from None


def _transformers_student(spec: str, num_labels: int, allow_pickle: bool) -> nn.Module:
    from ..transformers_models.students import load_transformers_student  # transformers' model classes load only here

    try:
        return load_transformers_student(spec, num_labels, allow_pickle)
    except TeacherSourceError as error:
        raise _as_student_error(error) from None


def _timm_pretrained(spec: str, allow_pickle: bool) -> nn.Module:
    try:
        pretrained_cfg = timm.models.get_pretrained_cfg(spec)
    except RuntimeError:  # a tag timm does not know
        pretrained_cfg = None
    if pretrained_cfg is None or not (pretrained_cfg.hf_hub_id or pretrained_cfg.url or pretrained_cfg.file):
        known = timm.list_pretrained(f"{spec.partition('.')[0]}.*")[:5]
        raise StudentSourceError(
            f"student {spec!r}: timm has no pretrained weights with that tag; use one of {known} "
            "(timm.list_pretrained), the bare architecture name for a fresh initialisation, or 'hf-hub:'/'local-dir:'"
        )
    overlay = pretrained_weights_overlay(spec, pretrained_cfg, allow_pickle)  # pickle policy; Hub commit pinned
    return timm.create_model(spec, pretrained=True, pretrained_cfg_overlay=overlay or None)


def _as_student_error(error: TeacherSourceError) -> StudentSourceError:
    # The loaders are shared with the teachers (and so is the teacher_allow_pickle opt-in); name the role.
    return StudentSourceError(str(error).replace("teacher ", "student ", 1))
