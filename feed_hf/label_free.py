"""Label-free FEED: a batch without `labels` trains on Σβ·FEED alone and is evaluated by its FEED distances.

With no label column (an imagefolder without class folders, a dataset of images only, `label_column: none`), there
is no CE term: the loss is Eq. 1 without its first term, Σ_n β_n·L_FEED_n, and the student's head is unused (the
student is built with `num_labels` classes, or none: timm `num_classes=0`, a backbone). Its export can then be
fine-tuned with labels: `student="local-dir:EXPORT"` re-initialises a classifier for the labelled classes.
Evaluation without labels runs the teachers and reports `eval_loss` = Σβ·FEED on the eval split (no top-1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .losses import feed_loss
from .modeling import FeedStudentOutput

__all__ = ["check_label_free_setup", "cross_entropy_term", "enable_label_free_evaluation", "evaluation_loss"]


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
    """Eval loss: CE of the student alone; without labels, Σβ·FEED between its connected maps and the teachers'."""
    if labels is not None:
        outputs = model(pixel_values)
        return F.cross_entropy(outputs.logits.float(), labels), outputs
    feed_student = trainer.accelerator.unwrap_model(model)
    logits, student_map = feed_student.feature_tap.logits_and_map(feed_student.student, pixel_values)
    connected = [connector(student_map) for connector in feed_student.connectors]
    teacher_maps, _ = trainer.teacher_outputs(pixel_values)
    args = trainer.args
    weighted, _ = feed_loss(connected, teacher_maps, trainer.feed_betas, args.feed_p, args.feed_reduction)
    return weighted, FeedStudentOutput(logits=logits)


def enable_label_free_evaluation(trainer: Any) -> None:
    """Make the Trainer's evaluation call `compute_loss` on batches without labels (it skips the loss otherwise)."""
    trainer.label_names = []  # no label keys: prediction_step then asks can_return_loss
    trainer.can_return_loss = True
    trainer.compute_metrics = None  # top-1 needs labels; eval_loss is the metric


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
