"""Agglomerating teachers in a FeedTrainer run: summary terms, a distance per teacher, balanced teacher maps.

The options are FeedConfig fields (training/config/feed_config.py, read out in readouts.py); the pieces are
`summary_features` and `balancing` (docs/balancing_and_probes.md). With every option at its default each function
here is a no-op or calls `losses.feed_loss` exactly as before, so FEED as published computes the same loss.

- Summary: per teacher with weight w_n > 0, a `SummaryConnector` (kept in `FeedStudent.summary_connectors`, so the
  optimizer, checkpoints and resume include it) maps the student's pooled tapped map onto the feature the teacher's
  own head reads (`timm_summary`: `forward_head(forward_features(x), pre_logits=True)`, one more teacher forward).
- Balance: per teacher, a `FeatureBalance` fitted once on the first `feed_balance_samples` train images (through
  the teachers, before training) and applied to its map before the distance; its facts go to feed_config.json's
  `resolved_teachers` entry (`balance`).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.data import resolve_model_data_config
from torch import nn
from torch.utils.data import DataLoader

from ..method.balancing import balance_features, fit_balance
from ..method.feature_moments import ChannelMoments
from ..method.losses import feed_distance, feed_loss
from ..method.modeling import student_map_shape
from ..method.summary_features import SummaryConnector, feature_distance, pooled_summary, summary_loss, timm_summary
from .config.readouts import map_distances, summary_distances, summary_weights, uses_summaries

__all__ = [
    "attach_summary_connectors",
    "balanced_maps",
    "fit_teacher_balances",
    "map_loss",
    "summary_terms",
    "teacher_summary",
]


def teacher_summary(teacher: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """A `FrozenTeacher`'s summary `[B, D]` (fp32) of student-normalised pixels, fed as its map is."""
    inputs = teacher.prepare_input(pixel_values)
    dtype = teacher.autocast_dtype
    with torch.no_grad(), torch.autocast(inputs.device.type, dtype=dtype, enabled=dtype is not None):
        return timm_summary(teacher.model, teacher.model.forward_features(inputs)).float()


def attach_summary_connectors(feed_student: nn.Module, teachers: nn.ModuleList, args: Any) -> None:
    """Give `feed_student` one `SummaryConnector` per teacher when any summary weight is > 0 (else nothing)."""
    if not uses_summaries(args) or not len(teachers):
        return
    student_channels = student_map_shape(feed_student.student, feed_student.feature_tap)[0]
    probe = torch.zeros(1, *resolve_model_data_config(feed_student.student)["input_size"])
    connectors = [SummaryConnector(student_channels, teacher_summary(t, probe).shape[1]) for t in teachers]
    feed_student.summary_connectors = nn.ModuleList(connectors)


def map_loss(
    args: Any, connected: list[torch.Tensor], teacher_maps: list[torch.Tensor], betas: list[float]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Σ β_n·d_n over teachers with each teacher's `feed_map_distance`; all `feed_l1`: `losses.feed_loss` itself."""
    distances = map_distances(args, len(teacher_maps))
    if all(distance == "feed_l1" for distance in distances):
        return feed_loss(connected, teacher_maps, betas, args.feed_p, args.feed_reduction)
    per_teacher = [
        feed_distance(student, teacher, p=args.feed_p, reduction=args.feed_reduction)
        if distance == "feed_l1"
        else feature_distance(student, teacher, distance, args.feed_reduction)
        for student, teacher, distance in zip(connected, teacher_maps, distances, strict=True)
    ]
    return sum(beta * value for beta, value in zip(betas, per_teacher, strict=True)), per_teacher


def summary_terms(
    trainer: Any, model: nn.Module, outputs: Any, pixel_values: torch.Tensor
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """(Σ w_n·d_sum,n, its log terms `feed/summary` and `feed/summary_t{n}`); (None, {}) without summary terms."""
    connectors = getattr(trainer.accelerator.unwrap_model(model), "summary_connectors", None)
    if not uses_summaries(trainer.args):
        return None, {}
    if not connectors or len(connectors) != len(trainer.teachers):
        raise ValueError(
            f"feed_summary_weight={trainer.args.feed_summary_weight} but the model has "
            f"{len(connectors or [])} summary connectors for {len(trainer.teachers)} teachers (a FeedStudent built "
            "by hand?); let FeedTrainer build the FeedStudent (pass the bare student), or set feed_summary_weight=0"
        )
    args, count = trainer.args, len(trainer.teachers)
    student_summary = pooled_summary(outputs.student_feature_map)
    targets = [teacher_summary(teacher, pixel_values) for teacher in trainer.teachers]
    connected = [connector(student_summary) for connector in connectors]
    total, per_teacher = summary_loss(
        connected, targets, summary_weights(args, count), summary_distances(args, count), args.feed_reduction
    )
    terms = {"feed/summary": total, **{f"feed/summary_t{i}": value for i, value in enumerate(per_teacher)}}
    return total, terms


def balanced_maps(teachers: nn.ModuleList, teacher_maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each teacher's map through its fitted balance (`teacher.balance`); unchanged for teachers without one."""
    return [
        balance_features(feature_map, teacher.balance) if getattr(teacher, "balance", None) is not None else feature_map
        for teacher, feature_map in zip(teachers, teacher_maps, strict=True)
    ]


def fit_teacher_balances(trainer: Any) -> None:
    """Fit `feed_balance` once per teacher on the first `feed_balance_samples` train images (no-op for `none`)."""
    args = trainer.args
    if args.feed_balance == "none" or not len(trainer.teachers) or trainer.train_dataset is None:
        return
    moments = [ChannelMoments(teacher.feature_shape[0]) for teacher in trainer.teachers]
    loader = DataLoader(
        trainer.train_dataset, batch_size=args.per_device_eval_batch_size, collate_fn=trainer.data_collator
    )
    seen = 0
    for batch in loader:
        pixel_values = batch["pixel_values"][: args.feed_balance_samples - seen].to(args.device)
        for teacher, moment in zip(trainer.teachers, moments, strict=True):
            moment.update(teacher(pixel_values)[0])
        seen += len(pixel_values)
        if seen >= args.feed_balance_samples:
            break
    for teacher, moment in zip(trainer.teachers, moments, strict=True):
        teacher.balance = fit_balance(moment, args.feed_balance)
        teacher.balance.info["sample_images"] = str(seen)
