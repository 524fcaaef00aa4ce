"""Row ranges of a split (`train[10:30]`) as `datasets.load_dataset(split=...)` reads them: kept apart, or refused."""

import re

import datasets
import numpy as np
import pytest
from PIL import Image

from feed_hf.data.loading import DataArguments, load_image_splits


def _numbered_parquet(tmp_path, n=40):
    """Row i's image is filled with the value i, its label is one of three names (class 'a' only in rows < 5)."""
    images = [Image.fromarray(np.full((4, 4, 3), i, dtype=np.uint8)) for i in range(n)]
    labels = ["a" if i < 5 else ("b" if i % 2 else "c") for i in range(n)]
    split = datasets.Dataset.from_dict({"img": images, "name": labels}).cast_column("img", datasets.Image())
    split.to_parquet(str(tmp_path / "train.parquet"))
    split.select(range(8)).to_parquet(str(tmp_path / "test.parquet"))
    return tmp_path


def _row_numbers(split) -> list[int]:
    return [int(np.asarray(example["image"])[0, 0, 0]) for example in split]


def test_a_train_slice_trains_on_exactly_those_rows_with_the_whole_splits_classes(tmp_path):
    folder = _numbered_parquet(tmp_path)
    splits = load_image_splits(DataArguments(dataset=str(folder), label_column="name", train_split="train[10:30]"))
    assert sorted(_row_numbers(splits["train"])) == list(range(10, 30))
    assert _row_numbers(splits["eval"]) == list(range(8))  # the test split, whole
    # Class 'a' (rows 0-4) is outside the slice, yet the mapping is the whole split's: label ids do not shift.
    assert splits["train"].features["label"].names == ["a", "b", "c"]
    assert {splits["train"][i]["label"] for i in range(len(splits["train"]))} == {1, 2}


def test_percent_and_joined_slices_select_what_datasets_selects(tmp_path):
    folder = _numbered_parquet(tmp_path)
    data = DataArguments(dataset=str(folder), label_column="name", train_split="train[:10%]+train[-25%:]")
    assert sorted(_row_numbers(load_image_splits(data)["train"])) == [0, 1, 2, 3, *range(30, 40)]


def test_disjoint_train_and_eval_slices_of_one_split_are_accepted(tmp_path):
    folder = _numbered_parquet(tmp_path)
    data = DataArguments(dataset=str(folder), label_column="name", train_split="train[:30]", eval_split="train[30:]")
    splits = load_image_splits(data)
    assert sorted(_row_numbers(splits["train"])) == list(range(30))
    assert sorted(_row_numbers(splits["eval"])) == list(range(30, 40))


@pytest.mark.parametrize(
    ("train_split", "eval_split", "message"),
    [
        ("train[:30]", "train[25:]", "share 5 rows of 'train' (first: 25)"),
        ("train", "train", "share 40 rows"),
        ("train[abc]", "test", "is not a split name or a datasets slice"),
        ("train[:10]+test[:5]", "test", "reads from several splits ['test', 'train']"),
        ("train[50:60]", "test", "selects no rows of 'train' (40 rows)"),
        ("validation[:5]", "test", "has no split 'validation'"),
    ],
)
def test_slices_that_would_mislead_are_refused_in_one_line(tmp_path, train_split, eval_split, message):
    folder = _numbered_parquet(tmp_path)
    data = DataArguments(dataset=str(folder), label_column="name", train_split=train_split, eval_split=eval_split)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_image_splits(data)
    assert "\n" not in str(error.value)


def test_a_streamed_slice_reads_the_same_rows_as_the_unstreamed_one():
    settings = dict(dataset="digits", train_split="train[100:164]", eval_split="train[:32]", horizontal_flip=False)
    plain = load_image_splits(DataArguments(**settings))
    streamed = load_image_splits(DataArguments(**settings, streaming=True))
    plain_labels = sorted(example["label"] for example in plain["train"])
    assert sorted(example["label"] for example in streamed["train"]) == plain_labels
    assert len(list(streamed["train"])) == 64 and len(list(streamed["eval"])) == 32


@pytest.mark.parametrize(
    ("train_split", "eval_split", "message"),
    [
        ("train[:10%]", None, "a stream has no length"),
        ("train[:100]", "train[50:150]", "share rows of one stream from row 50"),
    ],
)
def test_stream_slices_a_stream_cannot_honour_are_refused(train_split, eval_split, message):
    data = DataArguments(dataset="digits", train_split=train_split, eval_split=eval_split, streaming=True)
    with pytest.raises(ValueError, match=message):
        load_image_splits(data)
