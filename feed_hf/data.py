"""Image-classification datasets for FEED runs: from the Hub, parquet/arrow, an imagefolder, or embedded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

__all__ = ["DataArguments", "load_image_splits"]

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
        default=None, metadata={"help": f"Label column. Default: the first of {_LABEL_COLUMNS} present."}
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str | None = field(
        default=None,
        metadata={
            "help": f"Split to evaluate on. Default: the first of {_EVAL_SPLITS} present, else carved from train."
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

    def __post_init__(self) -> None:
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or unset, got {value}")


def load_image_splits(data_args: DataArguments, seed: int = 0) -> datasets.DatasetDict:
    """`{"train", "eval"}` with exactly two columns: `image` (datasets.Image) and `label` (ClassLabel)."""
    raw = _load_raw(data_args)
    if data_args.train_split not in raw:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {data_args.train_split!r}; it has {list(raw)}")
    image_column, label_column = _pick_columns(raw[data_args.train_split], data_args)
    splits = {name: _standardise(split, image_column, label_column) for name, split in raw.items()}
    train = splits[data_args.train_split]
    eval_split = data_args.eval_split or next((name for name in _EVAL_SPLITS if name in splits), None)
    if data_args.eval_split and data_args.eval_split not in splits:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {data_args.eval_split!r}; it has {list(splits)}")
    if eval_split is None:
        carved = train.train_test_split(test_size=data_args.validation_fraction, seed=seed, stratify_by_column="label")
        train, evaluation = carved["train"], carved["test"]
    else:
        evaluation = splits[eval_split]
    result = datasets.DatasetDict(
        train=_subset(train, data_args.max_train_samples, seed),
        eval=_subset(evaluation, data_args.max_eval_samples, seed),
    )
    if len(result["train"]) == 0:
        raise ValueError(f"dataset {data_args.dataset!r}: the train split is empty")
    return result


def _load_raw(data_args: DataArguments) -> datasets.DatasetDict:
    source = data_args.dataset
    if source == "digits":
        return datasets.DatasetDict(train=digits_dataset())
    path = Path(source)
    if path.is_file():
        return _wrap(datasets.load_dataset(path.suffix.lstrip("."), data_files={"train": str(path)}))
    if path.is_dir():
        return _load_directory(path)
    if _looks_like_path(source):
        raise FileNotFoundError(f"dataset path {source!r} does not exist (nor is it a Hub id like 'ns/name')")
    return _wrap(datasets.load_dataset(source, data_args.dataset_config_name))


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or source.endswith((".parquet", ".arrow"))


def _load_directory(path: Path) -> datasets.DatasetDict:
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        return _wrap(datasets.load_from_disk(str(path)))
    for builder in ("parquet", "arrow"):
        data_files: dict[str, list[str]] = {}
        for file in sorted(path.glob(f"*.{builder}")):  # train.parquet, train-00000-of-00002.parquet, ...
            data_files.setdefault(file.stem.split("-")[0], []).append(str(file))
        if data_files:
            return _wrap(datasets.load_dataset(builder, data_files=data_files))
    return _wrap(datasets.load_dataset("imagefolder", data_dir=str(path)))


def _wrap(loaded: datasets.Dataset | datasets.DatasetDict) -> datasets.DatasetDict:
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)


def _pick_columns(split: datasets.Dataset, data_args: DataArguments) -> tuple[str, str]:
    columns = split.column_names
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
    return chosen[0], chosen[1]


def _standardise(split: datasets.Dataset, image_column: str, label_column: str) -> datasets.Dataset:
    split = split.select_columns([image_column, label_column])
    split = split.rename_columns({k: v for k, v in {image_column: "image", label_column: "label"}.items() if k != v})
    if not isinstance(split.features["image"], datasets.Image):
        split = split.cast_column("image", datasets.Image())
    if not isinstance(split.features["label"], datasets.ClassLabel):
        split = split.class_encode_column("label")
    return split


def _subset(split: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit)).flatten_indices()


def digits_dataset() -> datasets.Dataset:
    """scikit-learn's 1,797 handwritten digits (8×8 grayscale, 10 classes) as an `image`/`label` Dataset."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 intensities → 0..255
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=[str(d) for d in range(10)]))
    return datasets.Dataset.from_dict(
        {"image": [image for image in pixels], "label": digits.target.tolist()}, features=features
    )
