"""A killed job comes back exactly; an interrupted save never leaves something a later load accepts."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from recipe_helpers import RECIPES, load_recipe, tiny_argv

from feed_hf.publishing import export
from feed_hf.publishing.export import export_file
from feed_hf.training.checkpoints import COMPLETE_MARKER, last_complete_checkpoint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    load_recipe("train_teachers").main(tiny_argv(root, "--teacher_seeds", "1"))
    return str(root / "teacher_0")


def _recipe_command(output_dir: Path, teacher: str, *extra: str) -> list[str]:
    options = {
        "--teachers": teacher,
        "--max_train_samples": "128",
        "--num_train_epochs": "4",
        "--save_strategy": "steps",
        "--save_steps": "2",
        "--seed": "3",
        "--batch_augmentation": "crop",
    }
    argv = tiny_argv(output_dir, *[item for pair in options.items() for item in pair], *extra)
    return [sys.executable, str(RECIPES / "feed_parallel.py"), *argv]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(path)


def _optimizer_tensors(checkpoint: Path) -> list[torch.Tensor]:
    state = torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"]
    return [tensor for key in sorted(state) for tensor in state[key].values() if torch.is_tensor(tensor)]


def _run_recipe(output: Path, teacher_dir: Path, *extra: str) -> None:
    command = _recipe_command(output, teacher_dir, *extra)
    subprocess.run(command, env=_env(), check=True, capture_output=True, timeout=600)


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(teacher_dir, tmp_path):
    # Random crops drawn in the training step (batch_augmentation) come from the RNG state the Trainer
    # checkpoints; crops drawn in the data loader would not (it prefetches one batch past the checkpoint).
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _run_recipe(reference, teacher_dir)

    job = subprocess.Popen(
        _recipe_command(killed, teacher_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while last_complete_checkpoint(killed) is None and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)  # a real kill: no cleanup, no atexit
    assert job.wait() == -signal.SIGKILL, "the job finished before it could be killed"
    assert not (killed / "results.json").exists()
    resumed_from = last_complete_checkpoint(killed)
    assert resumed_from is not None and not resumed_from.endswith("checkpoint-16")

    _run_recipe(killed, teacher_dir, "--resume_from_checkpoint", "last")
    for name in ("model.safetensors", "feed_connectors.safetensors"):  # student and connectors, bit for bit
        expected, actual = _tensors(export_file(reference, name)), _tensors(export_file(killed, name))
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
    for expected, actual in zip(
        _optimizer_tensors(reference / "checkpoint-16"), _optimizer_tensors(killed / "checkpoint-16"), strict=True
    ):
        assert torch.equal(expected, actual)  # SGD momentum buffers too


def test_incomplete_checkpoint_is_never_resumed_from(teacher_dir, tmp_path):
    output = tmp_path / "run"
    _run_recipe(output, teacher_dir, "--num_train_epochs", "1")
    (output / "checkpoint-4" / COMPLETE_MARKER).unlink()  # as if the job died while writing checkpoint-4
    assert last_complete_checkpoint(output).endswith("checkpoint-2")
    from feed_hf import FeedTrainer
    from feed_hf.data.loading import DataArguments
    from feed_hf.runs.arguments import parse_arguments
    from feed_hf.training.config.feed_config import FeedConfig

    _, args = parse_arguments((DataArguments, FeedConfig), _recipe_command(output, teacher_dir)[2:])
    trainer = FeedTrainer(
        teachers=[timm.create_model(f"local-dir:{teacher_dir}", pretrained=True)],
        args=args,
        train_dataset=[{"pixel_values": torch.zeros(3, 16, 16), "labels": 0}] * 4,
        class_names=[str(digit) for digit in range(10)],
    )
    with pytest.raises(ValueError, match="checkpoint-4 is incomplete .*resume from .*checkpoint-2"):
        trainer.train(resume_from_checkpoint=str(output / "checkpoint-4"))


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_interrupted_export_leaves_the_previous_export_loadable(tmp_path, monkeypatch):
    first = timm.create_model("resnet8_cifar", num_classes=3).eval()
    export.export_student(first, tmp_path, {"teachers": []})
    before = _digest(tmp_path)

    def save_half_then_die(model, folder, **kwargs):
        Path(folder, "model.safetensors").write_bytes(b"\x00" * 100)  # a partial weights file
        raise KeyboardInterrupt  # the job is stopped in the middle of the save

    monkeypatch.setattr(export, "save_for_hf", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        export.export_student(timm.create_model("resnet8_cifar", num_classes=3), tmp_path, {"teachers": []})
    assert _digest(tmp_path) == before  # nothing of the interrupted save reached the folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]  # no staging left behind
    reloaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(reloaded(x), first(x))
