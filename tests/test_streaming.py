"""Streaming: IterableDataset training keeps label names, needs max_steps, and refuses the teacher caches."""

from __future__ import annotations

import json

import datasets
import pytest
from recipe_helpers import tiny_argv

from feed_hf.data import DataArguments, digits_dataset, load_image_splits
from feed_hf.pixel_values import run_class_names
from feed_hf.runs.commands import run_command
from feed_hf.training import build_trainer, train_model

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
