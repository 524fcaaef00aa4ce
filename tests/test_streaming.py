"""Streaming: IterableDataset training keeps label names, needs max_steps, and refuses the teacher caches."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datasets
import pytest
import timm
from PIL import Image
from recipe_helpers import tiny_argv
from timm.models import save_for_hf

from feed_hf.data.loading import DataArguments, digits_dataset, load_image_splits
from feed_hf.data.pixel_values import run_class_names
from feed_hf.training.train_model import build_trainer, train_model
from feed_hf_cli import run_command

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _stream_data(**overrides) -> DataArguments:
    settings = dict(dataset="digits", streaming=True, max_train_samples=64, max_eval_samples=32, horizontal_flip=False)
    return DataArguments(**{**settings, **overrides})


def test_streamed_training_keeps_the_label_names(feed_config_factory, tmp_path):
    args = feed_config_factory(tmp_path / "run", num_labels=None, input_size=16, max_steps=2)
    splits = load_image_splits(_stream_data())
    assert type(splits["train"]).__name__ == "IterableDataset"
    train_model(_stream_data(), args, splits=splits)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["label_names"] == [str(digit) for digit in range(10)]


def test_stream_of_plain_integers_takes_num_labels_or_class_names():
    stream = digits_dataset().cast_column("label", datasets.Value("int64")).to_iterable_dataset()
    with pytest.raises(ValueError, match="set num_labels .* or class_names"):
        run_class_names(stream, None, [])
    assert run_class_names(stream, 3, []) == ["0", "1", "2"]
    assert run_class_names(stream, None, ["a", "b"]) == ["a", "b"]


def test_streaming_needs_max_steps(feed_config_factory, tmp_path):
    args = feed_config_factory(tmp_path / "run", num_labels=None, input_size=16, max_steps=-1, num_train_epochs=1)
    with pytest.raises(ValueError, match="streaming: max_steps=-1, .*set --max_steps"):
        build_trainer(_stream_data(), args, load_image_splits(_stream_data()))


@pytest.mark.parametrize("option", ["cache_teacher_features", "teacher_store"])
def test_teacher_caches_refuse_streams(feed_config_factory, tmp_path, option):
    args = feed_config_factory(tmp_path / "run", num_labels=None, input_size=16, **{option: True})
    with pytest.raises(ValueError, match=f"{option}=True with a streamed dataset"):
        build_trainer(_stream_data(augmentation=False), args, load_image_splits(_stream_data()))


def test_stream_without_eval_split_needs_max_eval_samples():
    with pytest.raises(ValueError, match="no eval split .*--max_eval_samples"):
        load_image_splits(_stream_data(max_eval_samples=None))


def test_cli_streams_with_max_steps(tmp_path):
    argv = tiny_argv(tmp_path / "run", "--baseline", "ce", "--streaming", "true", "--max_steps", "2")
    run_command("baselines", argv)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["label_names"] == [str(digit) for digit in range(10)]


# ---- every documented --dataset form streams as it loads, labels checked with the same messages (issue 18, item 3)


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _images(labels, feature=None) -> datasets.Dataset:
    features = datasets.Features(image=datasets.Image(), label=feature or datasets.ClassLabel(names=["a", "b", "c"]))
    images = [{"bytes": _png(i * 9), "path": None} for i in range(len(labels))]
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def _imagefolder(root: Path, classes: bool) -> Path:
    for split, count in (("train", 6), ("test", 3)):
        for index in range(count):
            folder = root / split / (f"class{index % 2}" if classes else "")
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (index * 20, 0, 0)).save(folder / f"{index}.png")
    return root


def _forms(root: Path) -> dict[str, str]:
    train, test = _images([0, 1, 2] * 5), _images([2, 1, 0])
    (root / "parquet_folder").mkdir(), (root / "arrow_folder").mkdir()
    train.to_parquet(str(root / "train.parquet"))
    train.to_parquet(str(root / "parquet_folder" / "train.parquet"))
    test.to_parquet(str(root / "parquet_folder" / "test.parquet"))
    datasets.DatasetDict(train=train, test=test).save_to_disk(str(root / "saved"))
    for name in ("train", "test"):  # a folder of .arrow files, one per split
        shutil.copy(next((root / "saved" / name).glob("*.arrow")), root / "arrow_folder" / f"{name}.arrow")
    return {
        "digits": "digits",
        "a .parquet file": str(root / "train.parquet"),
        "an .arrow file": str(root / "arrow_folder" / "train.arrow"),
        "a folder of parquet files": str(root / "parquet_folder"),
        "a folder of arrow files": str(root / "arrow_folder"),
        "a save_to_disk folder": str(root / "saved"),
        "an imagefolder": str(_imagefolder(root / "classes", classes=True)),
        "an imagefolder without class folders": str(_imagefolder(root / "no_classes", classes=False)),
    }


def test_every_documented_dataset_form_streams_as_it_loads(tmp_path):
    """Same columns, class names and labels streamed or not (the Hub form is the same builders, by id)."""
    for form, source in _forms(tmp_path).items():
        settings = dict(dataset=source, max_eval_samples=None if form == "digits" else 3, horizontal_flip=False)
        loaded = load_image_splits(DataArguments(**settings, validation_fraction=0.2))
        streamed = load_image_splits(DataArguments(**{**settings, "max_eval_samples": 3}, streaming=True))
        assert streamed["train"].column_names == loaded["train"].column_names, form
        if "label" not in loaded["train"].column_names:
            assert form == "an imagefolder without class folders" and list(streamed["train"]) != []
            continue
        assert streamed["train"].features["label"].names == loaded["train"].features["label"].names, form
        labels = sorted(row["label"] for split in ("train", "eval") for row in streamed[split])
        expected = [label for split in ("train", "eval") for label in loaded[split]["label"]]
        if form not in ("digits", "a .parquet file", "an .arrow file"):  # an eval split of its own, 3 of it used
            assert labels == sorted(expected), form
        else:  # the carved eval part differs from the stream's head; every image is there once
            assert len(labels) == (1797 if form == "digits" else 15), form


BAD_LABELS = {
    "negative": ([0, -1, 1, -1], datasets.Value("int64")),
    "missing": ([0, None, 1, 2], datasets.Value("int64")),
    "fractional": ([0.0, 0.5, 1.0, 2.0], datasets.Value("float64")),
    "boolean": ([True, False, True, True], datasets.Value("bool")),
    "ClassLabel -1": ([0, -1, 1, 2], None),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_streamed_labels_get_the_unstreamed_message_as_their_batch_arrives(tmp_path, case):
    labels, feature = BAD_LABELS[case]
    _images(labels, feature).to_parquet(str(tmp_path / "train.parquet"))
    _images([0, 1, 2]).to_parquet(str(tmp_path / "test.parquet"))
    settings = dict(dataset=str(tmp_path), class_names=["a", "b", "c"])
    with pytest.raises(ValueError) as unstreamed:
        load_image_splits(DataArguments(**settings))
    stream = load_image_splits(DataArguments(**settings, streaming=True))["train"]
    with pytest.raises(ValueError) as streamed:
        list(stream)
    assert str(streamed.value).replace("rows [1]", "rows [_]") == str(unstreamed.value).replace("rows [1]", "rows [_]")


def test_a_stream_label_beyond_its_class_names_is_refused_as_it_arrives(tmp_path):
    _images([0, 1, 5], datasets.Value("int64")).to_parquet(str(tmp_path / "train.parquet"))
    _images([0, 1, 2]).to_parquet(str(tmp_path / "test.parquet"))
    stream = load_image_splits(DataArguments(dataset=str(tmp_path), class_names=["a", "b"], streaming=True))
    with pytest.raises(ValueError, match=r"split 'train' has labels outside the student's 2 classes: \[5\]"):
        list(stream["train"])


def test_an_imagefolder_without_class_folders_trains_label_free_from_the_cli(tmp_path):
    folder = _imagefolder(tmp_path / "images", classes=False)
    teacher = tmp_path / "teacher"
    save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), teacher, safe_serialization=True)
    argv = ["--dataset", str(folder), "--teachers", str(teacher), "--max_steps", "1"]
    for streaming in ("false", "true"):
        run = tmp_path / f"run_{streaming}"
        run_command("parallel", tiny_argv(run, *argv, "--streaming", streaming))
        assert timm.create_model(f"local-dir:{run}", pretrained=True).num_classes == 0  # a backbone


def _jpeg_parquet_dataset(folder: Path) -> Path:
    """train/test parquet files holding JPEG bytes, as CIFAR-10-style Hub datasets ship (noisy images: a
    re-compression would move their pixels)."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for split, count in (("train", 24), ("test", 8)):
        images, labels = [], []
        for index in range(count):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=95)
            images.append({"bytes": buffer.getvalue(), "path": None})
            labels.append(index % 2)
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
        datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(
            folder / f"{split}.parquet"
        )
    return folder


