"""The normalisation contract: to_pixel_values gives the student's batches; the first-batch check warns otherwise."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import timm
import torch
from timm.data import resolve_model_data_config
from torch.utils.data import DataLoader
from transformers import default_data_collator

import feed_hf  # noqa: F401  (registers resnet8_cifar)
from feed_hf.data.loading import digits_dataset
from feed_hf.data.pixel_values import check_pixel_values_once, normalisation_mismatch, to_pixel_values

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _first_batch(dataset, size: int = 32) -> dict:
    return next(iter(DataLoader(dataset, batch_size=size, collate_fn=default_data_collator)))


def _natural_batch() -> torch.Tensor:
    return torch.rand(8, 3, 16, 16)  # 8-bit-like pixels in [0, 1], as ToTensor gives them


def test_to_pixel_values_uses_the_students_transforms_and_size():
    student = timm.create_model("resnet8_cifar", num_classes=10)
    train = to_pixel_values(digits_dataset().select(range(40)), student, training=False)
    batch = _first_batch(train)
    assert batch["pixel_values"].shape == (32, 3, 8, 8)  # digits are 8×8: the input size decided from the data
    assert resolve_model_data_config(student)["input_size"] == (3, 8, 8)
    assert batch["labels"].tolist() == digits_dataset()["label"][:32]
    config = resolve_model_data_config(student)
    assert normalisation_mismatch(batch["pixel_values"], config["mean"], config["std"]) is None


def test_to_pixel_values_without_labels_and_other_columns():
    student = timm.create_model("resnet8_cifar", num_classes=0)
    images = digits_dataset().select(range(8)).rename_column("image", "img").remove_columns("label")
    batch = _first_batch(to_pixel_values(images, student, image_column="img", input_size=16), 8)
    assert set(batch) == {"pixel_values"} and batch["pixel_values"].shape == (8, 3, 16, 16)


def test_unlabelled_data_needs_no_label_column_none_and_a_labels_column_is_read(caplog):
    student = timm.create_model("resnet8_cifar", num_classes=10)
    images = digits_dataset().select(range(8))
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.pixel_values"):
        unlabelled = _first_batch(to_pixel_values(images.remove_columns("label"), student, input_size=16), 8)
    assert set(unlabelled) == {"pixel_values"} and not caplog.records  # images only: label-free, nothing to say
    labels = _first_batch(to_pixel_values(images.rename_column("label", "labels"), student, input_size=16), 8)
    assert labels["labels"].tolist() == images["label"]  # transformers' column name is not dropped silently
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.pixel_values"):
        to_pixel_values(images.rename_column("label", "fine_label"), student, input_size=16)
    assert "no label column 'label'; the dataset's other columns are ['fine_label']" in caplog.text


def test_normalisation_rules():
    pixels = _natural_batch()
    mean, std = torch.tensor(IMAGENET[0]).view(3, 1, 1), torch.tensor(IMAGENET[1]).view(3, 1, 1)
    assert normalisation_mismatch((pixels - mean) / std, *IMAGENET) is None  # the student's own: silent
    assert "0–255" in normalisation_mismatch(pixels * 255, *IMAGENET)
    assert "non-negative" in normalisation_mismatch(pixels, *IMAGENET)  # ToTensor without Normalize
    assert "outside" in normalisation_mismatch((pixels - mean) / std, *HALF)  # ImageNet stats for a 0.5/0.5 student
    assert "half of the range" in normalisation_mismatch((pixels - 0.5) / 0.5, *IMAGENET)  # 0.5/0.5 for ImageNet


def test_first_batch_check_warns_once(caplog):
    student = timm.create_model("resnet8_cifar", num_classes=10)
    trainer = SimpleNamespace(student=student)
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.pixel_values"):
        check_pixel_values_once(trainer, _natural_batch())  # unnormalised [0, 1]
        check_pixel_values_once(trainer, _natural_batch())
    warnings = [r for r in caplog.records if "does not look normalised" in r.getMessage()]
    assert len(warnings) == 1 and "to_pixel_values" in warnings[0].getMessage()


def test_first_batch_check_is_silent_on_the_contract(caplog):
    student = timm.create_model("resnet8_cifar", num_classes=10)
    batch = _first_batch(to_pixel_values(digits_dataset().select(range(32)), student))
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.pixel_values"):
        check_pixel_values_once(SimpleNamespace(student=student), batch["pixel_values"])
    assert not [r for r in caplog.records if "does not look normalised" in r.getMessage()]


def test_trainer_warns_on_a_0_255_first_batch(feed_config_factory, synthetic_images, tmp_path, caplog):
    from feed_hf import FeedTrainer

    data = synthetic_images(n=32)
    data.pixels = (data.pixels.clamp(-1, 1) + 1) * 127.5  # 0..255, never normalised
    trainer = FeedTrainer(args=feed_config_factory(tmp_path / "run", max_steps=1), train_dataset=data)
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.pixel_values"):
        trainer.train()
    assert any("0–255" in r.getMessage() for r in caplog.records)
