"""Labels checked against the student's classes before the first update, whatever form the data takes.

One check (`check_label_values`: missing, boolean, fractional, negative, >= the student's class count), with the
messages of `labels.py`, applied where each form lets it run before the labels reach the model:

- `datasets.Dataset` (the CLI's splits, or the Python API's): its label column (`labels`, else `label`) read once
  as Arrow when the trainer is made: integer, float, boolean and `ClassLabel` labels; string labels are the label
  mapping's business (`labels.py`).
- a streamed `datasets.IterableDataset`: each batch as it is read (`IterableDataset.map`), before collation.
- any other torch `Dataset` / `IterableDataset`: each item as it is read, on the CPU in the loader (no device sync);
  a map-style dataset that lists its labels (`targets`, as torchvision's, or `labels`) is also checked whole first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..training.run_checks import check_not_empty
from .labels import (
    boolean_labels_error,
    column,
    fractional_labels_error,
    missing_labels_error,
    negative_labels_error,
    out_of_range_labels_error,
)

__all__ = ["check_datasets", "check_label_batch", "check_label_values", "checked_stream", "with_label_checks"]

_LABEL_KEYS = ("labels", "label")


def check_label_values(
    values: pa.Array | pa.ChunkedArray,
    split_name: str,
    num_classes: int | None = None,
    classlabel: bool = False,
    row_ids: Sequence[int] | None = None,
) -> None:
    """Refuse labels that are missing (None, NaN, a ClassLabel's -1), boolean, fractional, negative or
    >= `num_classes`; `row_ids` numbers the rows in messages (default 0..n-1)."""
    missing = pc.is_null(values, nan_is_null=True)
    if classlabel and pa.types.is_integer(values.type):
        missing = pc.or_(missing, pc.less(values, 0))
    rows = np.flatnonzero(missing.to_numpy(zero_copy_only=False)) if len(values) else np.zeros(0, dtype=np.int64)
    if len(rows):
        raise missing_labels_error(split_name, [int(row_ids[r]) if row_ids is not None else int(r) for r in rows])
    if pa.types.is_boolean(values.type):
        raise boolean_labels_error(split_name)
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)) or not len(values):
        return  # class names: mapped by name (labels.py), not indices
    array = values.to_numpy(zero_copy_only=False)
    fractional = array[array != np.floor(array)]
    if len(fractional):
        raise fractional_labels_error(split_name, np.unique(fractional).tolist(), len(fractional))
    negative = array[array < 0]
    if len(negative):
        raise negative_labels_error(split_name, np.unique(negative).astype(np.int64).tolist(), len(negative))
    beyond = array[array >= num_classes] if num_classes else array[:0]
    if len(beyond):
        raise out_of_range_labels_error(
            split_name, np.unique(beyond).astype(np.int64).tolist(), len(beyond), num_classes
        )


def check_label_batch(
    batch: dict[str, Any],
    indices: list[int],
    split_name: str,
    num_classes: int | None = None,
    classlabel: bool = False,
) -> dict[str, Any]:
    """`check_label_values` on a batch's `labels`/`label` (lists or tensors); the batch is returned unchanged."""
    key = next((key for key in _LABEL_KEYS if key in batch), None)
    if key is not None:
        values = _scalars(batch[key])
        if values is not None:
            check_label_values(pa.array(values), split_name, num_classes, classlabel, indices)
    return batch


def _scalars(raw: Any) -> list[Any] | None:
    """One class index (or None) per row; None when the labels are not that (soft labels `[B, K]`, mixed types)."""
    values = raw.tolist() if isinstance(raw, (torch.Tensor, np.ndarray)) else list(raw)
    scalars = [_scalar(value) for value in values]
    if any(value is _NOT_A_SCALAR for value in scalars):
        return None
    kinds = {type(value) for value in scalars if value is not None}
    return scalars if len(kinds) <= 1 or kinds == {int, float} else None


_NOT_A_SCALAR = object()


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else _NOT_A_SCALAR
    if isinstance(value, (np.ndarray, np.generic)):
        return value.item() if value.size == 1 else _NOT_A_SCALAR
    return value if value is None or isinstance(value, (bool, int, float)) else _NOT_A_SCALAR


def checked_stream(stream: datasets.IterableDataset, name: str, num_classes: int | None) -> datasets.IterableDataset:
    """`stream` whose labels are checked batch by batch as it is read (its features, ClassLabel included, kept)."""
    features = stream.features
    classlabel = any(isinstance((features or {}).get(key), datasets.ClassLabel) for key in _LABEL_KEYS)
    options = {"split_name": name, "num_classes": num_classes, "classlabel": classlabel}
    return stream.map(check_label_batch, batched=True, with_indices=True, fn_kwargs=options, features=features)


def check_datasets(trainer_kwargs: dict[str, Any], num_classes: int | None) -> None:
    """A Trainer's `train_dataset` and `eval_dataset` refused when empty, and made to refuse labels >= `num_classes`
    (`with_label_checks`), in place in `trainer_kwargs`."""
    for key in ("train_dataset", "eval_dataset"):
        check_not_empty(trainer_kwargs.get(key), key)
        trainer_kwargs[key] = with_label_checks(trainer_kwargs.get(key), num_classes, key)


def with_label_checks(dataset: Any, num_classes: int | None, name: str) -> Any:
    """`dataset` whose labels are checked against `num_classes` (see the module docstring for each form)."""
    if dataset is None or not num_classes:
        return dataset
    if isinstance(dataset, dict):  # the Trainer's several eval sets
        return {key: with_label_checks(value, num_classes, f"{name}[{key!r}]") for key, value in dataset.items()}
    if isinstance(dataset, datasets.Dataset):
        key = next((key for key in _LABEL_KEYS if key in (dataset.column_names or [])), None)
        if key is not None:
            classlabel = isinstance(dataset.features[key], datasets.ClassLabel)
            check_label_values(column(dataset, key), name, num_classes, classlabel)
        return dataset
    if isinstance(dataset, datasets.IterableDataset):
        return checked_stream(dataset, name, num_classes)
    if isinstance(dataset, torch.utils.data.IterableDataset):
        return _CheckedIterable(dataset, num_classes, name)
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        known = _label_attribute(dataset)
        if known is not None:  # torchvision's `targets` and the like: all of them before the first step
            check_label_values(pa.array(known), name, num_classes)
        return _CheckedItems(dataset, num_classes, name)
    return dataset


def _label_attribute(dataset: Any) -> list[Any] | None:
    """A map-style dataset's own list of every item's label (`targets`, `labels`), when it has one."""
    for attribute in ("targets", "labels"):
        values = getattr(dataset, attribute, None)
        if isinstance(values, (list, tuple, torch.Tensor, np.ndarray)) and len(values) == len(dataset):
            scalars = _scalars(values)
            if scalars is not None:
                return scalars
    return None


class _CheckedItems(torch.utils.data.Dataset):
    """A map-style dataset whose items' labels are checked as they are read."""

    def __init__(self, dataset: Any, num_classes: int, name: str) -> None:
        self.dataset, self.num_classes, self.name = dataset, num_classes, name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, dict):
            check_label_batch(
                {k: [v] for k, v in item.items() if k in _LABEL_KEYS}, [index], self.name, self.num_classes
            )
        return item

    def __getattr__(self, attribute: str) -> Any:  # the wrapped dataset's own attributes (features, ...)
        # Never its dunders: DataLoader would call the wrapped `__getitems__` and skip the check.
        if attribute == "dataset" or attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.dataset, attribute)


class _CheckedIterable(torch.utils.data.IterableDataset):
    """An iterable dataset whose items' labels are checked as they arrive."""

    def __init__(self, dataset: Any, num_classes: int, name: str) -> None:
        self.dataset, self.num_classes, self.name = dataset, num_classes, name

    def __iter__(self) -> Iterator[Any]:
        for index, item in enumerate(self.dataset):
            if isinstance(item, dict):
                labels = {k: [v] for k, v in item.items() if k in _LABEL_KEYS}
                check_label_batch(labels, [index], self.name, self.num_classes)
            yield item
