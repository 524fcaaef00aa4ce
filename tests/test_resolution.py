"""The student's resolution is decided once (issue 13.1): input_size, else the data's size, else the timm cfg."""

import json

import datasets
import numpy as np
import pytest
import timm
import torch
from PIL import Image

from feed_hf import FeedTrainer
from feed_hf.data.loading import DataArguments
from feed_hf.training.resolution import set_student_input_size
from feed_hf.training.train_model import build_trainer

STALE_KEYS = {"test_input_size", "test_crop_pct", "pool_size", "tag", "hf_hub_id", "url", "license", "origin_url"}


def _exported_cfg(folder) -> dict:
    return json.loads((folder / "config.json").read_text())["pretrained_cfg"]


def test_python_api_timm_student_on_64px_data_trains_and_exports_64(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    # The README's path with a timm-native student (cfg 224) on 64-px data: used to crash at the first step
    # with "cannot pool a (2, 2) map up to (7, 7)" (everything was built at 224).
    args = feed_config_factory(tmp_path / "out", student="resnet10t")
    trainer = FeedTrainer(args=args, teachers=tiny_teachers, train_dataset=synthetic_images(n=32, size=64))
    assert [tuple(t.compare_size) for t in trainer.teachers] == [(2, 2), (2, 2)]  # probed at 64, not 224
    trainer.train()
    cfg = _exported_cfg(tmp_path / "out")
    assert cfg["input_size"] == [3, 64, 64]
    assert (cfg["crop_pct"], cfg["crop_mode"], cfg["interpolation"]) == (1.0, "squash", "bilinear")
    assert not STALE_KEYS & set(cfg)
    assert cfg["first_conv"] == "conv1.0" and cfg["classifier"] == "fc" and cfg["num_classes"] == 5


def test_input_size_applies_to_a_model_given_as_a_module(tmp_path, feed_config_factory, synthetic_images):
    # FeedConfig.input_size used to be silently ignored when model= was passed.
    args = feed_config_factory(tmp_path / "out", student=None, input_size=48)
    student = timm.create_model("resnet10t", num_classes=5)
    trainer = FeedTrainer(model=student, args=args, train_dataset=synthetic_images(n=16, size=48))
    assert tuple(trainer.student.pretrained_cfg["input_size"]) == (3, 48, 48)
    assert "test_input_size" not in trainer.student.pretrained_cfg


def test_input_size_contradicting_the_pixel_values_is_a_setup_error(tmp_path, feed_config_factory, synthetic_images):
    args = feed_config_factory(tmp_path / "out", input_size=32)
    with pytest.raises(ValueError, match=r"input_size=32 contradicts the data: .*64×64"):
        FeedTrainer(args=args, train_dataset=synthetic_images(n=16, size=64))


def test_fixed_size_student_is_resized_by_timm_or_refused_naming_input_size():
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=3, depth=1)
    set_student_input_size(vit, (64, 64))  # timm's set_input_size resamples the position embeddings
    assert vit.patch_embed.img_size == (64, 64) and tuple(vit.pretrained_cfg["input_size"]) == (3, 64, 64)
    fixed = torch.nn.Linear(3 * 32 * 32, 3)  # a model built for one size, that timm cannot resize
    fixed.pretrained_cfg = {"input_size": (3, 32, 32), "fixed_input_size": True}
    with pytest.raises(ValueError, match=r"^input_size: the student \(Linear\) only accepts 32×32 inputs"):
        set_student_input_size(fixed, (64, 64))


def _image_splits(side: int, n: int = 12) -> datasets.DatasetDict:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(n)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    split = datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]}, features=features)
    return datasets.DatasetDict(train=split, eval=split)


@pytest.mark.parametrize(
    ("student", "side", "input_size", "expected"),
    [
        ("resnet10t", 48, None, 48),  # images smaller than the cfg's 224: trained at their size, not upsampled
        ("resnet8_cifar", 24, None, 24),
        ("resnet8_cifar", 48, None, 32),  # larger than the cfg: the cfg's size (transforms downsample)
        ("resnet10t", 48, 40, 40),  # an explicit input_size wins
    ],
)
def test_cli_path_takes_the_size_from_the_train_split(
    tmp_path, feed_config_factory, student, side, input_size, expected
):
    args = feed_config_factory(tmp_path / "out", student=student, num_labels=None, input_size=input_size)
    trainer = build_trainer(DataArguments(horizontal_flip=False), args, _image_splits(side))
    assert tuple(trainer.student.pretrained_cfg["input_size"]) == (3, expected, expected)
    assert tuple(trainer.train_dataset[0]["pixel_values"].shape) == (3, expected, expected)
    assert tuple(trainer.eval_dataset[0]["pixel_values"].shape) == (3, expected, expected)
