"""`hub_strategy` on the loopback Hub: `every_save` pushes the exported student at each save, `end` waits for
push_to_hub(), `checkpoint` / `all_checkpoints` are refused before any repo is made."""

import logging

import pytest
import safetensors.torch
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi

from feed_hf import FeedTrainer
from feed_hf.publishing.hub import HubPushError

CLASS_NAMES = ["a", "b", "c", "d", "e"]


def _trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, repo_id, **overrides):
    args = feed_config_factory(
        tmp_path / "run",
        save_strategy="steps",
        save_steps=2,
        push_to_hub=True,
        hub_model_id=repo_id,
        hub_token=HUB_TOKEN,
        **overrides,
    )
    return FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(64), class_names=CLASS_NAMES)


def _loaded_at(repo_id, sha):
    # The real client path a user takes to a save: timm's hf-hub:REPO@COMMIT.
    return timm.create_model(f"hf-hub:{repo_id}@{sha}", pretrained=True).state_dict()


def test_every_save_pushes_the_exported_student_once_per_save(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    repo_id = "tester/every-save"
    trainer = _trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, repo_id, push_connectors=False)
    before = loopback_hub.commits(repo_id)  # the Trainer creates the repo when it is set up
    trainer.train()  # 4 steps, a save at steps 2 and 4
    pushed = loopback_hub.commits(repo_id)[: len(loopback_hub.commits(repo_id)) - len(before)]
    assert len(pushed) == 2
    architecture = set(timm.create_model("resnet8_cifar", num_classes=5).state_dict())
    states = []
    for sha in pushed:
        files = loopback_hub.files(repo_id, revision=sha)
        assert {"config.json", "model.safetensors", "feed_config.json", "README.md"} <= set(files)
        assert "feed_connectors.safetensors" not in files
        assert set(safetensors.torch.load(files["model.safetensors"])) == architecture  # no connector tensor
        states.append(_loaded_at(repo_id, sha))
    assert any(not torch.equal(states[0][k], states[1][k]) for k in architecture)  # step 2 and step 4 differ
    final = trainer.student.state_dict()
    assert all(torch.equal(states[0][k], final[k].cpu()) for k in architecture)  # newest first: step 4


def test_every_save_with_push_connectors_adds_them_as_their_own_file(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    repo_id = "tester/every-save-connectors"
    trainer = _trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, repo_id, push_connectors=True)
    trainer.train()
    files = loopback_hub.files(repo_id)
    assert "feed_connectors.safetensors" in files
    assert not any(k.startswith("connectors.") for k in safetensors.torch.load(files["model.safetensors"]))


def test_end_pushes_nothing_until_push_to_hub(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    repo_id = "tester/end-only"
    trainer = _trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, repo_id, hub_strategy="end")
    before = loopback_hub.commits(repo_id)
    trainer.train()
    assert loopback_hub.commits(repo_id) == before
    trainer.push_to_hub()
    assert len(loopback_hub.commits(repo_id)) == len(before) + 1


@pytest.mark.parametrize("strategy", ["checkpoint", "all_checkpoints"])
def test_checkpoint_strategies_are_refused_before_any_repo_is_made(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory, strategy
):
    repo_id = f"tester/refused-{strategy.replace('_', '-')}"
    with pytest.raises(
        ValueError,
        match=rf"hub_strategy='{strategy}' would push a resumable Trainer checkpoint.*"
        r"use hub_strategy='every_save'",
    ):
        _trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, repo_id, hub_strategy=strategy)
    assert not HfApi(token=HUB_TOKEN).repo_exists(repo_id)


def test_a_failed_push_at_a_save_is_logged_and_training_goes_on(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch, caplog
):
    def refuse(*args, **kwargs):
        raise HubPushError("the Hub is down")

    monkeypatch.setattr("feed_hf.training.hub_callbacks.push_export", refuse)
    trainer = _trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, "tester/flaky")
    with caplog.at_level(logging.WARNING, logger="feed_hf.training.hub_callbacks"):
        trainer.train()
    assert trainer.state.global_step == 4 and (tmp_path / "run" / "model.safetensors").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.name == "feed_hf.training.hub_callbacks"]
    assert len(warnings) == 2 and "saved at step 2 was not pushed to 'tester/flaky' (the Hub is down)" in warnings[0]
