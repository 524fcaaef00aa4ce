"""The user's `data_collator` around `sample_index`, the row key of teacher outputs computed before training.

With `cache_teacher_features` or `teacher_store`, every training item carries `sample_index` and each batch must
keep it, whatever the collator: `SampleIndexCollator` takes it out of the items, calls the user's collator (one that
rebuilds the batch from `pixel_values` and `labels`, as the transformers image-classification guide's does, works),
and puts it back. The teachers' maps are computed from the items stacked as `default_data_collator` stacks them, so
a user's collator must give those same `pixel_values`, in the items' order, every time: `check_collator_for_teacher_
outputs` checks it on the first items before any teacher pass, and refuses the run naming the collator otherwise
(a collator that normalises, resizes or mixes images belongs in the dataset's transform then).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import default_data_collator

__all__ = ["SampleIndexCollator", "check_collator_for_teacher_outputs"]

_CHECKED_ITEMS = 4


class SampleIndexCollator:
    """`collator` applied to the items without `sample_index`; the batch gets it back as an int64 `[B]` tensor."""

    def __init__(self, collator: Callable[[list[Any]], dict[str, Any]]) -> None:
        self.collator = collator

    def __call__(self, features: list[Any]) -> dict[str, Any]:
        if not features or not isinstance(features[0], Mapping) or "sample_index" not in features[0]:
            return self.collator(features)  # evaluation items, or a dataset without cached teacher outputs
        indices = [int(feature["sample_index"]) for feature in features]
        batch = self.collator([{k: v for k, v in feature.items() if k != "sample_index"} for feature in features])
        batch["sample_index"] = torch.tensor(indices, dtype=torch.long)
        return batch


def check_collator_for_teacher_outputs(collator: Callable[[list[Any]], Any], dataset: Any, option: str) -> None:
    """Refuse a collator whose `pixel_values` are not the stacked items' (every time) for `option`'s teacher pass."""
    items = [dataset[index] for index in range(min(_CHECKED_ITEMS, len(dataset)))]
    if not items:
        return
    expected = default_data_collator([{"pixel_values": item["pixel_values"]} for item in items])["pixel_values"]
    user_collator = collator.collator if isinstance(collator, SampleIndexCollator) else collator
    name = getattr(user_collator, "__qualname__", None) or type(user_collator).__name__
    batches = [_collated_pixels(collator, items, name, option) for _ in range(2)]
    if not _same(batches[0], batches[1]):  # a collator that draws random augmentations
        why = "differed between two calls on the same items"
    elif not _same(batches[0], expected):
        why = "are not the items' own, stacked"
    else:
        return
    raise ValueError(
        f"data_collator {name}: its pixel_values {why}, but {option} computes the teachers' maps from the items as "
        "default_data_collator stacks them, so they would not match what the student sees; move that transform "
        f"into the dataset (with_transform) or turn {option} off"
    )


def _collated_pixels(collator: Callable[[list[Any]], Any], items: list[Any], name: str, option: str) -> torch.Tensor:
    batch = collator(items)
    pixel_values = batch.get("pixel_values") if isinstance(batch, Mapping) else None
    if pixel_values is None or "sample_index" not in batch:
        raise ValueError(
            f"data_collator {name} returned no {'pixel_values' if pixel_values is None else 'sample_index'}; "
            f"{option} needs batches with pixel_values and the sample_index of each item"
        )
    return torch.as_tensor(pixel_values)


def _same(first: torch.Tensor, second: torch.Tensor) -> bool:
    return tuple(first.shape) == tuple(second.shape) and torch.equal(first, second)
