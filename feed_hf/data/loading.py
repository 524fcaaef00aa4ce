"""Image-classification datasets for FEED runs: from the Hub, parquet/arrow, an imagefolder, or embedded."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
import numpy as np

from .images import undecodable_rows
from .labels import apply_label_mapping, build_label_mapping, unseen_in_train
from .split_slices import base_split, check_disjoint, select_rows
from .streams import load_image_streams

__all__ = ["DataArguments", "UndecodableImagePolicy", "is_label_free", "load_image_splits"]

logger = logging.getLogger(__name__)
UndecodableImagePolicy = Literal["error", "skip"]
_ROWS_SHOWN = 5  # how many row indices a message lists

EMBEDDED_DATASETS = ("digits",)
_IMAGE_COLUMNS = ("image", "img", "pixel_values", "jpg", "png")
_LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target")
_EVAL_SPLITS = ("test", "validation", "valid", "val")


@dataclass
class DataArguments:
    """Where the images come from and which columns hold them."""

    dataset: str = field(
        default="digits",
        metadata={
            "help": "'digits' (scikit-learn's 8×8 digits, offline), a Hub dataset id (e.g. uoft-cs/cifar100), "
            "a .parquet/.arrow file, a folder of parquet files (train.parquet, test.parquet), a save_to_disk "
            "folder, or an imagefolder directory."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    image_column: str | None = field(
        default=None, metadata={"help": f"Image column. Default: the first of {_IMAGE_COLUMNS} present."}
    )
    label_column: str | None = field(
        default=None,
        metadata={
            "help": f"Label column. Default: the first of {_LABEL_COLUMNS} present; with none present, or 'none', "
            "the run is label-free (loss Σβ·FEED alone, student exported as a backbone)."
        },
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on, or rows of it: 'train[:5000]'."})
    eval_split: str | None = field(
        default=None,
        metadata={
            "help": f"Split to evaluate on (a slice as for train_split; rows shared with train_split are refused). "
            f"Default: the first of {_EVAL_SPLITS} present, else carved from train."
        },
    )
    validation_fraction: float = field(
        default=0.2, metadata={"help": "Share of train carved out (stratified) when there is no eval split."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use a seeded subset of train."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use a seeded subset of the eval split."})
    augmentation: bool = field(
        default=True,
        metadata={
            "help": "Random crop (+ flip) in training. Off: training images get the eval transform "
            "(what cache_teacher_features needs)."
        },
    )
    horizontal_flip: bool = field(
        default=True, metadata={"help": "Random horizontal flips in training (turn off for digits and text)."}
    )

    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the dataset (datasets' IterableDataset) instead of downloading it: needs max_steps; "
            "no decode pre-check over the whole split (a bad image fails at its step); without an eval split, "
            "max_eval_samples images are taken from the head of the train stream; labels must be a ClassLabel, "
            "or set num_labels / class_names."
        },
    )
    class_names: list[str] = field(
        default_factory=list,
        metadata={"help": "Class names in label-index order, for a stream whose labels are plain integers."},
    )
    undecodable_images: UndecodableImagePolicy = field(
        default="error",
        metadata={
            "help": "What to do with images that cannot be decoded (empty, truncated, not an image), found by "
            "decoding every image once before training: 'error' stops naming the rows; 'skip' drops them and "
            "logs how many."
        },
    )

    def __post_init__(self) -> None:
        if self.undecodable_images not in ("error", "skip"):
            raise ValueError(f"undecodable_images must be 'error' or 'skip', got {self.undecodable_images!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or unset, got {value}")


def load_image_splits(
    data_args: DataArguments, seed: int = 0, shuffle_stream: bool = True
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """`{"train", "eval"}` with exactly two columns: `image` (datasets.Image) and `label` (ClassLabel).

    Without a label column, `image` only (label-free). Streamed: train shuffled unless `shuffle_stream=False`.

    One label mapping, built from the whole train split (see feed_hf.data.labels), is applied to every split before
    any subset or carving, so max_train_samples never changes it. Then the eval split is carved (when the data
    has none) and the subsets taken, and only then is every image that the run will use checked to decode
    (`undecodable_images`): never the images a subset throws away. With "skip", a subset is topped up from the
    same seeded order, and the returned DatasetDict's `skipped_images` attribute holds `{split name: rows dropped}`.
    Under several processes (a FeedConfig made accelerate's state) the main process of each node goes first and
    the others read its decode check back from the `datasets` cache (`accelerate`'s `local_main_process_first`).
    """
    if data_args.streaming:
        raw = _load_raw(data_args, streaming=True)
        return load_image_streams(raw, data_args, _pick_columns, _EVAL_SPLITS, seed, shuffle_stream)
    with _main_process_first():
        return _load_checked_splits(data_args, seed)


def _main_process_first() -> contextlib.AbstractContextManager:
    """accelerate's `local_main_process_first` in a run of several processes (a FeedConfig made the state), else
    nothing: the main process loads and decode-checks, the others then read both from the `datasets` cache."""
    from accelerate import PartialState

    if PartialState._shared_state and PartialState().num_processes > 1:
        return PartialState().local_main_process_first()
    return contextlib.nullcontext()


def _load_checked_splits(data_args: DataArguments, seed: int) -> datasets.DatasetDict:
    raw = _load_raw(data_args)
    train_base = base_split(data_args.train_split)
    if train_base not in raw:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {train_base!r}; it has {list(raw)}")
    eval_name = _eval_split_name(raw, data_args)
    check_disjoint(data_args.train_split, eval_name, len(raw[train_base]))
    image_column, label_column = _pick_columns(raw[train_base], data_args)
    used = {name: raw[base_split(name)] for name in (data_args.train_split, eval_name) if name is not None}
    splits = {name: _standardise(split, image_column, label_column) for name, split in used.items()}
    if label_column is not None:  # one mapping from the whole train split, then the rows a slice names
        splits = _with_one_label_mapping(splits, data_args, eval_name)
    splits = {name: select_rows(split, name) for name, split in splits.items()}
    train = splits[data_args.train_split]
    if eval_name is None:
        train, evaluation = _carve(train, data_args, seed, stratify=label_column is not None)
    else:
        evaluation = splits[eval_name]
    skipped: dict[str, int] = {}
    train = _decodable_subset(train, data_args.train_split, data_args.max_train_samples, seed, data_args, skipped)
    evaluation = _decodable_subset(evaluation, eval_name, data_args.max_eval_samples, seed, data_args, skipped)
    result = datasets.DatasetDict(train=train, eval=evaluation)
    result.skipped_images = skipped
    return result


def _carve(
    train: datasets.Dataset, data_args: DataArguments, seed: int, stratify: bool
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The train split without, and with, its held-out `validation_fraction` (stratified by label when labelled)."""
    try:
        carved = train.train_test_split(
            test_size=data_args.validation_fraction, seed=seed, stratify_by_column="label" if stratify else None
        )
    except ValueError as error:  # too few images (per class) for the fraction
        raise ValueError(
            f"dataset {data_args.dataset!r} has no eval split and its {len(train)} training images cannot give a "
            f"held-out part of validation_fraction={data_args.validation_fraction} ({error}); give an eval split "
            "(--eval_split), or a validation_fraction that leaves every class an image on both sides"
        ) from None
    return carved["train"], carved["test"]


def _eval_split_name(raw: datasets.DatasetDict, data_args: DataArguments) -> str | None:
    if data_args.eval_split and base_split(data_args.eval_split) not in raw:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {data_args.eval_split!r}; it has {list(raw)}")
    return data_args.eval_split or next((name for name in _EVAL_SPLITS if name in raw), None)


def _decodable_subset(
    split: datasets.Dataset,
    name: str | None,
    limit: int | None,
    seed: int,
    data_args: DataArguments,
    skipped: dict[str, int],
) -> datasets.Dataset:
    """The first `limit` rows of `split` in its seeded order (all rows without a limit) whose images decode.

    Only those rows are decoded; with "skip", undecodable ones are replaced by the next rows of the same order.
    `name` is the split's name in messages (None: the eval part carved from train); `skipped` gets the count.
    """
    label = name or f"held-out part of {data_args.train_split}"
    if len(split) == 0:
        raise ValueError(
            f"dataset {data_args.dataset!r}: the {'train' if name == data_args.train_split else 'eval'} split "
            f"{label!r} is empty; choose a split with images (--train_split, --eval_split) or a larger "
            "validation_fraction"
        )
    order = np.arange(len(split)) if limit is None or limit >= len(split) else _permutation(len(split), seed)
    wanted, kept, bad = min(limit or len(split), len(split)), [], []
    while len(kept) < wanted and len(kept) + len(bad) < len(order):
        chunk = order[len(kept) + len(bad) : len(bad) + wanted]
        failing = set(undecodable_rows(split.select(chunk)))
        bad += [int(chunk[i]) for i in sorted(failing)]
        kept += [int(row) for i, row in enumerate(chunk) if i not in failing]
        if bad and data_args.undecodable_images == "error":
            raise ValueError(
                f"dataset {data_args.dataset!r}: split {label!r} has {len(bad)} image(s) that cannot be decoded "
                f"(empty, truncated or not an image): rows {_first_rows(bad)}; fix or remove them, or set "
                "--undecodable_images skip to train without them"
            )
    if bad:
        logger.warning("split %r: skipping %d undecodable image(s), rows %s", label, len(bad), _first_rows(bad))
    skipped[name or "held-out"] = len(bad)
    if len(kept) == len(split):
        return split  # every row, in its own order: no copy
    return split.select(kept).flatten_indices()


def _permutation(count: int, seed: int) -> np.ndarray:
    """The order `Dataset.shuffle(seed=seed)` gives, so a subset is the one earlier versions took."""
    return np.random.default_rng(seed).permutation(count)


def _first_rows(rows: list[int]) -> str:
    return f"{rows[:_ROWS_SHOWN]}"[:-1] + (", …]" if len(rows) > _ROWS_SHOWN else "]")


def _with_one_label_mapping(
    splits: dict[str, datasets.Dataset], data_args: DataArguments, eval_name: str | None
) -> dict[str, datasets.Dataset]:
    train_name = data_args.train_split
    if len(splits[train_name]) == 0:
        raise ValueError(f"dataset {data_args.dataset!r}: the train split {train_name!r} is empty")
    mapping = build_label_mapping(splits[train_name], train_name)
    mapped = {name: apply_label_mapping(split, mapping, name) for name, split in splits.items()}
    unseen = unseen_in_train(mapped[train_name], mapped[eval_name]) if eval_name else []
    if unseen:
        logger.warning("split %r has classes with no training example: %s", eval_name, unseen[:_ROWS_SHOWN])
    return mapped


def _load_raw(data_args: DataArguments, streaming: bool = False) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Every documented `--dataset` form, as splits or, with `streaming`, as streams of the same builders."""
    source = data_args.dataset
    if source == "digits":
        digits = digits_dataset()
        return (
            datasets.IterableDatasetDict(train=digits.to_iterable_dataset())
            if streaming
            else datasets.DatasetDict(train=digits)
        )
    path = Path(source)
    if path.is_file():
        builder, files = path.suffix.lstrip("."), {"train": str(path)}
        return _wrap(datasets.load_dataset(builder, data_files=files, streaming=streaming))
    if path.is_dir():
        return _load_directory(path, streaming)
    if _looks_like_path(source):
        raise FileNotFoundError(f"dataset path {source!r} does not exist (nor is it a Hub id like 'ns/name')")
    return _wrap(datasets.load_dataset(source, data_args.dataset_config_name, streaming=streaming))


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or source.endswith((".parquet", ".arrow"))


def _load_directory(path: Path, streaming: bool = False) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """A save_to_disk folder, a folder of parquet/arrow files (one split per file stem), or an imagefolder."""
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        saved = _wrap(datasets.load_from_disk(str(path)))
        if not streaming:
            return saved
        return datasets.IterableDatasetDict({name: split.to_iterable_dataset() for name, split in saved.items()})
    for builder in ("parquet", "arrow"):
        data_files: dict[str, list[str]] = {}
        for file in sorted(path.glob(f"*.{builder}")):  # train.parquet, train-00000-of-00002.parquet, ...
            data_files.setdefault(file.stem.split("-")[0], []).append(str(file))
        if data_files:
            # One split at a time: loaded together, every split is cast to the first file's features, so a
            # test file's ClassLabel of another order is silently renumbered, or other label types fail.
            kind = datasets.IterableDatasetDict if streaming else datasets.DatasetDict
            return kind(
                {split: _load_files(path, builder, split, files, streaming) for split, files in data_files.items()}
            )
    return _without_split_name_labels(datasets.load_dataset("imagefolder", data_dir=str(path), streaming=streaming))


def _load_files(
    folder: Path, builder: str, split: str, files: list[str], streaming: bool
) -> datasets.Dataset | datasets.IterableDataset:
    try:
        return datasets.load_dataset(builder, data_files={split: files}, split=split, streaming=streaming)
    except ValueError as error:  # datasets: 'Instruction "test" corresponds to no data!'
        if "corresponds to no data" not in str(error):
            raise
        raise ValueError(
            f"dataset {str(folder)!r}: the {'eval' if split in _EVAL_SPLITS else ''} split {split!r} is empty "
            f"({', '.join(Path(file).name for file in files)} hold no rows); choose a split with images, or remove "
            "the empty files"
        ) from None


def _without_split_name_labels(
    loaded: datasets.DatasetDict | datasets.IterableDatasetDict,
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """An imagefolder without class folders (images right inside train/, test/) as label-free splits.

    `datasets` names such a folder's classes after its split folders and leaves every label None; those are not
    classes, so the label column is dropped and the run is label-free, streamed or not.
    """
    feature = (next(iter(loaded.values())).features or {}).get("label")
    if isinstance(feature, datasets.ClassLabel) and set(feature.names) <= set(loaded):
        logger.warning("imagefolder without class folders (only split folders %s): no labels", sorted(loaded))
        return loaded.remove_columns("label")
    return loaded


def _wrap(loaded):  # noqa: ANN001, ANN202 (a split or splits, streamed or not)
    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return loaded
    if isinstance(loaded, datasets.IterableDataset):
        return datasets.IterableDatasetDict(train=loaded)
    return datasets.DatasetDict(train=loaded)


def _pick_columns(split: datasets.Dataset, data_args: DataArguments) -> tuple[str, str | None]:
    columns = split.column_names
    if (data_args.label_column is None and not any(c in columns for c in _LABEL_COLUMNS)) or is_label_free(data_args):
        why = "label_column is 'none'" if is_label_free(data_args) else f"no label column among {columns}"
        logger.warning("dataset %r: %s: label-free FEED (loss Σβ·FEED alone)", data_args.dataset, why)
        return _pick_image_column(columns, data_args), None
    chosen = []
    for requested, candidates, kind in (
        (data_args.image_column, _IMAGE_COLUMNS, "image"),
        (data_args.label_column, _LABEL_COLUMNS, "label"),
    ):
        column = requested or next((c for c in candidates if c in columns), None)
        if column is None or column not in columns:
            raise ValueError(
                f"dataset {data_args.dataset!r} has no {kind} column {requested or candidates!r}; its columns are "
                f"{columns}. Set --{kind}_column to one of them."
            )
        chosen.append(column)
    if chosen[0] == chosen[1]:
        raise ValueError(
            f"dataset {data_args.dataset!r}: image_column and label_column are both {chosen[0]!r}; one column cannot "
            f"hold the images and the labels. Set --label_column to the label column (its columns are {columns}), "
            "or 'none' for a label-free run"
        )
    return chosen[0], chosen[1]


def is_label_free(data_args: DataArguments) -> bool:
    """Whether `label_column` asks for a label-free run ('none')."""
    return data_args.label_column is not None and data_args.label_column.lower() == "none"


def _pick_image_column(columns: list[str], data_args: DataArguments) -> str:
    column = data_args.image_column or next((c for c in _IMAGE_COLUMNS if c in columns), None)
    if column is None or column not in columns:
        raise ValueError(
            f"dataset {data_args.dataset!r} has no image column {column or _IMAGE_COLUMNS!r}; its columns are "
            f"{columns}. Set --image_column to one of them."
        )
    return column


def _standardise(split: datasets.Dataset, image_column: str, label_column: str | None) -> datasets.Dataset:
    split = split.select_columns([image_column, *([label_column] if label_column else [])])
    names = {image_column: "image", **({label_column: "label"} if label_column else {})}
    split = split.rename_columns({k: v for k, v in names.items() if k != v})
    if not isinstance(split.features["image"], datasets.Image):
        split = split.cast_column("image", datasets.Image())
    return split  # labels become ClassLabel through the run's one mapping (feed_hf.data.labels)


def digits_dataset() -> datasets.Dataset:
    """scikit-learn's 1,797 handwritten digits (8×8 grayscale, 10 classes) as an `image`/`label` Dataset."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 intensities → 0..255
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=[str(d) for d in range(10)]))
    return datasets.Dataset.from_dict(
        {"image": [image for image in pixels], "label": digits.target.tolist()}, features=features
    )
