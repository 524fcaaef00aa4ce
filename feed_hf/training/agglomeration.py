"""Agglomerating teachers in a FeedTrainer run: summary terms, a distance per teacher, balanced teacher maps.

The options are FeedConfig fields (training/config/feed_config.py, read out in readouts.py); the pieces are
`summary_features` and `balancing` (docs/balancing_and_probes.md). With every option at its default each function
here is a no-op or calls `losses.feed_loss` exactly as before, so FEED as published computes the same loss.

- Summary: per teacher with weight w_n > 0, a `SummaryConnector` (kept in `FeedStudent.summary_connectors`, so the
  optimizer, checkpoints and resume include it) maps the student's pooled tapped map onto the feature the teacher's
  own head reads (`timm_summary`: `forward_head(forward_features(x), pre_logits=True)`), taken from the same
  teacher forward as its map (`teacher_targets`).
- Balance: per teacher, a `FeatureBalance` fitted once on the first `feed_balance_samples` train images (through
  the teachers, before training) and applied to its map before the distance; its facts go to feed_config.json's
  `resolved_teachers` entry (`balance`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..method.balancing import balance_features, fit_balance
from ..method.feature_moments import ChannelMoments
from ..method.losses import feed_distance, feed_loss
from ..method.modeling import student_map_shape
from ..method.summary_features import SummaryConnector, feature_distance, pooled_summary, summary_loss
from ..teachers.targets import TeacherTargets
from .config.readouts import map_distances, summary_distances, summary_weights, uses_summaries

__all__ = [
    "attach_summary_connectors",
    "balanced_maps",
    "feed_terms",
    "fit_teacher_balances",
    "map_loss",
    "summary_terms",
    "teacher_targets",
    "TeacherTargets",
]


def teacher_targets(trainer: Any, pixel_values: torch.Tensor) -> TeacherTargets:
    """Each teacher's outputs for student-normalised `pixel_values`, one forward per teacher (no autograd)."""
    with_logits, with_summary = trainer.args.kd_weight > 0, uses_summaries(trainer.args)
    outputs = [teacher(pixel_values, with_logits, with_summary) for teacher in trainer.teachers]
    return TeacherTargets(
        maps=[output[0] for output in outputs],
        logits=[output[1] for output in outputs if output[1] is not None],
        summaries=[output[2] for output in outputs] if with_summary else [],
    )


def attach_summary_connectors(feed_student: nn.Module, teachers: nn.ModuleList, args: Any) -> None:
    """Give `feed_student` one `SummaryConnector` per teacher when any summary weight is > 0 (else nothing)."""
    if not uses_summaries(args) or not len(teachers):
        return
    student_channels = student_map_shape(feed_student.student, feed_student.feature_tap)[0]
    connectors = [SummaryConnector(student_channels, teacher.summary_dim) for teacher in teachers]
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
    trainer: Any, model: nn.Module, outputs: Any, teacher_summaries: list[torch.Tensor]
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """(Σ w_n·d_sum,n, its log terms `feed/summary` and `feed/summary_t{n}`); (None, {}) without summary terms.

    `teacher_summaries` come with the maps from `teacher_targets` (the same teacher forward)."""
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
    connected = [connector(student_summary) for connector in connectors]
    total, per_teacher = summary_loss(
        connected, teacher_summaries, summary_weights(args, count), summary_distances(args, count), args.feed_reduction
    )
    terms = {"feed/summary": total, **{f"feed/summary_t{i}": value for i, value in enumerate(per_teacher)}}
    return total, terms


def feed_terms(
    trainer: Any, model: nn.Module, outputs: Any, teacher_maps: list[torch.Tensor], summaries: list[torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The FEED part of the loss for a student forward `outputs` (its `connected_feature_maps` and
    `student_feature_map`): Σβ_n·d_n over the (balanced) teacher maps, plus the summary terms when on; and the
    logged terms `feed/loss`, `feed/loss_t{n}` (and `feed/summary*`)."""
    teacher_maps = balanced_maps(trainer.teachers, teacher_maps)  # unchanged unless feed_balance
    weighted, per_teacher = map_loss(trainer.args, outputs.connected_feature_maps, teacher_maps, trainer.feed_betas)
    terms = {"feed/loss": weighted, **{f"feed/loss_t{index}": value for index, value in enumerate(per_teacher)}}
    weighted_summary, summary_log = summary_terms(trainer, model, outputs, summaries)
    if weighted_summary is None:
        return weighted, terms
    return weighted + weighted_summary, {**terms, **summary_log}


def balanced_maps(teachers: nn.ModuleList, teacher_maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each teacher's map through its fitted balance (`teacher.balance`); unchanged for teachers without one."""
    return [
        balance_features(feature_map, teacher.balance) if getattr(teacher, "balance", None) is not None else feature_map
        for teacher, feature_map in zip(teachers, teacher_maps, strict=True)
    ]


def fit_teacher_balances(trainer: Any) -> None:
    """Fit `feed_balance` once per teacher on the first `feed_balance_samples` train images (no-op for `none`).

    With a teacher store or cache the maps are read from it (a store's first view of each image): a run on a store
    already built, or pulled, still makes zero teacher forwards. Otherwise the teachers run on those images."""
    args = trainer.args
    if args.feed_balance == "none" or not len(trainer.teachers) or trainer.train_dataset is None:
        return
    stored = getattr(trainer, "teacher_feature_cache", None)
    moments = [ChannelMoments(teacher.feature_shape[0]) for teacher in trainer.teachers]
    loader = DataLoader(
        trainer.train_dataset, batch_size=args.per_device_eval_batch_size, collate_fn=trainer.data_collator
    )
    seen = 0
    for batch in loader:
        wanted = args.feed_balance_samples - seen
        if stored is not None:
            maps = stored.stored_maps(batch["sample_index"][:wanted], args.device)
        else:
            pixel_values = batch["pixel_values"][:wanted].to(args.device)
            maps = [teacher(pixel_values)[0] for teacher in trainer.teachers]
        for feature_map, moment in zip(maps, moments, strict=True):
            moment.update(feature_map)
        seen += len(maps[0])
        if seen >= args.feed_balance_samples:
            break
    for teacher, moment in zip(trainer.teachers, moments, strict=True):
        teacher.balance = fit_balance(moment, args.feed_balance)
        teacher.balance.info["sample_images"] = str(seen)
        teacher.balance.info["maps_from"] = "live teachers" if stored is None else "the teacher store or cache"