def test_a_stream_feeds_the_files_pixels_not_a_recompressed_copy(tmp_path):
    """A stream's rename/map encodes every example again: a decoded JPEG was re-saved (lossy) on the way, so a
    streamed run trained and evaluated on other pixels than the same rows unstreamed. Now they are identical."""
    import numpy as np

    from feed_hf.data.images import decode_image

    folder = _jpeg_parquet_dataset(tmp_path / "jpegs")
    settings = dict(dataset=str(folder), train_split="train[:16]", eval_split="test")
    in_memory = load_image_splits(DataArguments(**settings), seed=0)
    streamed = load_image_splits(DataArguments(**settings, streaming=True), seed=0)
    for name in ("train", "eval"):
        expected = sorted(np.asarray(decode_image(row["image"])).tobytes() for row in in_memory[name])
        seen = sorted(np.asarray(decode_image(row["image"])).tobytes() for row in streamed[name])
        assert seen == expected, name


def test_evaluate_gives_the_same_numbers_streamed_or_not(tmp_path):
    """`feed-hf evaluate --streaming true` (top-1, and k-NN/linear probes) read the same rows in the same order as
    unstreamed, so every number is the same; it used to fail on a stream (no with_transform, no split["label"])."""
    import torch

    torch.manual_seed(0)
    save_for_hf(timm.create_model("resnet8_cifar", num_classes=2), tmp_path / "model", safe_serialization=True)
    folder = _jpeg_parquet_dataset(tmp_path / "jpegs")
    rows = ["--dataset", str(folder), "--train_split", "train[:16]", "--eval_split", "train[16:24]", "--seed", "0"]
    for protocol in (["top1"], ["knn", "linear"]):
        argv = ["--model", str(tmp_path / "model"), "--protocol", *protocol, *rows, "--split", "eval", "--knn_k", "4"]
        unstreamed = run_command("evaluate", argv)
        streamed = run_command("evaluate", [*argv, "--streaming", "true"])
        assert streamed == unstreamed, protocol
