"""Images as they come: every PIL mode scaled to 8 bits, undecodable images caught before training."""

import io
import logging

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from feed_hf.data.images import UndecodableImageError, to_model_mode
from feed_hf.data.loading import DataArguments, load_image_splits
from feed_hf.data.transforms import build_transform, with_pixel_values

IDENTITY_CONFIG = {"input_size": (3, 16, 16), "mean": (0.0,) * 3, "std": (1.0,) * 3}  # tensor = grey level / 255
GRADIENT_16 = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)


def _encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def _image_split(values: list) -> datasets.Dataset:
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"]))
    rows = [{"bytes": value, "path": None} if isinstance(value, bytes) else value for value in values]
    return datasets.Dataset.from_dict({"image": rows, "label": [i % 2 for i in range(len(values))]}, features=features)


def test_sixteen_bit_png_is_scaled_not_saturated():
    png = _encoded(Image.fromarray(GRADIENT_16))
    assert Image.open(io.BytesIO(png)).mode.startswith("I;16")  # a real 16-bit PNG
    eight_bit = np.rint(GRADIENT_16 / 257).astype(np.uint8)
    grey_config = {"input_size": (1, 16, 16), "mean": (0.0,), "std": (1.0,)}
    for in_chans, config in ((3, IDENTITY_CONFIG), (1, grey_config)):
        transform = build_transform(config, training=False)
        pixels = with_pixel_values(_image_split([png]), transform, in_chans)[0]["pixel_values"]
        expected = transform(Image.fromarray(eight_bit).convert("RGB" if in_chans == 3 else "L"))
        assert pixels.shape == (in_chans, 16, 16)
        assert (pixels < 0.5).float().mean() > 0.4  # the old convert("RGB") made all but the first row white
        torch.testing.assert_close(pixels, expected, atol=1 / 255 + 1e-6, rtol=0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([[0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),  # F in [0, 1]
        (np.array([[0, 100.0, 255.0, 300.0, -3.0]], dtype=np.float32), [0, 100, 255, 255, 0]),  # F in [0, 255]
        (np.array([[0, 100, 255]], dtype=np.int32), [0, 100, 255]),  # I within 8 bits
        (np.array([[0, 257 * 100, 65535]], dtype=np.int32), [0, 100, 255]),  # I holding 16-bit values
    ],
    ids=["F-unit", "F-255", "I-8bit", "I-16bit"],
)
def test_integer_and_float_modes_follow_the_documented_rule(values, expected):
    image = Image.fromarray(values)
    assert image.mode in ("F", "I")
    assert np.asarray(to_model_mode(image, "L"))[0].tolist() == expected
    assert np.asarray(to_model_mode(image, "RGB"))[0, :, 1].tolist() == expected


def test_modes_with_transparency_palette_and_other_colour_spaces():
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0  # index 0 (black) is transparent → white background
    assert np.asarray(to_model_mode(palette, "RGB")).tolist() == [[[255, 255, 255], [200, 10, 10]]]
    drawing = Image.new("LA", (2, 1), (0, 0))  # dark-on-transparent: the transparent pixel must not be black
    drawing.putpixel((1, 0), (0, 255))
    assert np.asarray(to_model_mode(drawing, "L")).tolist() == [[255, 0]]
    assert to_model_mode(Image.new("RGBA", (2, 2), (10, 20, 30, 255)), "RGB").getpixel((0, 0)) == (10, 20, 30)
    for mode in ("1", "CMYK", "YCbCr", "L", "RGB"):
        image = Image.new("RGB", (3, 3), (40, 120, 200)).convert(mode)
        assert to_model_mode(image, "RGB").tobytes() == image.convert("RGB").tobytes()
        assert to_model_mode(image, "L").mode == "L"


def _bad_images() -> dict[int, bytes]:
    jpeg = _encoded(Image.fromarray(np.full((16, 16, 3), 90, np.uint8)), "JPEG")
    png = _encoded(Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)))
    return {1: b"", 4: jpeg[: len(jpeg) // 2], 5: png[: len(png) // 2], 7: b"not an image at all"}


def _write_with_bad_images(folder) -> None:
    good = _encoded(Image.new("RGB", (8, 8), (1, 2, 3)))
    bad = _bad_images()
    _image_split([bad.get(row, good) for row in range(10)]).to_parquet(str(folder / "train.parquet"))
    _image_split([good] * 4).to_parquet(str(folder / "test.parquet"))


def test_undecodable_images_stop_the_run_before_training_naming_the_rows(tmp_path):
    _write_with_bad_images(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"split 'train' has 4 image\(s\) that cannot be decoded .*rows \[1, 4, 5, 7\].*--undecodable_images skip",
    ):
        load_image_splits(DataArguments(dataset=str(tmp_path)))


def test_undecodable_images_can_be_skipped_and_are_counted(tmp_path, caplog):
    _write_with_bad_images(tmp_path)
    with caplog.at_level(logging.WARNING, logger="feed_hf.data.loading"):
        splits = load_image_splits(DataArguments(dataset=str(tmp_path), undecodable_images="skip"))
    assert len(splits["train"]) == 6 and len(splits["eval"]) == 4
    assert splits.skipped_images == {"train": 4, "test": 0}
    assert "skipping 4 undecodable image(s)" in caplog.text
    transform = build_transform(IDENTITY_CONFIG, training=False)
    assert with_pixel_values(splits["train"], transform)[:6]["pixel_values"][0].shape == (3, 16, 16)


def test_undecodable_file_in_an_imagefolder_is_found(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (6, 6), (i * 40, 0, 0)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "dog" / "1.png").write_bytes(b"")  # a zero-byte file
    with pytest.raises(ValueError, match=r"has 1 image\(s\) that cannot be decoded"):
        load_image_splits(DataArguments(dataset=str(tmp_path)))


def test_an_image_that_fails_during_training_names_the_policy():
    good = _encoded(Image.new("RGB", (8, 8)))
    dataset = with_pixel_values(_image_split([good, b"\x89PNG garbage"]), build_transform(IDENTITY_CONFIG, False))
    assert dataset[0]["pixel_values"].shape == (3, 16, 16)
    with pytest.raises(UndecodableImageError, match=r"cannot decode the image of 12 bytes .*undecodable_images='skip'"):
        dataset[1]


def test_images_stored_as_arrays_still_load(tmp_path):
    arrays = [np.full((5, 5, 3), shade, np.uint8) for shade in (0, 100, 200, 250)]
    datasets.Dataset.from_dict({"image": arrays, "label": [0, 1, 0, 1]}).save_to_disk(str(tmp_path / "saved"))
    splits = load_image_splits(DataArguments(dataset=str(tmp_path / "saved"), validation_fraction=0.5))
    assert len(splits["train"]) + len(splits["eval"]) == 4
    item = with_pixel_values(splits["train"], build_transform(IDENTITY_CONFIG, training=False))[0]
    assert item["pixel_values"].shape == (3, 16, 16)


def test_undecodable_policy_is_checked():
    with pytest.raises(ValueError, match="undecodable_images must be 'error' or 'skip', got 'ignore'"):
        DataArguments(undecodable_images="ignore")
