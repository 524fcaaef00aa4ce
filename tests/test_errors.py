"""Bad inputs fail fast with a message that names the value and the fix (rows of docs/errors.md)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import timm
from torch import nn

from feed_hf import FeedTrainer
from feed_hf.teachers.frozen import FrozenTeacher, load_teacher_model

ROOT = Path(__file__).resolve().parent.parent
CIFAR_DATA_CONFIG = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def test_every_documented_error_has_a_test():
    text = (ROOT / "docs" / "errors.md").read_text()
    bad_inputs = text.split("## Bad inputs", 1)[1]
    rows = [line for line in bad_inputs.splitlines() if line.startswith("| ")][1:]  # past the header row
    assert len(rows) >= 20
    for row in rows:
        assert re.search(r"`tests/test_\w+\.py::test_\w+", row), f"row without a test: {row}"
    # every test named anywhere in the page, promises included, exists
    for file, test in re.findall(r"`(tests/test_\w+\.py)(?:::(test_\w+))?", text):
        assert (ROOT / file).is_file(), f"{file} does not exist"
        assert not test or f"def {test}(" in (ROOT / file).read_text(), f"{file}::{test} does not exist"


def test_unknown_student_name(tmp_path, feed_config_factory, synthetic_images):
    with pytest.raises(ValueError, match="student 'resnet_9000' is not a timm model name"):
        FeedTrainer(args=feed_config_factory(tmp_path, student="resnet_9000"), train_dataset=synthetic_images(8))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors' does not exist"):
        load_teacher_model(f"resnet8_cifar={tmp_path / 'nope.safetensors'}")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "broken.safetensors"
    safetensors.torch.save_file(timm.create_model("resnet8_cifar").state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated download
    with pytest.raises(ValueError, match="not a readable safetensors file.*truncated or corrupt"):
        load_teacher_model(f"resnet8_cifar={path}")


def test_student_feature_index_out_of_range(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    args = feed_config_factory(tmp_path, student_feature_index=9)
    with pytest.raises(ValueError, match=r"student feature index 9 is out of range.*valid indices are -4\.\.3"):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(8))


def test_teacher_feature_index_out_of_range(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    args = feed_config_factory(tmp_path, teacher_feature_indices=[-7])
    with pytest.raises(ValueError, match=r"teacher 0 \(CifarResNet\) feature index -7 is out of range"):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(8))


class _PooledFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.body(x))


def test_feature_that_is_not_a_map(tmp_path, feed_config_factory, synthetic_images):
    args = feed_config_factory(tmp_path, teacher_feature_modules=["body"])
    with pytest.raises(ValueError, match=r"feature map has shape \(1, 8\); FEED needs a \[B, C, H, W\] map"):
        FeedTrainer(teachers=[_PooledFeatures()], args=args, train_dataset=synthetic_images(8))


def test_teacher_with_other_input_channels():
    teacher = timm.create_model("resnet8_cifar", in_chans=1, pretrained_cfg_overlay=dict(input_size=(1, 32, 32)))
    with pytest.raises(ValueError, match="takes 1-channel images but the student takes 3"):
        FrozenTeacher(teacher, CIFAR_DATA_CONFIG)


def test_empty_train_set(tmp_path, feed_config_factory, synthetic_images):
    with pytest.raises(ValueError, match="train_dataset is empty"):
        FeedTrainer(args=feed_config_factory(tmp_path), train_dataset=synthetic_images(0))


def test_labels_beyond_num_labels(tmp_path, feed_config_factory, synthetic_images):
    with pytest.raises(ValueError, match="has 10 classes .* num_labels=5; set num_labels to 10"):
        FeedTrainer(
            args=feed_config_factory(tmp_path),
            train_dataset=synthetic_images(8),
            class_names=[str(i) for i in range(10)],
        )


def test_resume_with_another_teacher_count(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    args = feed_config_factory(tmp_path / "run", max_steps=2, save_strategy="steps", save_steps=2)
    FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(32)).train()
    fewer = FeedTrainer(teachers=tiny_teachers[:1], args=args, train_dataset=synthetic_images(32))
    with pytest.raises(ValueError, match="cannot resume from .*: it was made by another run .*teachers: "):
        fewer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))


def test_output_dir_not_writable(tmp_path, feed_config_factory, synthetic_images):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="output_dir .*a-file/run' is not a writable folder"):
        FeedTrainer(args=feed_config_factory(blocker / "run"), train_dataset=synthetic_images(8))


def test_lr_decay_needs_constant_schedule(tmp_path, feed_config_factory):
    with pytest.raises(ValueError, match="set lr_scheduler_type to 'constant'"):
        feed_config_factory(tmp_path, max_steps=-1, num_train_epochs=3, lr_decay_epochs=[1.0, 2.0])


def test_cli_shows_the_message_not_a_traceback(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "feed_hf.cli",
            "baselines",
            "--dataset",
            "digits",
            "--student",
            "resnet_9000",
            "--output_dir",
            str(tmp_path),
            "--report_to",
            "none",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "feed-hf: error: student 'resnet_9000' is not a timm model name" in done.stderr
    assert "Traceback" not in done.stderr


def test_grayscale_data_for_an_rgb_student_is_converted(tmp_path):
    from recipe_helpers import load_recipe, tiny_argv

    results = load_recipe("baselines").main(tiny_argv(tmp_path))  # digits are 8×8 grayscale
    assert results["metrics"]["eval_top1"] >= 0
