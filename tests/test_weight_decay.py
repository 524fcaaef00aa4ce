"""Which parameters weight decay reaches: the Trainer's set by default, every parameter on request (issue 14)."""

from pathlib import Path

import pytest
import yaml

from feed_hf import FeedConfig, FeedTrainer
from feed_hf.runs.arguments import read_config_file

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "recipes" / "configs").glob("*.yaml"))


def _groups(tmp_path, feed_config_factory, synthetic_images, tiny_teachers, **overrides):
    args = feed_config_factory(tmp_path / "run", weight_decay=0.01, **overrides)
    trainer = FeedTrainer(teachers=tiny_teachers[:1], args=args, train_dataset=synthetic_images(16))
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.01 for p in g["params"]}
    undecayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    return decayed, undecayed, {n for n, p in trainer.model.named_parameters() if p.requires_grad}


def test_all_parameters_decay_when_asked(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    decayed, undecayed, trainable = _groups(
        tmp_path, feed_config_factory, synthetic_images, tiny_teachers, weight_decay_on_all_parameters=True
    )
    assert decayed == trainable and not undecayed
    assert any(n.startswith("connectors.") and n.endswith(".bias") for n in decayed)  # connector biases too
    assert any(".bn" in n and n.endswith(".bias") for n in decayed)  # BatchNorm β


def test_default_is_the_trainers_set_without_biases(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    decayed, undecayed, trainable = _groups(tmp_path, feed_config_factory, synthetic_images, tiny_teachers)
    assert FeedConfig.__dataclass_fields__["weight_decay_on_all_parameters"].default is False
    assert decayed | undecayed == trainable
    assert undecayed == {n for n in trainable if n.endswith(".bias")}  # conv/linear biases and BatchNorm β
    assert any(".bn" in n and n.endswith(".weight") for n in decayed)  # BatchNorm γ is decayed by the Trainer


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recipe_configs_state_clipping_and_weight_decay(path):
    """Paper-faithful recipes: no clipping and decay on all parameters; round 1's config says it clipped."""
    values = read_config_file(str(path))
    round_one = path.name == "cifar10_cpu_experiment.yaml"
    assert values["max_grad_norm"] == (1.0 if round_one else 0)
    assert values["weight_decay_on_all_parameters"] is (not round_one)
    header = path.read_text().split("\ndataset:", 1)[0]
    assert ("ROUND 1" if round_one else "Reference followed" if "paired" not in path.name else "ALL") in header
    assert yaml.safe_load(path.read_text())  # parses as YAML


def test_zero_max_grad_norm_means_no_clipping(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    """transformers 5.24 clips only when max_grad_norm > 0: with 0 a huge gradient reaches the optimizer intact."""
    args = feed_config_factory(tmp_path / "run", max_grad_norm=0, max_steps=1, learning_rate=1e-3)
    trainer = FeedTrainer(teachers=tiny_teachers[:1], args=args, train_dataset=synthetic_images(16))
    clipped = []
    trainer._clip_grad_norm = lambda model: clipped.append(True)  # the Trainer's only clipping path
    trainer.train()
    assert not clipped
