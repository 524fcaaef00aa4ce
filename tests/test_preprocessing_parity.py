"""What training evaluated on is what a pipeline / AutoImageProcessor user of the export gets (issues 12.3, 13.3)."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, pipeline

from feed_hf.data.loading import DataArguments
from feed_hf.training.train_model import build_trainer

SIZES = [(200, 150), (17, 40), (150, 200), (64, 64), (33, 31)]  # (width, height): non-square, tiny, large


def _labelled_images(n: int, seed: int) -> list[tuple[Image.Image, int]]:
    """Non-square images of several sizes whose class (0/1) is the brightness of the red channel."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(n):
        width, height = SIZES[index % len(SIZES)]
        label = index % 2
        pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
        pixels[..., 0] += np.uint8(120 * label)
        samples.append((Image.fromarray(pixels), label))
    return samples


def _splits(n_train: int = 32, n_eval: int = 20) -> datasets.DatasetDict:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["dark", "red"])})

    def split(samples):
        return datasets.Dataset.from_dict(
            {"image": [image for image, _ in samples], "label": [label for _, label in samples]}, features=features
        )

    return datasets.DatasetDict(train=split(_labelled_images(n_train, 0)), eval=split(_labelled_images(n_eval, 1)))


@pytest.mark.parametrize(("student", "input_size"), [("resnet8_cifar", None), ("resnet10t", 96)])
def test_pipeline_sees_the_training_eval_tensors_and_reports_the_same_top1(
    tmp_path, feed_config_factory, student, input_size
):
    splits = _splits()
    args = feed_config_factory(
        tmp_path / "out", student=student, num_labels=None, input_size=input_size, learning_rate=0.01, max_steps=6
    )
    trainer = build_trainer(DataArguments(horizontal_flip=False), args, splits)
    trainer.train()
    reported = trainer.evaluate()["eval_top1"]
    export_dir = str(tmp_path / "out")
    size = 32 if input_size is None else input_size
    assert json.loads((tmp_path / "out" / "config.json").read_text())["pretrained_cfg"]["input_size"] == [3, size, size]

    processor = AutoImageProcessor.from_pretrained(export_dir)
    eval_images = [image for image, _ in _labelled_images(20, 1)]
    diffs = []
    for index, image in enumerate(eval_images):
        trained_on = trainer.eval_dataset[index]["pixel_values"]  # the transform training evaluated with
        served = processor(image)["pixel_values"][0]
        assert trained_on.shape == served.shape == (3, size, size)
        diffs.append(float((trained_on - served).abs().max()))
    assert max(diffs) <= 1e-5, max(diffs)

    classify = pipeline("image-classification", model=export_dir, device=torch.device("cpu"))
    predictions = classify(eval_images, top_k=1)
    labels = splits["eval"]["label"]
    names = splits["eval"].features["label"].names
    pipeline_top1 = 100.0 * np.mean([p[0]["label"] == names[y] for p, y in zip(predictions, labels, strict=True)])
    trained_predictions = trainer.predict(trainer.eval_dataset).predictions.argmax(axis=1)
    assert [p[0]["label"] for p in predictions] == [names[int(i)] for i in trained_predictions]  # image by image
    print(f"{student}@{size}: pipeline top-1 {pipeline_top1:.2f} vs reported {reported:.2f}; max |diff| {max(diffs)}")
    assert pipeline_top1 == pytest.approx(reported, abs=1e-6)
