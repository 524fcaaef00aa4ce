"""Images as they come: decoding stored images, and converting any PIL mode to the model's 8-bit mode.

Mode rule (`to_model_mode`), applied before every model sees an image:

- 16-bit greyscale (`I;16`, `I;16B`, `I;16L`, `I;16N`): value / 257, so 65535 → 255 (PIL's own
  `convert` clips at 255: a 16-bit image becomes all white).
- 32-bit integer `I`: taken as 8-bit when its maximum is <= 255, as 16-bit (/ 257) when it is
  <= 65535, else scaled by its own maximum. Negative values become 0.
- 32-bit float `F`: taken as [0, 1] (× 255) when its maximum is <= 1, else as [0, 255]; values
  outside are clipped and NaN becomes 0.
- Anything with transparency (`RGBA`, `LA`, `PA`, `P` or `L`/`RGB` with a transparent colour) is
  composited onto white (`TRANSPARENT_BACKGROUND`): dropping alpha instead shows the colour stored
  under transparent pixels, often black, which turns dark-on-transparent drawings all black.
- Everything else (`1`, `P`, `L`, `RGB`, `CMYK`, `YCbCr`, `LAB`, …) goes through PIL's `convert`.
"""

from __future__ import annotations

import io
from typing import Any

import datasets
import numpy as np
from PIL import Image

__all__ = [
    "TRANSPARENT_BACKGROUND",
    "UndecodableImageError",
    "decode_image",
    "to_model_mode",
    "undecodable_rows",
]

TRANSPARENT_BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_CHECK_BATCH_SIZE = 1000


class UndecodableImageError(ValueError):
    """A stored image that PIL cannot decode (empty, truncated or not an image)."""


def to_model_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` as an 8-bit `mode` ("RGB" or "L") image, scaled per the module's mode rule."""
    if mode not in ("RGB", "L"):
        raise ValueError(f"to_model_mode: mode must be 'RGB' or 'L', got {mode!r}")
    if image.mode == mode:
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        image = _to_eight_bit(image)
    elif image.mode in _ALPHA_MODES or "transparency" in image.info:
        image = _onto_background(image)
    return image if image.mode == mode else image.convert(mode)


def _to_eight_bit(image: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    peak = float(values.max()) if values.size else 0.0
    if image.mode == "F":
        scale = 255.0 if peak <= 1 else 1.0
    elif image.mode in _SIXTEEN_BIT_MODES or 255 < peak <= 65535:
        scale = 255.0 / 65535.0
    else:  # "I" that fits 8 bits, or beyond 16 bits
        scale = 1.0 if peak <= 255 else 255.0 / peak
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))


def _onto_background(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def decode_image(value: Any) -> Image.Image:
    """A loaded PIL image from what a `datasets.Image` column stores: `{"bytes", "path"}`, a PIL image or an array.

    Raises `UndecodableImageError` (a ValueError) naming the image and the `undecodable_images`
    policy, instead of PIL's bare traceback in the middle of training.
    """
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    try:
        return datasets.Image().decode_example(value)
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... for bad bytes
        raise UndecodableImageError(
            f"cannot decode the image {_describe(value)} ({type(error).__name__}: {error}); fix or remove it, "
            "or load the data with undecodable_images='skip' (--undecodable_images skip) to drop such images "
            "before training"
        ) from error


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        if value.get("path"):
            return repr(value["path"])
        return f"of {len(value.get('bytes') or b'')} bytes"
    return f"of type {type(value).__name__}"


def undecodable_rows(split: datasets.Dataset, column: str = "image") -> list[int]:
    """Indices of the rows of `split` whose image does not decode, checked from the stored bytes in batches."""
    if not isinstance(split.features[column], datasets.Image):
        return []  # arrays and other non-encoded columns have nothing to decode
    stored = split.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    flags = stored.map(
        _decodable_batch,
        batched=True,
        batch_size=_CHECK_BATCH_SIZE,
        input_columns=column,
        remove_columns=[column],
        # A bool per row: cached beside a dataset that has cache files, so the other ranks of a run (which load the
        # data after the main process, `main_process_first`) read the result instead of decoding again.
        keep_in_memory=not split.cache_files,
        desc="Checking that every image decodes",
    )
    return np.flatnonzero(~np.asarray(flags["decodes"], dtype=bool)).tolist()


def _decodable_batch(values: list[Any]) -> dict[str, list[bool]]:
    return {"decodes": [_decodes(value) for value in values]}


def _decodes(value: Any) -> bool:
    try:
        if isinstance(value, dict) and value.get("bytes") is not None:
            image = Image.open(io.BytesIO(value["bytes"]))
            # JPEGs decode at 1/8 scale: every entropy-coded byte is still read (a truncated file
            # still fails) at a fraction of the cost. Other formats ignore draft().
            image.draft(None, (1, 1))
            image.load()
        else:
            decode_image(value)
        return True
    except Exception:  # any failure to decode is what is being checked for
        return False
