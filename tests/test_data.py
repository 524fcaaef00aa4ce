import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from feed_hf.data.loading import DataArguments, digits_dataset, load_image_splits
from feed_hf.data.transforms import build_transform, with_pixel_values

CIFAR_CONFIG = {
    "input_size": (3, 32, 32),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25),
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "crop_mode": "center",
}


def _write_parquet(tmp_path, n=40, image_column="img", label_column="fine_label"):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]
    features = datasets.Features({image_column: datasets.Image(), label_column: datasets.ClassLabel(names=["x", "y"])})
    split = datasets.Dataset.from_dict(
        {image_column: images, label_column: [i % 2 for i in range(n)]}, features=features
    )
    split.to_parquet(str(tmp_path / "train.parquet"))
    split.select(range(10)).to_parquet(str(tmp_path / "test.parquet"))
    return tmp_path


def test_digits_ship_offline_and_eval_is_carved_stratified():
    splits = load_image_splits(DataArguments(dataset="digits"), seed=0)
    assert len(splits["train"]) + len(splits["eval"]) == 1797
    assert splits["train"].column_names == ["image", "label"]
    assert splits["train"].features["label"].names == [str(d) for d in range(10)]
    counts = np.bincount(splits["eval"]["label"], minlength=10)
    assert counts.min() >= 30  # every class in the carved split (≈36 each)


def test_parquet_folder_with_custom_columns_and_subsets(tmp_path):
    folder = _write_parquet(tmp_path)
    data_args = DataArguments(dataset=str(folder), image_column="img", label_column="fine_label", max_train_samples=16)
    splits = load_image_splits(data_args)
    assert len(splits["train"]) == 16 and len(splits["eval"]) == 10  # test.parquet is the eval split
    assert splits["eval"].features["label"].names == ["x", "y"]


def test_auto_detects_known_column_names(tmp_path):
    splits = load_image_splits(DataArguments(dataset=str(_write_parquet(tmp_path))))
    assert splits["train"].column_names == ["image", "label"]


def test_missing_column_lists_the_columns_that_exist(tmp_path):
    folder = _write_parquet(tmp_path)
    with pytest.raises(ValueError, match=r"no label column 'coarse'.*\['img', 'fine_label'\]"):
        load_image_splits(DataArguments(dataset=str(folder), label_column="coarse"))


def test_imagefolder_directory(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.new("RGB", (10, 10), color=(i * 40, 0, 0)).save(tmp_path / label / f"{i}.png")
    splits = load_image_splits(DataArguments(dataset=str(tmp_path), validation_fraction=0.4))
    assert splits["train"].features["label"].names == ["cat", "dog"]
    assert len(splits["train"]) == 6 and len(splits["eval"]) == 4


def test_missing_path_and_split_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_splits(DataArguments(dataset=str(tmp_path / "nope" / "data")))
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_image_splits(DataArguments(dataset="digits", eval_split="validation"))


def test_cifar_size_training_transform_pads_crops_and_flips():
    image = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    train = build_transform(CIFAR_CONFIG, training=True)
    evaluation = build_transform(CIFAR_CONFIG, training=False)
    torch.manual_seed(0)
    crops = torch.stack([train(image) for _ in range(8)])
    assert crops.shape == (8, 3, 32, 32)
    assert not all(torch.equal(crops[0], c) for c in crops[1:])  # random crop/flip
    torch.testing.assert_close(evaluation(image), evaluation(image))  # deterministic
    expected = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(evaluation(image), expected)


def test_imagenet_size_uses_timm_transforms():
    config = dict(CIFAR_CONFIG, input_size=(3, 96, 96), crop_pct=0.875)
    image = Image.new("RGB", (150, 120))
    assert build_transform(config, training=True)(image).shape == (3, 96, 96)
    assert build_transform(config, training=False)(image).shape == (3, 96, 96)


def test_grayscale_images_become_rgb_for_rgb_students():
    dataset = with_pixel_values(digits_dataset().select(range(4)), build_transform(CIFAR_CONFIG, training=False))
    item = dataset[0]
    assert item["pixel_values"].shape == (3, 32, 32) and int(item["labels"]) == 0
    gray = with_pixel_values(
        digits_dataset().select(range(2)),
        build_transform(dict(CIFAR_CONFIG, mean=(0.5,), std=(0.25,), input_size=(1, 16, 16)), training=False),
        in_chans=1,
    )
    assert gray[0]["pixel_values"].shape == (1, 16, 16)


def test_bad_data_arguments():
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        DataArguments(validation_fraction=1.5)
    with pytest.raises(ValueError, match="max_train_samples must be >= 1"):
        DataArguments(max_train_samples=0)


def test_batch_crop_flip_on_device_matches_pad_and_crop():
    from feed_hf.data.transforms import random_crop_flip

    torch.manual_seed(0)
    batch = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    crops = random_crop_flip(batch, padding=2, flip=False)
    assert crops.shape == batch.shape
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2), mode="reflect")
    for image in range(2):  # each crop is some 8×8 window of the reflect-padded image
        windows = padded[image].unfold(1, 8, 1).unfold(2, 8, 1)  # [C, 5, 5, 8, 8]
        assert any(torch.equal(windows[:, i, j], crops[image]) for i in range(5) for j in range(5))
    torch.manual_seed(1)
    flips = torch.stack([random_crop_flip(batch, padding=0, flip=True) for _ in range(20)])
    assert (flips == batch.flip(-1)).all(dim=(2, 3, 4)).any() and (flips == batch).all(dim=(2, 3, 4)).any()


def test_data_shapes_that_used_to_raise_tracebacks_are_one_line(tmp_path, capsys):
    from recipe_helpers import tiny_argv

    from feed_hf_cli import main

    (tmp_path / "good").mkdir()
    good = _write_parquet(tmp_path / "good")
    with pytest.raises(ValueError, match="image_column and label_column are both 'img'; one column cannot hold"):
        load_image_splits(DataArguments(dataset=str(good), image_column="img", label_column="img"))
    with pytest.raises(ValueError, match=r"its 40 training images cannot give a held-out part of validation_fraction"):
        load_image_splits(DataArguments(dataset=str(good / "train.parquet"), validation_fraction=0.01))
    (tmp_path / "empty").mkdir()
    folder = _write_parquet(tmp_path / "empty")
    empty = datasets.load_dataset("parquet", data_files=str(folder / "test.parquet"), split="train").select([])
    empty.to_parquet(str(folder / "test.parquet"))  # an eval split with no rows
    message = rf"dataset '{folder}': the eval split 'test' is empty \(test.parquet hold no rows\); choose a split"
    with pytest.raises(ValueError, match=message):
        load_image_splits(DataArguments(dataset=str(folder), image_column="img", label_column="fine_label"))
    argv = ["--baseline", "ce", "--dataset", str(folder), "--image_column", "img", "--label_column", "fine_label"]
    with pytest.raises(SystemExit) as exit_info:
        main(["baselines", *tiny_argv(tmp_path / "run", *argv)[2:]])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.startswith(f"feed-hf: error: dataset '{folder}': the eval split")
