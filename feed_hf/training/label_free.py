"""Label-free FEED: a batch without `labels` trains on Σβ·FEED alone and is evaluated by its FEED distances.

With no label column (an imagefolder without class folders, a dataset of images only, `label_column: none`), there
is no CE term: the loss is Eq. 1 without its first term, Σ_n β_n·L_FEED_n, and the student's head is unused (the
student is built with `num_labels` classes, or none: timm `num_classes=0`, a backbone). Its export can then be
fine-tuned with labels: `student="local-dir:EXPORT"` re-initialises a classifier for the labelled classes.
Evaluation without labels runs the teachers and reports `eval_loss` = Σβ·FEED on the eval split (no top-1).

`FeedTrainer` decides it from its train set (`dataset_has_labels`), from the Python API as from the CLI. The one way
to ask for "a backbone, no classes" is `num_labels=0` (`FeedConfig(num_labels=0)`, `--num_labels 0`); unset, it
is the data's class count, or 0 for data without labels. A student without classes is refused for labelled data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..method.modeling import FeedStudentOutput
from .agglomeration import feed_terms, teacher_targets

__all__ = [
    "check_label_free_setup",
    "check_student_has_classes",
    "cross_entropy_term",
    "dataset_has_labels",
    "enable_label_free_evaluation",
    "evaluation_loss",
    "student_num_labels",
]

LABEL_KEYS = ("labels", "label", "label_ids")  # what the Trainer and default_data_collator read as labels


def cross_entropy_term(
    logits: torch.Tensor, labels: torch.Tensor | None, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 1's CE term and its logged terms (`loss/ce`); without labels, a zero (label-free FEED) and no term.

    logits `[B, K]`, labels `[B]` or None → (scalar loss, {"loss/ce": scalar} or {}).
    """
    if labels is None:
        return logits.new_zeros((), dtype=torch.float32), {}
    ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return ce, {"loss/ce": ce}


def evaluation_loss(
    trainer: Any, model: nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, FeedStudentOutput]:
    """Eval loss: CE of the student alone (label-smoothed as in training, as transformers' label smoother does);
    without labels, Σβ·FEED between its connected maps and the teachers' (with the training's balancing, distances
    and summary terms when set: `agglomeration.py`)."""
    if labels is not None:
        outputs = model(pixel_values)
        smoothing = trainer.args.label_smoothing_factor
        return F.cross_entropy(outputs.logits.float(), labels, label_smoothing=smoothing), outputs
    feed_student = trainer.accelerator.unwrap_model(model)
    student_pixels = feed_student.as_student_dtype(pixel_values)  # the teachers take the batch as it comes
    logits, student_map = feed_student.feature_tap.logits_and_map(feed_student.student, student_pixels)
    connected = tuple(connector(student_map) for connector in feed_student.connectors)
    tapped = FeedStudentOutput(logits=logits, connected_feature_maps=connected, student_feature_map=student_map)
    targets = teacher_targets(trainer, pixel_values)
    weighted, _ = feed_terms(trainer, model, tapped, targets.maps, targets.summaries)  # the training objective
    return weighted, FeedStudentOutput(logits=logits)


def enable_label_free_evaluation(trainer: Any) -> None:
    """Make the Trainer's evaluation call `compute_loss` on batches without labels (it skips the loss otherwise).

    `eval_loss` (Σβ·FEED) is then the metric: FeedTrainer sets no default `compute_metrics` (top-1 needs labels).
    """
    trainer.label_names = []  # no label keys: prediction_step then asks can_return_loss
    trainer.can_return_loss = True


def dataset_has_labels(dataset: Any) -> bool | None:
    """Whether a train set's items carry labels: its declared columns, else its first item; None when unknown.

    A `datasets` split is read from its columns (`to_pixel_values` keeps `label` as `labels`); an indexable dataset
    from its first item's keys; a stream with no declared columns is unknown (treated as labelled, batch by batch).
    """
    if dataset is None:
        return None
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, list):
        return any(key in columns for key in LABEL_KEYS)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__") or len(dataset) == 0:
        return None
    try:
        item = dataset[0]
    except (TypeError, IndexError, KeyError, NotImplementedError):
        return None
    return any(key in item for key in LABEL_KEYS) if isinstance(item, Mapping) else None


def student_num_labels(num_labels: int | None, class_names: list[str] | None, label_free: bool) -> int | None:
    """The student's class count: `num_labels` when set (0: a backbone), else the data's, else 0 without labels."""
    if num_labels is not None:
        return num_labels
    if class_names:
        return len(class_names)
    return 0 if label_free else None


def check_student_has_classes(student: nn.Module, labelled: bool | None) -> None:
    """Refuse a student without classes (num_labels=0, a backbone) for a train set with labels."""
    if labelled and getattr(student, "num_classes", None) == 0:
        raise ValueError(
            "the student has no classes (num_labels=0: a backbone for label-free FEED) but train_dataset has labels; "
            "set num_labels to the number of classes (or leave it unset to read the data's ClassLabel), or train on "
            "data without a label column"
        )


def check_label_free_setup(class_names: list[str] | None, teachers: list[Any], kd_weight: float) -> None:
    """A label-free run learns from its teachers' maps only: refuse one with no teacher or with logit KD."""
    if class_names is not None:
        return
    if not teachers:
        raise ValueError(
            "the train split has no labels (label-free FEED) and teachers is empty: there is nothing to learn from; "
            "name teachers, or give a label column (--label_column)"
        )
    if kd_weight > 0:
        raise ValueError(
            f"kd_weight={kd_weight} with a label-free train split: logit KD needs a student head with the teachers' "
            "classes; set kd_weight 0 (label-free FEED distils feature maps only)"
        )
