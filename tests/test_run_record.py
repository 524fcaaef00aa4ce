"""Sequential FEED from the Python API, each generation recorded by its trainer the same way as any run."""

import json

from conftest import make_feed_config
from huggingface_hub import ModelCard

import feed_hf


def test_run_sequential_is_public_and_each_generation_has_the_trainers_record(tmp_path):
    assert {"run_sequential", "SequentialArguments", "DataArguments"} <= set(feed_hf.__all__)
    data_args = feed_hf.DataArguments(
        dataset="digits", max_train_samples=64, max_eval_samples=32, horizontal_flip=False
    )
    args = make_feed_config(tmp_path, num_labels=None, input_size=16, max_steps=2, per_device_train_batch_size=32)
    generations = feed_hf.run_sequential(
        data_args, args, num_generations=feed_hf.SequentialArguments(2).num_generations
    )
    assert [g["generation"] for g in generations] == [1, 2]
    for generation in (1, 2):
        folder = tmp_path / f"generation_{generation}"
        record = json.loads((folder / "results.json").read_text())
        assert record["task"] == f"sfeed_generation_{generation}" and record["hyperparameters"]["training_steps"] == 2
        assert record["data"]["eval_split"] == "held-out part of train" and record["data"]["num_train"] == 64
        assert record["metrics"]["eval_top1"] == generations[generation - 1]["top1"]
        card = ModelCard.load(folder / "README.md")
        assert card.data.eval_results[0].dataset_split == "held-out part of train"
        assert ("knowledge-distillation" in card.data.tags) == (generation == 2)
        assert "### Training results" in card.text and "sequential-feed" in card.data.tags
