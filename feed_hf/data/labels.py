"""One label mapping for a whole run, built from the train split and applied to every split.

Rules (`build_label_mapping`, `apply_label_mapping`):

- train has a `ClassLabel`: its names, in its order. Other splits are matched by name (a `ClassLabel`
  of other names or order is remapped; plain integers are taken as indices into train's names).
- train has integer labels: each integer is its own class index, so the model's output index is the
  user's label; there are max(train label) + 1 classes, named "0", "1", …. A float column whose
  values are all whole numbers counts as integers (pandas turns int columns into floats easily).
- train has string labels: the distinct names sorted naturally: numeric names by value ("2" < "10"),
  before any other names, which sort as plain strings.

Errors, before any training: an eval label that train has no class for; a negative integer label; a
non-integer float label; a missing label (None, NaN, or a `ClassLabel`'s -1); a bool label; label
types that differ between splits (e.g. integers in train, strings in test); a column of another type.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LabelMapping",
    "apply_label_mapping",
    "boolean_labels_error",
    "build_label_mapping",
    "column",
    "fractional_labels_error",
    "missing_labels_error",
    "negative_labels_error",
    "out_of_range_labels_error",
    "unseen_in_train",
]

logger = logging.getLogger(__name__)

LabelKind = Literal["classlabel", "integer", "string"]
_NUMERIC_NAME = re.compile(r"^[+-]?\d+$")
_SHOWN = 5  # how many offending values or rows an error message lists


@dataclass(frozen=True)
class LabelMapping:
    """Class names in output-index order, and what kind of train labels they came from."""

    names: tuple[str, ...]
    kind: LabelKind

    def feature(self) -> datasets.ClassLabel:
        return datasets.ClassLabel(names=list(self.names))


@dataclass(frozen=True)
class _SplitLabels:
    """A split's labels as the distinct values the user wrote (`keys`) and each row's position in them."""

    kind: LabelKind
    keys: list[Any]  # str for classlabel/string, int for integer
    rows: np.ndarray  # [N] index into keys


def build_label_mapping(train: datasets.Dataset, split_name: str = "train") -> LabelMapping:
    """The run's mapping, from the train split's `label` column (see the module docstring for the rules)."""
    labels = _read_labels(train, split_name)
    if labels.kind == "classlabel":
        return LabelMapping(tuple(train.features["label"].names), "classlabel")
    if labels.kind == "integer":
        return LabelMapping(tuple(str(i) for i in range(max(labels.keys) + 1)), "integer")
    return LabelMapping(tuple(sorted(labels.keys, key=_natural_key)), "string")


def apply_label_mapping(split: datasets.Dataset, mapping: LabelMapping, split_name: str) -> datasets.Dataset:
    """`split` with its `label` column as `mapping`'s ClassLabel: classes matched by name, not by the split's order."""
    labels = _read_labels(split, split_name)
    _check_same_kind(labels.kind, mapping.kind, split_name)
    index_of = {name: index for index, name in enumerate(mapping.names)}
    ids = np.array([_class_index(key, labels.kind, mapping, index_of) for key in labels.keys], dtype=np.int64)
    absent = [key for key, index in zip(labels.keys, ids, strict=True) if index < 0]
    if absent:
        count = int(np.isin(labels.rows, np.flatnonzero(ids < 0)).sum())
        raise ValueError(
            f"split {split_name!r} has labels that the train split has no class for: {_few(absent)} "
            f"({count} rows); the student would have no output for them. Add them to train, drop those rows, "
            "or choose another eval split (--eval_split)"
        )
    row_ids = ids[labels.rows] if len(labels.keys) else np.zeros(0, dtype=np.int64)
    feature = mapping.feature()
    current = split.features["label"]
    if isinstance(current, datasets.ClassLabel) and current.names == feature.names:
        return split  # already in the run's order: no rewrite
    return split.remove_columns("label").add_column("label", row_ids, feature=feature)


def unseen_in_train(train: datasets.Dataset, evaluation: datasets.Dataset) -> list[str]:
    """Names of the classes that `evaluation` has and `train` has no example of (both already mapped)."""
    seen = set(np.unique(_column(train, "label").to_numpy(zero_copy_only=False)).tolist())
    wanted = np.unique(_column(evaluation, "label").to_numpy(zero_copy_only=False)).tolist()
    names = train.features["label"].names
    return [names[i] for i in wanted if i not in seen]


def _class_index(key: Any, kind: LabelKind, mapping: LabelMapping, index_of: dict[str, int]) -> int:
    if kind == "integer":  # its own index (integer train) or an index into train's ClassLabel names
        return key if key < len(mapping.names) else -1
    return index_of.get(key, -1)


def _check_same_kind(kind: LabelKind, train_kind: LabelKind, split_name: str) -> None:
    # A ClassLabel matches anything by name; integers index a ClassLabel; integers and strings do not mix.
    if {kind, train_kind} == {"integer", "string"}:
        raise ValueError(
            f"label types differ between splits: the train split has {train_kind} labels, split {split_name!r} has "
            f"{kind} labels; give every split the same label type (all integers or all class names)"
        )


def _read_labels(split: datasets.Dataset, split_name: str) -> _SplitLabels:
    feature, column = split.features["label"], _column(split, "label")
    _refuse_missing(column, feature, split_name)
    kind = "classlabel" if isinstance(feature, datasets.ClassLabel) else _kind_of(column.type, split_name)
    if kind == "string":
        keys, rows = np.unique(column.to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
        return _SplitLabels(kind, keys.tolist(), rows)
    values = column.to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        _refuse_fractions(values, split_name)
    keys, rows = np.unique(values.astype(np.int64), return_inverse=True)
    if kind == "classlabel":
        return _SplitLabels(kind, [feature.names[i] for i in keys], rows)
    if len(keys) and keys[0] < 0:
        raise negative_labels_error(split_name, keys[keys < 0].tolist(), int((values < 0).sum()))
    return _SplitLabels(kind, keys.tolist(), rows)


def _kind_of(arrow_type: pa.DataType, split_name: str) -> LabelKind:
    if pa.types.is_boolean(arrow_type):
        raise boolean_labels_error(split_name)
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "integer"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    raise ValueError(
        f"split {split_name!r} has labels of type {arrow_type}; a label is one class per row: an integer, "
        "a class name (string) or a ClassLabel. Choose another column with --label_column"
    )


def _refuse_missing(column: pa.ChunkedArray, feature: Any, split_name: str) -> None:
    missing = pc.is_null(column, nan_is_null=True)
    if isinstance(feature, datasets.ClassLabel):
        missing = pc.or_(missing, pc.less(column, 0))  # ClassLabel stores "no label" as -1
    rows = np.flatnonzero(missing.to_numpy(zero_copy_only=False) if len(column) else [])
    if len(rows):
        raise missing_labels_error(split_name, rows.tolist())


def _refuse_fractions(values: np.ndarray, split_name: str) -> None:
    fractional = values[values != np.floor(values)]
    if len(fractional):
        raise fractional_labels_error(split_name, np.unique(fractional).tolist(), len(fractional))


def missing_labels_error(split_name: str, rows: list[int]) -> ValueError:
    return ValueError(
        f"split {split_name!r} has {len(rows)} rows without a label (None, NaN or -1): rows {_few(rows)}; "
        "drop them, or choose a labelled split (--eval_split, --train_split)"
    )


def negative_labels_error(split_name: str, values: list[int], count: int) -> ValueError:
    return ValueError(
        f"split {split_name!r} has negative integer labels: {_few(values)} ({count} rows); labels are class "
        "indices 0..K-1. -1 often marks unlabelled rows: drop them, or choose a labelled split"
    )


def fractional_labels_error(split_name: str, values: list[float], count: int) -> ValueError:
    return ValueError(
        f"split {split_name!r} has non-integer float labels: {_few(values)} ({count} rows); labels are class "
        "indices or class names: convert the column to int or to strings"
    )


def boolean_labels_error(split_name: str) -> ValueError:
    return ValueError(
        f"split {split_name!r} has boolean labels; convert them to integers (0/1) or class names "
        "('no'/'yes') so the class order is explicit"
    )


def out_of_range_labels_error(split_name: str, values: list[int], count: int, num_classes: int) -> ValueError:
    """A label >= the student's class count: the one message of every data form (API, CLI, streams)."""
    return ValueError(
        f"split {split_name!r} has labels outside the student's {num_classes} classes: {_few(values)} ({count} "
        f"rows); labels are class indices 0..{num_classes - 1}. Set num_labels to {max(values) + 1} or more (or "
        "class_names naming every class), or drop those rows"
    )


def column(split: datasets.Dataset, name: str) -> pa.ChunkedArray:
    """Column `name` of `split` as Arrow, honouring select()/shuffle() indices and ignoring any transform."""
    return _column(split, name)


def _column(split: datasets.Dataset, name: str) -> pa.ChunkedArray:
    table = split.select_columns([name]).with_format("arrow")[:]  # honours select()/shuffle() indices
    return table.column(name)


def _natural_key(name: str) -> tuple[int, int, str]:
    return (0, int(name), name) if _NUMERIC_NAME.match(name) else (1, 0, name)


def _few(values: list[Any]) -> str:
    shown = ", ".join(repr(value) for value in values[:_SHOWN])
    return f"[{shown}, … {len(values)} in all]" if len(values) > _SHOWN else f"[{shown}]"
