"""FeedConfig's read-outs: its per-teacher settings broadcast to N teachers, and the FEED part as one record.

A mixin of `FeedConfig` (the methods read its fields), kept apart so that config.py holds the fields, their
documentation and their checks.
"""

from __future__ import annotations

from typing import Any

import torch

from ..run_checks import broadcast_per_teacher

__all__ = ["FeedSettingsMixin"]


class FeedSettingsMixin:
    """`betas(n)`, `teacher_feature_index(i, n)`, …: FeedConfig's settings as each part of a run needs them."""

    def betas(self, num_teachers: int) -> list[float]:
        """feed_beta broadcast to one β per teacher."""
        return broadcast_per_teacher("feed_beta", self.feed_beta, num_teachers)

    def teacher_feature_index(self, teacher_index: int, num_teachers: int) -> int:
        return broadcast_per_teacher("teacher_feature_indices", self.teacher_feature_indices, num_teachers)[
            teacher_index
        ]

    def teacher_feature_module(self, teacher_index: int, num_teachers: int) -> str | None:
        self._check_feature_modules(num_teachers)
        # "" = that teacher's feature index, so index and module selection mix across teachers.
        return (self.teacher_feature_modules[teacher_index] or None) if self.teacher_feature_modules else None

    def teacher_input_size(self, teacher_index: int, num_teachers: int) -> int | None:
        """The resolution teacher `teacher_index` runs at; None or 0: its model's fixed size, else the student's."""
        sizes = self.teacher_input_sizes or [0]
        return broadcast_per_teacher("teacher_input_sizes", sizes, num_teachers)[teacher_index]

    def _check_feature_modules(self, num_teachers: int) -> None:
        if self.teacher_feature_modules and len(self.teacher_feature_modules) != num_teachers:
            raise ValueError(
                f"teacher_feature_modules has {len(self.teacher_feature_modules)} entries for {num_teachers} "
                "teachers; give one module name per teacher or none"
            )

    def teacher_autocast_dtype(self) -> torch.dtype | None:
        return None if self.teacher_dtype == "float32" else getattr(torch, self.teacher_dtype)

    def connector_options(self) -> dict[str, Any]:
        return {
            "num_layers": self.connector_num_layers,
            "mid_channels": self.connector_mid_channels,
            "norm": self.connector_norm,
            "activation": self.connector_activation,
        }

    def feed_settings(self) -> dict[str, Any]:
        """The FEED part of this config (what `feed_config.json` records)."""
        return {
            "student": self.student,
            "num_labels": self.num_labels,
            "input_size": self.input_size,
            "teachers": list(self.teachers),
            "feed_beta": list(self.feed_beta),
            "feed_p": self.feed_p,
            "feed_reduction": self.feed_reduction,
            "student_feature_index": self.student_feature_index,
            "student_feature_module": self.student_feature_module,
            "teacher_feature_indices": list(self.teacher_feature_indices),
            "teacher_feature_modules": list(self.teacher_feature_modules),
            "teacher_input_sizes": list(self.teacher_input_sizes),
            "connector": self.connector_options(),
            "kd_weight": self.kd_weight,
            "kd_temperature": self.kd_temperature,
        }
