"""FeedConfig's read-outs: its per-teacher settings broadcast to N teachers, and the FEED part as one record.

Plain functions of a config (`betas(config, 2)`), so that FeedConfig is one class of fields and checks, and every
part of a run reads the settings the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .checks import broadcast_per_teacher, check_feature_modules, uses_summaries

__all__ = [
    "agglomeration_settings",
    "betas",
    "connector_options",
    "feed_settings",
    "map_distances",
    "summary_distances",
    "summary_weights",
    "teacher_autocast_dtype",
    "teacher_feature_index",
    "teacher_feature_module",
    "teacher_input_size",
    "uses_summaries",
]


def betas(config: Any, num_teachers: int) -> list[float]:
    """feed_beta broadcast to one β per teacher."""
    return broadcast_per_teacher("feed_beta", config.feed_beta, num_teachers)


def teacher_feature_index(config: Any, teacher_index: int, num_teachers: int) -> int:
    indices = broadcast_per_teacher("teacher_feature_indices", config.teacher_feature_indices, num_teachers)
    return indices[teacher_index]


def teacher_feature_module(config: Any, teacher_index: int, num_teachers: int) -> str | None:
    check_feature_modules(config, num_teachers)
    # "" = that teacher's feature index, so index and module selection mix across teachers.
    return (config.teacher_feature_modules[teacher_index] or None) if config.teacher_feature_modules else None


def teacher_input_size(config: Any, teacher_index: int, num_teachers: int) -> int | None:
    """The resolution teacher `teacher_index` runs at; None or 0: its model's fixed size, else the student's."""
    sizes = config.teacher_input_sizes or [0]
    return broadcast_per_teacher("teacher_input_sizes", sizes, num_teachers)[teacher_index]


def teacher_autocast_dtype(config: Any) -> torch.dtype | None:
    return None if config.teacher_dtype == "float32" else getattr(torch, config.teacher_dtype)


def connector_options(config: Any) -> dict[str, Any]:
    return {
        "num_layers": config.connector_num_layers,
        "mid_channels": config.connector_mid_channels,
        "norm": config.connector_norm,
        "activation": config.connector_activation,
    }


def feed_settings(config: Any) -> dict[str, Any]:
    """The FEED part of `config` (what `feed_config.json` records)."""
    return {
        "student": config.student,
        "num_labels": config.num_labels,
        "input_size": config.input_size,
        "teachers": list(config.teachers),
        "feed_beta": list(config.feed_beta),
        "feed_p": config.feed_p,
        "feed_reduction": config.feed_reduction,
        "student_feature_index": config.student_feature_index,
        "student_feature_module": config.student_feature_module,
        "teacher_feature_indices": list(config.teacher_feature_indices),
        "teacher_feature_modules": list(config.teacher_feature_modules),
        "teacher_input_sizes": list(config.teacher_input_sizes),
        "connector": connector_options(config),
        "kd_weight": config.kd_weight,
        "kd_temperature": config.kd_temperature,
        **agglomeration_settings(config),  # summaries, distances, balancing: recorded when used
    }


def map_distances(config: Any, num_teachers: int) -> list[str]:
    return broadcast_per_teacher("feed_map_distance", config.feed_map_distance, num_teachers)


def summary_weights(config: Any, num_teachers: int) -> list[float]:
    return broadcast_per_teacher("feed_summary_weight", config.feed_summary_weight, num_teachers)


def summary_distances(config: Any, num_teachers: int) -> list[str]:
    return broadcast_per_teacher("feed_summary_distance", config.feed_summary_distance, num_teachers)


_AGGLOMERATION_FIELDS = ("feed_map_distance", "feed_summary_weight", "feed_summary_distance", "feed_balance")


def agglomeration_settings(config: Any) -> dict[str, Any]:
    """What feed_config.json records of the agglomeration options: nothing when every one is at its field's default."""
    fields = {spec.name: spec for spec in dataclasses.fields(config)}
    defaults = {name: _default(fields[name]) for name in _AGGLOMERATION_FIELDS}
    if all(getattr(config, name) == default for name, default in defaults.items()):
        return {}
    settings = {name: getattr(config, name) for name in (*_AGGLOMERATION_FIELDS, "feed_balance_samples")}
    return {name: list(value) if isinstance(value, list) else value for name, value in settings.items()}


def _default(spec: dataclasses.Field) -> Any:
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
