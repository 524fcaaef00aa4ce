"""How many images went through the teachers in a run, and where its teacher features came from (results.json).

A forward pre-hook on every frozen teacher counts the images it is given, whether to build a store or cache
(before the first step) or live at every step; `FeedTrainer.train` sums the counts of every process. A run that
reads every teacher from a store already built, or pulled from the Hub, records `teacher_forwards.images == 0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["TeacherForwardCounter", "teacher_feature_record"]


class TeacherForwardCounter:
    """Images given to any of `teachers`' forwards in this process (`images`); `total` once summed over processes."""

    def __init__(self, teachers: Sequence[nn.Module]) -> None:
        self.images = 0
        self.total: int | None = None
        self.handles = [teacher.register_forward_pre_hook(self._count) for teacher in teachers]

    def _count(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.images += len(inputs[0])

    def sum_over_processes(self, accelerator: Any) -> int:
        """The images of every process, summed (collective: every process calls it); kept in `total`."""
        count = torch.tensor([self.images], dtype=torch.int64, device=accelerator.device)
        self.total = int(accelerator.reduce(count, reduction="sum").item())
        return self.total


def teacher_feature_record(trainer: Any) -> dict[str, Any]:
    """results.json's `teacher_features` (`live`, `cache`, `store`, `hub:REPO@SHA`, `mixed` or `none`), one source
    per teacher, and `teacher_forwards` (images through the teachers, every process, build included)."""
    teachers, cache = list(getattr(trainer, "teachers", None) or []), getattr(trainer, "teacher_feature_cache", None)
    if cache is None:
        sources = ["live"] * len(teachers)
    else:
        sources = list(getattr(cache, "sources", None) or ["cache"] * len(teachers))
    counter = getattr(trainer, "teacher_forwards", None)
    images = None if counter is None else (counter.total if counter.total is not None else counter.images)
    return {
        "teacher_features": "none" if not sources else sources[0] if len(set(sources)) == 1 else "mixed",
        "teacher_feature_sources": sources,
        "teacher_forwards": {
            "images": images,
            "counted_on": "every process" if counter and counter.total is not None else "this process",
        },
    }
