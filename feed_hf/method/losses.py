"""FEED's loss terms as pure functions (Park & Kwak 2019, Eq. 1–2), tested without a trainer.

Reduction convention. Eq. 2 is a per-sample *sum* over the C·H·W elements of the normalised
difference ("sum"); Factor Transfer's released code takes the *mean* over all elements ("mean",
β = 500 on CIFAR). With D = C·H·W the two differ only by D, so a β tuned for one converts as
β_sum = β_mean / D (e.g. β_mean = 500 on a 64×8×8 ResNet map is β_sum ≈ 0.122).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch.nn import functional as F

__all__ = ["Reduction", "ensemble_kd_loss", "feed_distance", "feed_loss", "normalize_feature_map"]

Reduction = Literal["mean", "sum"]


def normalize_feature_map(feature_map: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`[B, C, H, W]` → `[B, C·H·W]` in fp32, each sample scaled to unit L2 norm (eps-safe for zero maps)."""
    flat = feature_map.flatten(1).float()
    return flat / flat.norm(p=2, dim=1, keepdim=True).clamp_min(eps)


def feed_distance(
    student_map: torch.Tensor,
    teacher_map: torch.Tensor,
    p: int = 1,
    reduction: Reduction = "mean",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Eq. 2 for one teacher: ‖ t/‖t‖₂ − s/‖s‖₂ ‖_p^p, averaged over the batch. Scalar fp32.

    student_map: the connector output `[B, C, H, W]`; teacher_map: the teacher's map, same shape.
    p = 1 is the paper's L1 distance; p = 2 squares the element differences instead.
    reduction "sum" sums over C·H·W per sample (Eq. 2 as written); "mean" averages over it too.
    """
    if student_map.shape != teacher_map.shape:
        raise ValueError(
            f"student map {tuple(student_map.shape)} and teacher map {tuple(teacher_map.shape)} differ; "
            "the connector must map the student onto the teacher's [C, H, W]"
        )
    difference = normalize_feature_map(student_map, eps) - normalize_feature_map(teacher_map, eps)
    elementwise = difference.abs() if p == 1 else difference.pow(2)
    per_sample = elementwise.sum(dim=1) if reduction == "sum" else elementwise.mean(dim=1)
    return per_sample.mean()


def feed_loss(
    connected_maps: Sequence[torch.Tensor],
    teacher_maps: Sequence[torch.Tensor],
    betas: Sequence[float],
    p: int = 1,
    reduction: Reduction = "mean",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """β-weighted sum over teachers of Eq. 2: returns (Σ_n β_n·L_FEED_n, [L_FEED_n unweighted])."""
    per_teacher = [
        feed_distance(connected, target, p=p, reduction=reduction)
        for connected, target in zip(connected_maps, teacher_maps, strict=True)
    ]
    total = sum(beta * distance for beta, distance in zip(betas, per_teacher, strict=True))
    return total, per_teacher


def ensemble_kd_loss(
    student_logits: torch.Tensor, teacher_logits: Sequence[torch.Tensor], temperature: float = 4.0
) -> torch.Tensor:
    """Hinton KD towards the teachers' averaged logits: T²·KL(softmax(z̄_T/T) ‖ softmax(z_S/T)).

    student_logits `[B, K]`; teacher_logits: N tensors `[B, K]` (same K as the student). Scalar fp32.
    """
    mean_teacher = torch.stack([logits.float() for logits in teacher_logits]).mean(dim=0)
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(mean_teacher / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * temperature**2
