"""FeedConfig's value checks: every FEED field validated where the config is made, one line per error; the
per-teacher lists' broadcast rule (one value for all teachers or one per teacher) lives here too."""

from __future__ import annotations

import math
from typing import Any, get_args

from timm.layers import get_act_layer, get_norm_layer

from ...method.summary_features import FeatureDistance
from ...store.key import DEFAULT_ENERGY_SHARE
from ...store.limits import check_store_views

__all__ = [
    "broadcast_per_teacher",
    "check_feature_modules",
    "check_feed_config",
    "check_layer_name",
    "check_per_teacher",
    "check_run_flags",
]


def check_feed_config(config: Any) -> None:
    """FeedConfig's value checks, run by its __post_init__: each error names the field, value and what is allowed."""
    num_teachers = len(config.teachers)
    check_per_teacher("feed_beta", config.feed_beta, num_teachers)
    check_per_teacher("teacher_feature_indices", config.teacher_feature_indices, num_teachers)
    if num_teachers:  # teachers given as modules are counted when the trainer gets them
        check_feature_modules(config, num_teachers)
    _check_teacher_input_sizes(config.teacher_input_sizes, num_teachers)
    for beta in config.feed_beta:
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"feed_beta must be finite and >= 0, got {beta}")
    if 0 < sum(beta == 0 for beta in config.feed_beta) < len(config.feed_beta):
        raise ValueError(
            f"feed_beta={config.feed_beta} mixes 0 and non-zero; drop the teachers you do not want to distil "
            "from, or set every β to 0 for a logit-KD-only run"
        )
    if config.feed_p not in (1, 2):
        raise ValueError(f"feed_p must be 1 (L1, the paper) or 2 (squared L2), got {config.feed_p}")
    if config.teacher_dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"teacher_dtype must be float32, bfloat16 or float16, got {config.teacher_dtype!r}")
    if config.batch_augmentation not in ("none", "crop", "crop_flip"):
        raise ValueError(f"batch_augmentation must be none, crop or crop_flip, got {config.batch_augmentation!r}")
    if config.batch_augmentation != "none" and config.cache_teacher_features:
        raise ValueError(
            "cache_teacher_features caches maps of un-augmented images; it cannot be combined with "
            f"batch_augmentation={config.batch_augmentation!r}"
        )
    _check_teacher_store(config)
    if config.feed_reduction not in ("mean", "sum"):
        raise ValueError(f"feed_reduction must be 'mean' or 'sum', got {config.feed_reduction!r}")
    if config.input_size is not None and config.input_size < 8:
        raise ValueError(f"input_size must be >= 8 pixels, got {config.input_size}")
    if config.num_labels is not None and config.num_labels < 0:
        raise ValueError(
            f"num_labels must be >= 1 (classes), or 0 for a backbone without classes (label-free FEED), "
            f"got {config.num_labels}"
        )
    if config.connector_num_layers < 1:
        raise ValueError(f"connector_num_layers must be >= 1, got {config.connector_num_layers}")
    if config.connector_mid_channels is not None and config.connector_mid_channels < 1:
        raise ValueError(f"connector_mid_channels must be >= 1 or None, got {config.connector_mid_channels}")
    check_layer_name("connector_norm", config.connector_norm, get_norm_layer, allow_none=True)
    check_layer_name("connector_activation", config.connector_activation, get_act_layer)
    if not (math.isfinite(config.kd_weight) and config.kd_weight >= 0):
        raise ValueError(f"kd_weight must be finite and >= 0, got {config.kd_weight}")
    _check_step_decay(config)
    _check_agglomeration_options(config)
    if not config.kd_temperature > 0:
        raise ValueError(f"kd_temperature must be > 0, got {config.kd_temperature}")


def check_run_flags(config: Any) -> None:
    """A training run (`train_model`, every training command) honours do_eval; it refuses do_train=False and
    do_predict=True, which it could not honour (the Trainer itself reads none of the three)."""
    if not config.do_train:
        raise ValueError(
            "do_train=False (--do_train false): this command trains a model, so it would do nothing; to evaluate an "
            "exported model run `feed-hf evaluate --model DIR --split SPLIT`, or drop --do_train"
        )
    if config.do_predict:
        raise ValueError(
            "do_predict=True (--do_predict): feed-hf has no prediction step; evaluate the export on a split with "
            "`feed-hf evaluate --model DIR --split test`, or drop --do_predict"
        )


def _check_step_decay(config: Any) -> None:
    if not config.lr_decay_epochs:
        return
    if config.lr_scheduler_type != "constant":
        raise ValueError(
            f"lr_decay_epochs={config.lr_decay_epochs} is a step schedule of its own; set lr_scheduler_type to "
            f"'constant' (it is {config.lr_scheduler_type!r}) or drop lr_decay_epochs"
        )
    if config.max_steps > 0:
        raise ValueError("lr_decay_epochs are epochs: train with num_train_epochs, not max_steps")
    if config.warmup_steps > 0:
        raise ValueError(
            f"warmup_steps={config.warmup_steps} would not be applied: lr_decay_epochs is a MultiStepLR from the first "
            "step (as lr_scheduler_type='constant' has no warmup); drop warmup_steps, or drop lr_decay_epochs and "
            "use a scheduler with warmup (e.g. lr_scheduler_type='cosine')"
        )
    if sorted(config.lr_decay_epochs) != list(config.lr_decay_epochs) or config.lr_decay_epochs[0] <= 0:
        raise ValueError(f"lr_decay_epochs must be increasing and > 0, got {config.lr_decay_epochs}")
    if not 0 < config.lr_decay_rate <= 1:
        raise ValueError(f"lr_decay_rate must be in (0, 1], got {config.lr_decay_rate}")


