"""Early checks of a FEED run's inputs: each fails in seconds with a message that says what to do."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..publishing.export import has_export
from ..teachers.frozen import check_finite_maps

__all__ = [
    "check_finite_loss",
    "check_teacher_maps_once",
    "check_export_target",
    "check_labels_fit",
    "check_not_empty",
    "check_output_dir",
    "teacher_folders",
]


def check_labels_fit(class_names: list[str] | None, student: nn.Module) -> None:
    num_classes = getattr(student, "num_classes", None)
    if class_names and num_classes is not None and len(class_names) > num_classes:
        raise ValueError(
            f"the training set has {len(class_names)} classes (labels 0..{len(class_names) - 1}) but the student has "
            f"num_labels={num_classes}; set num_labels to {len(class_names)} (or leave it unset to use the data's)"
        )


def check_teacher_maps_once(trainer: Any, teacher_maps: list[torch.Tensor]) -> None:
    """On a trainer's first training batch only: stop, before the first update, if a teacher's map is not finite.

    A teacher whose weights are finite can still give NaN/Inf maps (an overflow under `teacher_dtype=float16`,
    a layer that divides by a zero statistic); one host sync, once per run.
    """
    if getattr(trainer, "_teacher_maps_checked", False):
        return
    trainer._teacher_maps_checked = True
    for teacher, feature_map in zip(trainer.teachers, teacher_maps, strict=True):
        check_finite_maps(teacher.name, feature_map, "the first training batch")


def check_output_dir(output_dir: str) -> None:
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"output_dir {output_dir!r} is not a writable folder ({error}); choose another") from None


def check_not_empty(dataset: Any, name: str = "train_dataset") -> None:
    """Refuse an empty train (or eval) set before any work; the Trainer would fail later with a bare traceback."""
    if isinstance(dataset, dict):  # the Trainer's several eval sets
        for key, value in dataset.items():
            check_not_empty(value, f"{name}[{key!r}]")
        return
    if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:
        subset = "max_train_samples" if name == "train_dataset" else "max_eval_samples"
        raise ValueError(f"{name} is empty: check the dataset path, split and {subset}")


def teacher_folders(teacher_specs: Iterable[str]) -> list[Path]:
    """The local folders that hold a teacher given by spec (`local-dir:PATH`, `PATH`, `NAME=PATH/FILE`)."""
    folders = []
    for spec in teacher_specs:
        if spec.startswith("hf-hub:"):
            continue
        path = spec.removeprefix("local-dir:")
        if "=" in path and not Path(path).exists():
            path = str(Path(path.split("=", 1)[1]).parent)
        if Path(path).is_dir():
            folders.append(Path(path).resolve())
    return folders


def check_export_target(output_dir: str, teacher_specs: Iterable[str], overwrite: bool, resuming: bool) -> None:
    """Refuse to train into a teacher's folder (always) or over an existing export (unless opted in or resuming)."""
    target = Path(output_dir).resolve()
    if target in teacher_folders(teacher_specs):
        raise ValueError(
            f"output_dir {output_dir!r} is the folder of one of this run's teachers; the student's export would "
            "replace the teacher. Choose another output_dir."
        )
    if has_export(target) and not (overwrite or resuming):
        raise ValueError(
            f"output_dir {output_dir!r} already holds an exported model; training would replace it. Choose another "
            "output_dir, resume it (resume_from_checkpoint), or set overwrite_output_dir=True (--overwrite_output_dir)."
        )


def check_finite_loss(loss: torch.Tensor, terms: dict[str, torch.Tensor], step: int, sources: list[str]) -> None:
    """Stop at step `step` when the loss or a term is NaN/Inf, naming the term (and the teacher of a FEED term)."""
    # One host sync per step (the Trainer's own logging_nan_inf_filter already makes one): raising
    # here, before backward and the optimizer step, keeps NaN weights out of every checkpoint.
    values = torch.stack([loss.detach().float(), *(t.detach().float() for t in terms.values())])
    if bool(torch.isfinite(values).all()):
        return
    bad = [
        _describe_term(name, sources)
        for name, value in zip(terms, values[1:].tolist(), strict=True)
        if not math.isfinite(value)
    ]
    raise FloatingPointError(
        f"non-finite loss at step {step}: {', '.join(bad) or 'loss'}; training stopped "
        "before this step's update, so no checkpoint holds its weights. Lower learning_rate or feed_beta, "
        "or check the data and the named teacher's checkpoint."
    )


def _describe_term(name: str, teacher_sources: list[str]) -> str:
    if name.startswith("feed/loss_t"):
        index = int(name.removeprefix("feed/loss_t"))
        return f"{name} (teacher {index}: {teacher_sources[index]})"
    return name
