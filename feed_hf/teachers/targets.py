"""What the teachers give for one batch, live (`training/agglomeration.teacher_targets`) or read back from a store
or cache (`store/`): one type for both, so the loss code never asks where the targets came from."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["TeacherTargets"]


class TeacherTargets(NamedTuple):
    """Per teacher, in teacher order: maps `[B, C_n, H, W]`, logits `[B, K]` (KD on), summaries `[B, D_n]`
    (summary terms on); a list is empty when its option is off."""

    maps: list[torch.Tensor]
    logits: list[torch.Tensor]
    summaries: list[torch.Tensor]