def _check_teacher_store(config: Any) -> None:
    if config.teacher_store_views < 1:
        raise ValueError(f"teacher_store_views must be >= 1, got {config.teacher_store_views}")
    if config.teacher_store_dtype not in ("bfloat16", "float16", "float32", "pca_int8"):
        raise ValueError(
            f"teacher_store_dtype must be bfloat16, float16, float32 or pca_int8, got {config.teacher_store_dtype!r}"
        )
    share = config.teacher_store_energy_share
    if not (math.isfinite(share) and 0.0 < share <= 1.0):
        raise ValueError(f"teacher_store_energy_share must be in (0, 1], got {share}; 0.99 keeps 99 % of the variance")
    if share != DEFAULT_ENERGY_SHARE and config.teacher_store_dtype != "pca_int8":
        raise ValueError(
            f"teacher_store_energy_share={share} applies to pca_int8 codes only, but teacher_store_dtype is "
            f"{config.teacher_store_dtype!r}; set teacher_store_dtype=pca_int8 or drop teacher_store_energy_share"
        )
    if config.teacher_store_repo is not None and not config.teacher_store:
        raise ValueError(
            f"teacher_store_repo={config.teacher_store_repo!r} pulls a teacher store, but teacher_store is False; "
            "set teacher_store=True or drop teacher_store_repo"
        )
    if not config.teacher_store:
        return
    if config.cache_teacher_features:
        raise ValueError("teacher_store=True replaces cache_teacher_features; set only one of them")
    if config.teacher_store_views > 1 and config.batch_augmentation == "none":
        raise ValueError(
            f"teacher_store_views={config.teacher_store_views} records augmented views, but batch_augmentation is "
            "'none' (the views would be identical); set batch_augmentation=crop_flip or teacher_store_views=1"
        )
    check_store_views(config.teacher_store_views, config.batch_augmentation, config.batch_augmentation_padding)


def _check_teacher_input_sizes(sizes: list[int], num_teachers: int) -> None:
    if sizes:  # empty: every teacher at its model's fixed size, else the student's
        check_per_teacher("teacher_input_sizes", sizes, num_teachers)
    for size in sizes:
        if size != 0 and size < 8:
            raise ValueError(
                f"teacher_input_sizes has {size}; each entry is a resolution >= 8 pixels, or 0 for the size the "
                "teacher's model only accepts (else the student's)"
            )


def check_per_teacher(name: str, values: list, num_teachers: int) -> None:
    if not values:
        raise ValueError(f"{name} is empty; give one value for all teachers or one per teacher")
    if num_teachers and len(values) not in (1, num_teachers):
        raise ValueError(
            f"{name} has {len(values)} values for {num_teachers} teachers; give one value or {num_teachers}"
        )


def broadcast_per_teacher(name: str, values: list, num_teachers: int) -> list:
    check_per_teacher(name, values, num_teachers)
    return list(values) * num_teachers if len(values) == 1 else list(values)


def check_layer_name(field_name: str, value: str, resolve, allow_none: bool = False) -> None:
    if allow_none and value == "none":
        return
    try:
        resolved = resolve(value)
    except (KeyError, AssertionError):
        resolved = None
    if resolved is None:
        raise ValueError(
            f"{field_name}={value!r} is not a timm layer name; try e.g. 'batchnorm2d', 'groupnorm' (norms) or "
            "'leaky_relu', 'relu', 'gelu', 'silu' (activations)"
        )


def check_feature_modules(config: Any, num_teachers: int) -> None:
    if config.teacher_feature_modules and len(config.teacher_feature_modules) != num_teachers:
        raise ValueError(
            f"teacher_feature_modules has {len(config.teacher_feature_modules)} entries for {num_teachers} "
            "teachers; give one module name per teacher or none"
        )


BALANCE_METHODS = ("none", "standardize", "phi_s")


def uses_summaries(config: Any) -> bool:
    return any(weight > 0 for weight in config.feed_summary_weight)


def _check_agglomeration_options(config: Any) -> None:
    """Each value checked with the field, the value and what is allowed named (FeedConfig.__post_init__)."""
    num_teachers = len(config.teachers)
    for name in ("feed_map_distance", "feed_summary_weight", "feed_summary_distance"):
        check_per_teacher(name, getattr(config, name), num_teachers)
    for name in ("feed_map_distance", "feed_summary_distance"):
        for value in getattr(config, name):
            if value not in get_args(FeatureDistance):
                raise ValueError(f"{name} entry {value!r}: expected one of {list(get_args(FeatureDistance))}")
    for weight in config.feed_summary_weight:
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"feed_summary_weight must be finite and >= 0, got {weight}; 0 turns the term off")
    if config.feed_balance not in BALANCE_METHODS:
        raise ValueError(f"feed_balance={config.feed_balance!r}: expected one of {list(BALANCE_METHODS)}")
    if config.feed_balance_samples < 2:
        raise ValueError(f"feed_balance_samples must be >= 2 images, got {config.feed_balance_samples}")
    if uses_summaries(config) and all(beta == 0 for beta in config.feed_beta):
        raise ValueError(
            f"feed_summary_weight={config.feed_summary_weight} with every feed_beta 0: the summary is pooled from the "
            "student map FEED taps; give feed_beta > 0"
        )
