"""One label mapping for the whole run: every eval row keeps the class the user wrote, whatever each file holds."""

import io
import logging

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from feed_hf.data.loading import DataArguments, load_image_splits


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (shade % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_split(folder, split: str, labels: list) -> None:
    """A parquet file as pandas/pyarrow users write it: PNG bytes and a plain label column, no HF metadata."""
    images = pa.array([{"bytes": _png(i), "path": None} for i in range(len(labels))])
    pq.write_table(pa.table({"image": images, "label": pa.array(labels)}), folder / f"{split}.parquet")


def _loaded(folder, **kwargs) -> datasets.DatasetDict:
    return load_image_splits(DataArguments(dataset=str(folder), **kwargs))


def _as_written(split: datasets.Dataset) -> list[str]:
    names = split.features["label"].names
    return [names[i] for i in split["label"]]


def test_a_test_split_missing_a_class_keeps_every_label(tmp_path):
    _write_split(tmp_path, "train", ["ant", "bee", "cat", "dog"] * 3)
    test_labels = ["ant", "cat", "dog", "dog", "cat"]  # no "bee": per-split encoding shifted cat→1, dog→2
    _write_split(tmp_path, "test", test_labels)
    splits = _loaded(tmp_path)
    assert splits["train"].features["label"].names == ["ant", "bee", "cat", "dog"]
    assert splits["eval"].features["label"] == splits["train"].features["label"]
    assert _as_written(splits["eval"]) == test_labels
    assert splits["eval"]["label"] == [0, 2, 3, 3, 2]


def test_integer_labels_are_their_own_class_index(tmp_path):
    _write_split(tmp_path, "train", list(range(12)) * 2)
    _write_split(tmp_path, "test", [11, 2, 10, 0])
    splits = _loaded(tmp_path, max_train_samples=3)  # a subset never changes the mapping
    assert splits["train"].features["label"].names == [str(i) for i in range(12)]
    assert splits["eval"]["label"] == [11, 2, 10, 0]  # not 0, 1, 10, 11, 2, … string order


def test_integer_labels_with_a_gap_keep_their_index(tmp_path):
    _write_split(tmp_path, "train", [0, 3, 5, 5])
    _write_split(tmp_path, "test", [5, 0])
    splits = _loaded(tmp_path)
    assert splits["train"].features["label"].names == ["0", "1", "2", "3", "4", "5"]
    assert splits["eval"]["label"] == [5, 0]


def test_whole_number_floats_count_as_integers(tmp_path):
    _write_split(tmp_path, "train", [0.0, 1.0, 2.0, 10.0])
    _write_split(tmp_path, "test", [10.0, 2.0])
    assert _loaded(tmp_path)["eval"]["label"] == [10, 2]


def test_numeric_class_names_sort_by_value(tmp_path):
    _write_split(tmp_path, "train", ["10", "2", "1", "10"])
    _write_split(tmp_path, "test", ["2", "10", "1"])
    splits = _loaded(tmp_path)
    assert splits["train"].features["label"].names == ["1", "2", "10"]
    assert _as_written(splits["eval"]) == ["2", "10", "1"]


def test_eval_classlabel_of_another_order_is_remapped_by_name(tmp_path):
    image = datasets.Image()
    train = datasets.Features(image=image, label=datasets.ClassLabel(names=["cat", "dog", "emu"]))
    test = datasets.Features(image=image, label=datasets.ClassLabel(names=["emu", "cat", "dog"]))
    pngs = [{"bytes": _png(i), "path": None} for i in range(6)]
    datasets.Dataset.from_dict({"image": pngs, "label": [0, 1, 2, 0, 1, 2]}, features=train).to_parquet(
        str(tmp_path / "train.parquet")
    )
    datasets.Dataset.from_dict({"image": pngs[:3], "label": [0, 1, 2]}, features=test).to_parquet(
        str(tmp_path / "test.parquet")
    )
    splits = _loaded(tmp_path)
    assert splits["eval"].features["label"].names == ["cat", "dog", "emu"]
    assert _as_written(splits["eval"]) == ["emu", "cat", "dog"]


def test_carved_eval_split_uses_the_same_mapping(tmp_path):
    _write_split(tmp_path, "train", [str(label) for label in [1, 2, 10] * 10])
    splits = load_image_splits(DataArguments(dataset=str(tmp_path / "train.parquet"), validation_fraction=0.3))
    assert splits["eval"].features["label"].names == ["1", "2", "10"]
    assert sorted(set(_as_written(splits["eval"]))) == ["1", "10", "2"]


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (
            ["ant", "bee"],
            ["bee", "cow", "cow"],
            r"split 'test' has labels that the train split has no class for: \['cow'\] \(2 rows\)",
        ),
        (
            [0, 1, 2],
            [1, 3],
            r"split 'test' has labels that the train split has no class for: \[3\] \(1 rows\).*--eval_split",
        ),
        ([0, -1, 1, -1], [0], r"split 'train' has negative integer labels: \[-1\] \(2 rows\)"),
        ([0.0, 0.5, 1.0], [0.0], r"split 'train' has non-integer float labels: \[0\.5\] \(1 rows\)"),
        (["a", None, "b"], ["a"], r"split 'train' has 1 rows without a label \(None, NaN or -1\): rows \[1\]"),
        ([0.0, 1.0], [1.0, float("nan")], r"split 'test' has 1 rows without a label .*rows \[1\]"),
        ([True, False], [True], r"split 'train' has boolean labels; convert them"),
        ([0, 1], ["0", "1"], r"train split has integer labels, split 'test' has string labels; give every split"),
        ([[0], [1]], [[0]], r"split 'train' has labels of type list<item: int64>.*--label_column"),
    ],
    ids=["absent-name", "absent-integer", "negative", "fraction", "none", "nan", "bool", "mixed-types", "list"],
)
def test_bad_labels_fail_before_training_naming_split_values_and_fix(tmp_path, train, test, message):
    _write_split(tmp_path, "train", train)
    _write_split(tmp_path, "test", test)
    with pytest.raises(ValueError, match=message):
        _loaded(tmp_path)


def test_classlabel_minus_one_is_a_missing_label(tmp_path):
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"]))
    pngs = [{"bytes": _png(i), "path": None} for i in range(3)]
    datasets.Dataset.from_dict({"image": pngs, "label": [0, 1, 0]}, features=features).to_parquet(
        str(tmp_path / "train.parquet")
    )
    datasets.Dataset.from_dict({"image": pngs, "label": [-1, -1, -1]}, features=features).to_parquet(
        str(tmp_path / "test.parquet")
    )
    with pytest.raises(ValueError, match=r"split 'test' has 3 rows without a label .*rows \[0, 1, 2\]"):
        _loaded(tmp_path)


def test_eval_class_without_training_examples_is_kept_and_warned_about(tmp_path, caplog):
    _write_split(tmp_path, "train", [0, 2, 2])
    _write_split(tmp_path, "test", [1, 2])
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.loading"):
        splits = _loaded(tmp_path)
    assert splits["eval"]["label"] == [1, 2]  # the student has an output for class 1; it never saw one
    assert "split 'test' has classes with no training example: ['1']" in caplog.text
