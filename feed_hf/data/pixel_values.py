"""The normalisation contract: what `pixel_values` a FeedTrainer expects, how to make them, and a first-batch check.

Every teacher re-normalises the student's `pixel_values` to its own mean/std (`FrozenTeacher`), so the batches must
be normalised exactly as the student's timm data config says: anything else feeds every teacher wrong inputs,
silently. `to_pixel_values` turns any `datasets` image dataset (a `Dataset` or a streamed `IterableDataset`, with
or without a label column) into those batches with the student's own transforms; `check_pixel_values_once` looks at
the first training batch and warns when its statistics look like another normalisation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import datasets
import torch
from timm.data import resolve_model_data_config
from torch import nn

from ..training.resolution import image_split_size, resolve_student_input_size
from .transforms import build_transform, column_names, with_pixel_values

__all__ = ["check_pixel_values_once", "label_names_of", "normalisation_mismatch", "run_class_names", "to_pixel_values"]

logger = logging.getLogger(__name__)

# Thresholds of `normalisation_mismatch` (fractions of the range the student's mean/std gives 8-bit images).
RANGE_TOLERANCE = 0.05  # resampling overshoot allowed beyond [(0 - mean) / std, (1 - mean) / std]
MIN_SPAN = 0.5  # a first batch of natural images spans at least half that range in some channel


def to_pixel_values(
    dataset: datasets.Dataset | datasets.IterableDataset,
    student: nn.Module,
    training: bool = False,
    input_size: int | None = None,
    image_column: str = "image",
    label_column: str | None = "label",
    horizontal_flip: bool = True,
    decide_input_size: bool = True,
) -> datasets.Dataset | datasets.IterableDataset:
    """`dataset` as the `{"pixel_values": [C, H, W], "labels": int}` items a FeedTrainer expects, lazily.

    The images go through the student's own timm transforms (`transforms.build_transform`: its mean/std, its
    input size, its eval crop; random crop/flip when `training`). With `decide_input_size`, the student's input
    size is decided first from `input_size` and these images (`resolution.resolve_student_input_size`), so the
    transforms, the teachers' probes and the export agree; pass False for a second split of the same run.
    `label_column=None`, or a dataset without it (nor transformers' `labels`), gives `pixel_values` only (label-free
    FEED); a warning names the other columns when there are some, in case one of them holds the labels.
    """
    columns = column_names(dataset)
    if image_column not in columns:
        raise ValueError(
            f"to_pixel_values: the dataset has no image column {image_column!r}; its columns are {columns}. "
            "Pass image_column= naming the column that holds the images"
        )
    label = _label_column(columns, image_column, label_column)
    kept = {image_column: "image", **({label: "label"} if label else {})}
    dataset = dataset.select_columns(list(kept)).rename_columns({k: v for k, v in kept.items() if k != v})
    if decide_input_size:
        data_size = image_split_size(dataset) if isinstance(dataset, datasets.Dataset) else None
        resolve_student_input_size(student, input_size, data_size, "the dataset's images", False)
    data_config = resolve_model_data_config(student)
    transform = build_transform(data_config, training, horizontal_flip)
    in_chans = data_config["input_size"][0]
    return with_pixel_values(dataset, transform, in_chans)


def _label_column(columns: list[str], image_column: str, label_column: str | None) -> str | None:
    if label_column is None or label_column in columns:
        return label_column
    if label_column == "label" and "labels" in columns:  # transformers' name for the same column
        return "labels"
    others = [column for column in columns if column != image_column]
    if others:
        logger.warning(
            "to_pixel_values: no label column %r; the dataset's other columns are %s. pixel_values only (label-free "
            "FEED); pass label_column= naming the labels, or label_column=None to say there are none",
            label_column,
            others,
        )
    return None


def label_names_of(
    dataset: datasets.Dataset | datasets.IterableDataset,
    label_column: str = "label",
    num_labels: int | None = None,
    class_names: Sequence[str] | None = None,
) -> list[str] | None:
    """The class names of a split: `class_names` if given, else its `ClassLabel`'s, else "0".."num_labels-1".

    A stream cannot be scanned for its label values before training, so a stream without a `ClassLabel` needs
    one of the two options; None when the dataset has no labels at all (label-free FEED).
    """
    if class_names:
        return list(class_names)
    feature = (dataset.features or {}).get(label_column)
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    if num_labels:
        return [str(index) for index in range(num_labels)]
    return None


def run_class_names(
    train: datasets.Dataset | datasets.IterableDataset, num_labels: int | None, class_names: Sequence[str]
) -> list[str] | None:
    """A run's class names from its train split (`label_names_of`); None for a label-free split (no `label`).

    A labelled stream whose labels are plain integers, with neither option set, is refused: its classes cannot be
    counted before training.
    """
    if "label" not in column_names(train):
        return None
    names = label_names_of(train, "label", num_labels, class_names)
    if names is None:
        raise ValueError(
            "the streamed train split's 'label' column is not a ClassLabel, so its classes cannot be counted before "
            "training; set num_labels (classes '0'..'K-1') or class_names (names in label-index order)"
        )
    return names


def normalisation_mismatch(pixel_values: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> str | None:
    """Why a batch `[B, C, H, W]` does not look normalised with `mean`/`std`, or None when it does.

    Rule, per channel c, with the range the student's normalisation gives 8-bit images lo_c = (0 − mean_c)/std_c,
    hi_c = (1 − mean_c)/std_c and span_c = hi_c − lo_c:

    1. a value below lo_c − 0.05·span_c or above hi_c + 0.05·span_c (`RANGE_TOLERANCE`): values in [0, 255],
       or another mean/std with a smaller std;
    2. no negative value at all while lo_c < −0.05·span_c for every channel: unnormalised values in [0, 1];
    3. every channel's batch range (max − min) under 0.5·span_c (`MIN_SPAN`): another mean/std with a larger std
       (e.g. 0.5/0.5 data for an ImageNet-normalised student), or a first batch of nearly flat images.
    """
    values = pixel_values.detach().float().transpose(0, 1).flatten(1)  # [C, B·H·W]
    if values.shape[0] != len(mean):
        return None  # channel conversion is the transforms' business, not this check's
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    low, high = (0 - mean_t) / std_t, (1 - mean_t) / std_t
    span = high - low
    batch_min, batch_max = values.min(dim=1).values.cpu(), values.max(dim=1).values.cpu()
    expected = f"[{low.min().item():.2f}, {high.max().item():.2f}]"
    seen = f"[{batch_min.min().item():.2f}, {batch_max.max().item():.2f}]"
    tolerance = RANGE_TOLERANCE * span
    if bool(((batch_min < low - tolerance) | (batch_max > high + tolerance)).any()):
        return f"values {seen} lie outside the range {expected} the student's mean/std gives (0–255 pixels?)"
    if bool((batch_min >= 0).all()) and bool((low < -tolerance).all()):
        return f"values {seen} are all non-negative; the student's mean/std gives {expected} (unnormalised 0–1?)"
    if bool(((batch_max - batch_min) < MIN_SPAN * span).all()):
        return f"values {seen} span less than half of the range {expected} the student's mean/std gives"
    return None


def check_pixel_values_once(trainer: Any, pixel_values: torch.Tensor) -> None:
    """On a trainer's first training batch only: warn (once) when `normalisation_mismatch` finds one."""
    if getattr(trainer, "_pixel_values_checked", False):
        return
    trainer._pixel_values_checked = True
    data_config = resolve_model_data_config(trainer.student)
    reason = normalisation_mismatch(pixel_values, data_config["mean"], data_config["std"])
    if reason:
        logger.warning(
            "the first training batch does not look normalised with the student's mean %s / std %s: %s. Every "
            "teacher re-normalises pixel_values from the student's normalisation; build the datasets with "
            "feed_hf.to_pixel_values(dataset, student) (or the student's timm transforms)",
            tuple(round(v, 3) for v in data_config["mean"]),
            tuple(round(v, 3) for v in data_config["std"]),
            reason,
        )
