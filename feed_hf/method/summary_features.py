"""Summary features (pooled / class token, `[B, D]`) beside the maps, and the per-teacher distance choice.

Agglomerative systems match each teacher's *summary* vector as well as its spatial features, through a small
per-teacher head on the student. Here the head is AM-RADIO's adaptor (Ranzinger et al., "AM-RADIO: Agglomerative
Vision Foundation Model — Reduce All Domains Into One", CVPR 2024, arXiv 2312.06709): a 2-layer MLP with a
LayerNorm and GELU between the layers (`SummaryConnector`; `norm="none"` gives the plain Linear–GELU–Linear).
Its input is the student's summary: global average pooling of its final map (what a timm CNN's pre-logits are).

Distances, one per teacher and per term (`feature_distance`), for maps `[B, C, H, W]` and summaries `[B, D]`:

- `feed_l1` (default): FEED's Eq. 2, ‖t/‖t‖₂ − s/‖s‖₂‖₁ per sample over the flattened features — literally
  `losses.feed_distance` (same reduction convention: "mean" over elements or "sum" as written).
- `cosine`: 1 − cos(s, t) over channels, per spatial position for maps (then averaged over positions, or summed
  with reduction "sum"), per sample for summaries; AM-RADIO's summary loss and the cosine half of its feature loss.
- `smooth_l1`: smooth-L1 on the raw values (β = 1 by default), per element, "mean" or "sum" per sample. It is not scale
  free: use it on balanced teachers (`feed_hf/method/balancing.py`, standardize or phi_s), as AM-RADIO/PHI-S do.

Every distance is averaged over the batch and returned as a scalar in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

from .losses import Reduction, feed_distance

__all__ = [
    "FeatureDistance",
    "SummaryConnector",
    "check_distance",
    "feature_distance",
    "pooled_summary",
    "summary_loss",
    "timm_summary",
]

FeatureDistance = Literal["feed_l1", "cosine", "smooth_l1"]


def check_distance(name: str) -> FeatureDistance:
    """`name` if it is a distance this module computes; else a ValueError naming the choices."""
    if name not in get_args(FeatureDistance):
        raise ValueError(f"feature distance {name!r}: expected one of {get_args(FeatureDistance)}")
    return name  # type: ignore[return-value]


def pooled_summary(feature_map: torch.Tensor) -> torch.Tensor:
    """Global average pooling: `[B, C, H, W]` → `[B, C]` (the student's summary, a CNN's pre-logits)."""
    if feature_map.ndim != 4:
        raise ValueError(f"feature map of shape {tuple(feature_map.shape)}: expected [B, C, H, W]")
    return feature_map.mean(dim=(2, 3))


def timm_summary(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """A timm model's summary `[B, D]` from its `forward_features` output: `forward_head(..., pre_logits=True)`.

    That is the class token for ViTs pooled by token, the averaged tokens for `global_pool="avg"`, the pooled
    map for CNNs: what the model's own classifier reads.
    """
    summary = model.forward_head(features, pre_logits=True)
    if summary.ndim != 2:
        raise ValueError(
            f"{type(model).__name__}.forward_head(pre_logits=True) returned shape {tuple(summary.shape)}; a summary "
            "must be [B, D] (a model built with global_pool='' has none: pool it or match its map only)"
        )
    return summary


class SummaryConnector(nn.Sequential):
    """AM-RADIO's adaptor head: Linear(D_s → hidden) → LayerNorm → GELU → Linear(hidden → D_t); `[B, D_s]` → `[B, D_t]`.

    hidden defaults to D_t. norm="none" drops the LayerNorm (Linear–GELU–Linear).
    """

    def __init__(
        self, in_features: int, out_features: int, hidden_features: int | None = None, norm: str = "layer_norm"
    ) -> None:
        if norm not in ("layer_norm", "none"):
            raise ValueError(f"summary connector norm {norm!r}: expected 'layer_norm' or 'none'")
        hidden_features = hidden_features or out_features
        layers: list[nn.Module] = [nn.Linear(in_features, hidden_features)]
        if norm == "layer_norm":
            layers.append(nn.LayerNorm(hidden_features))
        layers += [nn.GELU(), nn.Linear(hidden_features, out_features)]
        super().__init__(*layers)


def _reduce_per_sample(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """`[B, ...]` → `[B]` by "sum" or "mean" over everything but the batch."""
    flat = values.flatten(1)
    return flat.sum(dim=1) if reduction == "sum" else flat.mean(dim=1)


def feature_distance(
    student: torch.Tensor,
    teacher: torch.Tensor,
    distance: FeatureDistance = "feed_l1",
    reduction: Reduction = "mean",
    eps: float = 1e-6,
    smooth_l1_beta: float = 1.0,
) -> torch.Tensor:
    """One teacher's distance between connected student features and teacher features (module docstring). Scalar fp32.

    student, teacher: `[B, C, H, W]` maps or `[B, D]` summaries, the same shape. reduction: over the elements
    (feed_l1, smooth_l1) or positions (cosine) of one sample; the batch is always averaged.
    """
    check_distance(distance)
    if student.shape != teacher.shape or student.ndim not in (2, 4):
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)}: expected the same [B, C, H, W] or "
            "[B, D] shape (the connector maps the student onto the teacher's)"
        )
    if distance == "feed_l1":
        return feed_distance(student, teacher, p=1, reduction=reduction, eps=eps)
    student, teacher = student.float(), teacher.float()
    if distance == "cosine":
        per_position = 1.0 - F.cosine_similarity(student, teacher, dim=1, eps=eps)  # [B, H, W] or [B]
        return (per_position if student.ndim == 2 else _reduce_per_sample(per_position, reduction)).mean()
    elementwise = F.smooth_l1_loss(student, teacher, reduction="none", beta=smooth_l1_beta)
    return _reduce_per_sample(elementwise, reduction).mean()


def summary_loss(
    connected_summaries: Sequence[torch.Tensor],
    teacher_summaries: Sequence[torch.Tensor],
    weights: Sequence[float],
    distances: Sequence[FeatureDistance],
    reduction: Reduction = "mean",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weighted sum over teachers of the summary distance: (Σ_n w_n·d_n, [d_n unweighted]), as `losses.feed_loss`.

    connected_summaries: N tensors `[B, D_n]` (each teacher's SummaryConnector output); teacher_summaries: N
    tensors `[B, D_n]`; weights and distances: one per teacher.
    """
    per_teacher = [
        feature_distance(connected, target, distance, reduction)
        for connected, target, distance in zip(connected_summaries, teacher_summaries, distances, strict=True)
    ]
    total = sum(weight * value for weight, value in zip(weights, per_teacher, strict=True))
    return total, per_teacher
