"""Streamed datasets (`datasets.IterableDataset`) for FEED runs: loading, column choice, eval split, class names.

A stream cannot be scanned before training, so three things differ from `data.load_image_splits`: there is no
decode pre-check (an image that does not decode fails at its step), the class names come from the stream's
`ClassLabel` or from `num_labels` / `class_names` (`pixel_values.label_names_of`), and an eval split that the
dataset lacks is the first `max_eval_samples` examples of the train stream (skipped by training). The labels follow
the same rules as unstreamed ones, checked batch by batch as they arrive, with the same messages
(`label_range.checked_stream`); against the student's class count also when it comes from `num_labels` (the trainer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import datasets

from .label_range import checked_stream
from .split_slices import base_split, check_disjoint_streams, sliced_stream

__all__ = ["check_streaming_steps", "load_image_streams", "refuse_stream_teacher_outputs"]


def load_image_streams(
    raw: datasets.IterableDatasetDict,
    data_args: Any,
    pick_columns: Callable[[datasets.Dataset, Any], tuple[str, str | None]],
    eval_splits: Sequence[str],
    seed: int = 0,
    shuffle_train: bool = True,
) -> datasets.IterableDatasetDict:
    """`{"train", "eval"}` streams with an `image` column and, unless label-free, a `label` column.

    `raw` is the dataset's streams; `data_args` a `data.DataArguments`; `pick_columns` chooses the image and label
    columns on a one-row `Dataset` of the train stream's head; `eval_splits` the eval split names tried in order;
    `shuffle_train`: the train stream shuffled (seeded, buffer 1000) for training, else in its rows' order.
    """
    train_base = base_split(data_args.train_split)
    if train_base not in raw:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {train_base!r}; it has {list(raw)}")
    train = raw[train_base]
    eval_name = data_args.eval_split or next((name for name in eval_splits if name in raw), None)
    if eval_name is not None and base_split(eval_name) not in raw:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {base_split(eval_name)!r}; it has {list(raw)}")
    check_disjoint_streams(data_args.train_split, eval_name)
    head = datasets.Dataset.from_list(list(train.take(1)), features=train.features)
    image_column, label_column = pick_columns(head, data_args)
    # Labels are checked in the split's own order (rows numbered as unstreamed), before any skip, take or shuffle.
    train = sliced_stream(
        _standard(train, image_column, label_column, data_args.train_split, data_args), data_args.train_split
    )
    if eval_name is not None:
        evaluation = _standard(raw[base_split(eval_name)], image_column, label_column, eval_name, data_args)
        evaluation = sliced_stream(evaluation, eval_name)
    elif data_args.max_eval_samples:
        evaluation = train.take(data_args.max_eval_samples)
        train = train.skip(data_args.max_eval_samples)
    else:
        raise ValueError(
            f"dataset {data_args.dataset!r} is streamed and has no eval split (it has {list(raw)}); a stream cannot "
            "be carved by validation_fraction: set --eval_split, or --max_eval_samples N to evaluate on the first N "
            "training examples (training then skips them)"
        )
    if data_args.max_eval_samples and eval_name is not None:
        evaluation = evaluation.take(data_args.max_eval_samples)
    if data_args.max_train_samples:
        train = train.take(data_args.max_train_samples)
    train = train.shuffle(seed=seed, buffer_size=1000) if shuffle_train else train
    return datasets.IterableDatasetDict(train=train, eval=evaluation)


def check_streaming_steps(max_steps: int) -> None:
    """A stream has no length, so the Trainer cannot count epochs: refuse a streamed run without `max_steps`."""
    if max_steps is None or max_steps <= 0:
        raise ValueError(
            f"streaming: max_steps={max_steps}, but a streamed dataset has no length, so num_train_epochs cannot "
            "be turned into steps; set --max_steps N (N > 0), or turn streaming off"
        )


def _standard(
    stream: datasets.IterableDataset, image_column: str, label_column: str | None, name: str, data_args: Any
) -> datasets.IterableDataset:
    """`image` (and `label`) columns only; labels checked batch by batch against the class names when known."""
    names = {image_column: "image", **({label_column: "label"} if label_column else {})}
    if isinstance((stream.features or {}).get(image_column), datasets.Image):
        # Bytes through every step: a stream's rename and map encode each example again, and a decoded JPEG is
        # then re-compressed (lossy, other pixels than the file's); the images are decoded once, by the transform.
        stream = stream.cast_column(image_column, datasets.Image(decode=False))
    stream = stream.select_columns(list(names))
    stream = stream.rename_columns({k: v for k, v in names.items() if k != v})
    if label_column is None:
        return stream
    feature = (stream.features or {}).get("label")
    num_classes = len(data_args.class_names) or (feature.num_classes if isinstance(feature, datasets.ClassLabel) else 0)
    return checked_stream(stream, name, num_classes or None)


def refuse_stream_teacher_outputs(args: object) -> None:
    """`cache_teacher_features` / `teacher_store` key teacher outputs by row index: a stream has none."""
    for option in ("cache_teacher_features", "teacher_store"):
        if getattr(args, option, False):
            raise ValueError(
                f"{option}=True with a streamed dataset: teacher outputs are stored by row index and a stream has "
                f"no indices; set --{option} false (teachers then run on every batch), or turn streaming off"
            )
