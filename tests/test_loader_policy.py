"""One loader policy for every file feed-hf reads (issue 18, item 5): no pickle without the user's opt-in.

Each pickle planted here would create a file when unpickled; every test checks that it never ran.
"""

import json
import os
from pathlib import Path

import pytest
import timm
import torch
from recipe_helpers import tiny_argv
from timm.models import save_for_hf

from feed_hf import FeedTrainer
from feed_hf.teachers.frozen import load_teacher_model
from feed_hf.training.checkpoints import COMPLETE_MARKER
from feed_hf_cli import main, run_command


class _Payload:
    """Unpickling it runs `os.system`: what a malicious checkpoint does."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self):
        return os.system, (f"touch {self.witness}",)


def _plant(path: Path, witness: Path) -> None:
    torch.save({"state": _Payload(witness)}, path)


def _one_line_error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def witness(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a planted pickle ran"


# ---- feed-hf evaluate --model FOLDER (only pytorch_model.bin) ----


def test_evaluate_refuses_a_pickle_only_folder_unless_opted_in(tmp_path, capsys, witness):
    torch.manual_seed(0)
    model = timm.create_model("resnet8_cifar", num_classes=10)
    save_for_hf(model, tmp_path / "pickled", safe_serialization=False)
    save_for_hf(model, tmp_path / "safe", safe_serialization=True)
    assert sorted(p.name for p in (tmp_path / "pickled").iterdir()) == ["config.json", "pytorch_model.bin"]
    argv = ["--split", "eval", "--dataset", "digits", "--max_eval_samples", "32"]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(tmp_path / "pickled"), *argv])
    error = _one_line_error(capsys)
    assert exit_info.value.code == 2 and "has its weights only as a pickle file ('pytorch_model.bin')" in error
    assert error.startswith(f"feed-hf: error: model '{tmp_path / 'pickled'}'") and "--allow_pickle true" in error
    opted_in = run_command("evaluate", ["--model", str(tmp_path / "pickled"), *argv, "--allow_pickle", "true"])
    assert opted_in["top1"] == run_command("evaluate", ["--model", str(tmp_path / "safe"), *argv])["top1"]
    _plant(tmp_path / "pickled" / "pytorch_model.bin", witness)  # even opted in, read with weights_only=True
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(tmp_path / "pickled"), *argv, "--allow_pickle", "true"])
    assert "could not be read with weights_only=True" in _one_line_error(capsys)


# ---- teacher spec keyword arguments that name files ----


def test_a_checkpoint_path_keyword_goes_through_the_pickle_policy(tmp_path, witness, capsys):
    torch.manual_seed(0)
    trained = timm.create_model("resnet8_cifar", num_classes=7)
    torch.save(trained.state_dict(), tmp_path / "weights.bin")
    with pytest.raises(ValueError, match=r"weights.bin' is a pickle file, .*opt in with teacher_allow_pickle=True"):
        load_teacher_model(f"resnet8_cifar?num_classes=7&checkpoint_path={tmp_path / 'weights.bin'}")
    loaded = load_teacher_model(f"resnet8_cifar?num_classes=7&checkpoint_path={tmp_path / 'weights.bin'}", True)
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    timm.models.save_for_hf(trained, tmp_path / "folder", safe_serialization=True)
    safe = tmp_path / "folder" / "model.safetensors"
    loaded = load_teacher_model(f"resnet8_cifar?num_classes=7&checkpoint_path={safe}")  # safetensors: no opt-in
    assert torch.equal(loaded.conv1.weight, trained.conv1.weight)
    _plant(tmp_path / "evil.pth", witness)
    with pytest.raises(ValueError, match="could not be read with weights_only=True"):
        load_teacher_model(f"resnet8_cifar?checkpoint_path={tmp_path / 'evil.pth'}", True)
    with pytest.raises(ValueError, match=r"keyword argument pretrained_file='.*evil.pth' names a file"):
        load_teacher_model(f"resnet8_cifar?pretrained_file={tmp_path / 'evil.pth'}", True)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "parallel",
                *tiny_argv(tmp_path / "run", "--teachers", f"resnet8_cifar?checkpoint_path={tmp_path}/weights.bin"),
            ]
        )
    assert exit_info.value.code == 2 and "is a pickle file, which can run code" in _one_line_error(capsys)


# ---- resuming from a checkpoint with planted pickles ----


@pytest.fixture
def checkpoint(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    """A run saved at step 2; returns (checkpoint folder, a function that resumes it)."""

    def trainer(**overrides):
        config = feed_config_factory(tmp_path / "run", max_steps=3, save_strategy="steps", save_steps=2, **overrides)
        return FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(48))

    trainer().train()
    folder = tmp_path / "run" / "checkpoint-2"
    assert json.loads((folder / COMPLETE_MARKER).read_text())["files"]  # the save's pickles, by digest

    def resume(**overrides):
        return trainer(overwrite_output_dir=True, **overrides).train(resume_from_checkpoint=str(folder))

    return folder, resume


def test_resuming_refuses_a_planted_or_replaced_pickle_before_reading_it(checkpoint, witness):
    folder, resume = checkpoint
    saved = (folder / "optimizer.pt").read_bytes()
    _plant(folder / "pytorch_model.bin", witness)
    with pytest.raises(ValueError, match=r"checkpoint-2: it holds pytorch_model.bin, which its save did not write"):
        resume()
    (folder / "pytorch_model.bin").unlink()
    _plant(folder / "optimizer.pt", witness)
    with pytest.raises(ValueError, match=r"checkpoint-2: optimizer.pt differs from the file its save wrote"):
        resume()
    (folder / "optimizer.pt").write_bytes(saved)
    assert resume().global_step == 3  # restored: it resumes


def test_a_checkpoint_without_digests_needs_the_pickle_opt_in(checkpoint):
    folder, resume = checkpoint
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    del marker["files"]  # as an older feed-hf wrote it
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker))
    with pytest.raises(ValueError, match=r"records no digests of its files .* set teacher_allow_pickle=True"):
        resume()
    assert resume(teacher_allow_pickle=True).global_step == 3


def test_the_cli_names_a_planted_pickle_in_one_line(tmp_path, capsys, witness):
    teacher = tmp_path / "teacher"
    save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), teacher, safe_serialization=True)
    argv = tiny_argv(tmp_path / "run", "--teachers", str(teacher), "--max_steps", "2")
    argv[argv.index("--save_strategy") + 1] = "steps"
    run_command("parallel", [*argv, "--save_steps", "1"])
    _plant(tmp_path / "run" / "checkpoint-1" / "rng_state.pth", witness)
    resume = ["--save_steps", "1", "--resume_from_checkpoint", str(tmp_path / "run" / "checkpoint-1")]
    with pytest.raises(SystemExit) as exit_info:
        main(["parallel", *argv, *resume])
    error = _one_line_error(capsys)
    assert exit_info.value.code == 2 and error.startswith("feed-hf: error: cannot resume from")
    assert "rng_state.pth differs from the file its save wrote" in error
