"""`FeedTrainer(model_init=...)`: a fresh student and fresh connectors per trial, teachers built once, and
`hyperparameter_search` (optuna) over learning rate and β with each trial's student exported to its own folder."""

import json

import pytest
import timm
import torch
from transformers import TrainerCallback

from feed_hf import FeedStudent, FeedTrainer

CLASS_NAMES = ["a", "b", "c", "d", "e"]


class _TrialStarts(TrainerCallback):
    """The model each train() starts and ends with (cloned), and the args it trains with."""

    def __init__(self) -> None:
        self.starts, self.ends, self.betas = [], [], []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        self.betas.append(list(args.feed_beta))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.ends.append({k: v.detach().clone() for k, v in model.state_dict().items()})


def _search_trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, made):
    def model_init(trial):
        made.append(timm.create_model("resnet8_cifar", num_classes=5))
        return made[-1]

    recorder = _TrialStarts()
    trainer = FeedTrainer(
        model_init=model_init,
        teachers=tiny_teachers,
        args=feed_config_factory(tmp_path / "search", save_strategy="no"),
        train_dataset=synthetic_images(64),
        eval_dataset=synthetic_images(32, seed=1),
        class_names=CLASS_NAMES,
        callbacks=[recorder],
    )
    return trainer, recorder


def _hp_space(trial):
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
        "feed_beta": trial.suggest_float("feed_beta", 10.0, 1000.0, log=True),  # a number: read as [number]
    }


def test_optuna_search_retrains_fresh_student_and_connectors_per_trial(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    pytest.importorskip("optuna", reason="the dev extra installs optuna")
    made = []
    trainer, recorder = _search_trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, made)
    teachers, teacher_state = trainer.teachers, {k: v.clone() for k, v in trainer.teachers.state_dict().items()}
    best = trainer.hyperparameter_search(backend="optuna", n_trials=2, hp_space=_hp_space, direction="maximize")

    assert set(best.hyperparameters) == {"learning_rate", "feed_beta"}
    assert len(made) == 4 and len({id(m) for m in made}) == 4  # __init__'s probe, Trainer.__init__, one per trial
    first, second = recorder.starts
    assert {k for k in first if k.startswith("connectors.")} and first.keys() == second.keys()
    # Trial 2 starts where trial 1 started (same seed, fresh student and connectors), not where trial 1 ended.
    assert all(torch.equal(first[k], second[k]) for k in first)
    trained = [k for k in first if not torch.equal(first[k], recorder.ends[0][k])]
    assert any(k.startswith("connectors.") for k in trained) and any(k.startswith("student.") for k in trained)
    assert trainer.teachers is teachers  # built once
    assert all(torch.equal(v, teacher_state[k]) for k, v in trainer.teachers.state_dict().items())

    suggested = [recorder.betas[i][0] for i in range(2)]
    for number in range(2):  # each trial's student exported to its own folder, with the β it trained with
        run_dir = tmp_path / "search" / f"run-{number}"
        timm.create_model(f"local-dir:{run_dir}", pretrained=True)
        feed_config = json.loads((run_dir / "feed_config.json").read_text())
        assert feed_config["feed_beta"] == pytest.approx([suggested[number]] * 2)
    assert suggested[0] != suggested[1] and 10.0 <= min(suggested) and max(suggested) <= 1000.0


def test_model_init_without_search_trains_a_feed_student(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    made = []
    trainer, recorder = _search_trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, made)
    assert isinstance(trainer.model, FeedStudent) and len(trainer.model.connectors) == 2
    trainer.train()
    assert trainer.student is made[-1] and trainer.state.global_step == 4
    assert (tmp_path / "search" / "model.safetensors").is_file()


def test_model_and_model_init_together_are_refused(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    with pytest.raises(ValueError, match="either a `model` or `model_init` argument, but not both"):
        FeedTrainer(
            model=timm.create_model("resnet8_cifar", num_classes=5),
            model_init=lambda: timm.create_model("resnet8_cifar", num_classes=5),
            teachers=tiny_teachers,
            args=feed_config_factory(tmp_path / "both"),
            train_dataset=synthetic_images(64),
        )


def test_a_trial_with_a_bad_beta_is_refused_before_it_trains(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    pytest.importorskip("optuna", reason="the dev extra installs optuna")
    trainer, recorder = _search_trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory, [])
    with pytest.raises(ValueError, match=r"feed_beta must be finite and >= 0, got -1\.0"):
        trainer.hyperparameter_search(backend="optuna", n_trials=1, hp_space=lambda trial: {"feed_beta": -1.0})
    assert recorder.starts == []  # no step was taken
