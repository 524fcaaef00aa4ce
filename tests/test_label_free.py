"""Label-free FEED: Σβ·FEED alone without labels, evaluated by FEED distances, exported as a backbone, fine-tuned."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file
from timm.models import save_for_hf

from feed_hf.data.loading import DataArguments, load_image_splits
from feed_hf.training.label_free import cross_entropy_term
from feed_hf.training.train_model import build_trainer, train_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _teacher_folders(root: Path) -> list[str]:
    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        folder = root / f"teacher_{seed}"
        save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), folder, safe_serialization=True)
        folders.append(str(folder))
    return folders


def _data(**overrides) -> DataArguments:
    settings = dict(dataset="digits", max_train_samples=64, max_eval_samples=32, horizontal_flip=False)
    return DataArguments(**{**settings, **overrides})


def test_no_labels_means_no_ce_term():
    loss, terms = cross_entropy_term(torch.randn(4, 3), None)
    assert float(loss) == 0.0 and terms == {}
    loss, terms = cross_entropy_term(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    assert float(loss) > 0 and set(terms) == {"loss/ce"}


def test_label_column_none_drops_the_labels():
    splits = load_image_splits(_data(label_column="none"))
    assert splits["train"].column_names == ["image"] and splits["eval"].column_names == ["image"]


def test_label_free_without_teachers_is_refused(feed_config_factory, tmp_path):
    args = feed_config_factory(tmp_path / "run", num_labels=None, input_size=16)
    with pytest.raises(ValueError, match="no labels .*teachers is empty"):
        build_trainer(_data(label_column="none"), args, load_image_splits(_data(label_column="none")))


def test_label_free_pfeed_then_fine_tune_from_the_export(feed_config_factory, tmp_path):
    teachers = _teacher_folders(tmp_path)
    free_dir, tuned_dir = tmp_path / "label_free", tmp_path / "fine_tuned"
    args = feed_config_factory(free_dir, num_labels=None, input_size=16, teachers=teachers, feed_beta=[1.0])
    results = train_model(_data(label_column="none"), args)
    history = results["log_history"]
    assert any("feed/loss" in entry for entry in history)
    assert not any("loss/ce" in entry for entry in history)  # Σβ·FEED alone
    evaluated = [entry for entry in history if "eval_loss" in entry]
    assert evaluated and evaluated[-1]["eval_loss"] > 0 and "eval_top1" not in evaluated[-1]  # FEED distances only
    backbone = timm.create_model(f"local-dir:{free_dir}", pretrained=True)
    assert backbone.num_classes == 0  # exported as a backbone
    free_weights = load_file(free_dir / "model.safetensors")

    tuned_args = feed_config_factory(tuned_dir, num_labels=None, input_size=16, student=f"local-dir:{free_dir}")
    trainer = build_trainer(_data(), tuned_args, load_image_splits(_data()))
    start = trainer.student.state_dict()
    stem = next(name for name in free_weights if name.startswith("conv"))
    assert torch.equal(start[stem], free_weights[stem])  # the backbone starts from the label-free weights
    assert trainer.student.num_classes == 10
    trainer.train()
    assert any("loss/ce" in entry for entry in trainer.state.log_history)
