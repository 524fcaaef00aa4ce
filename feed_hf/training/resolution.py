"""The student's input resolution, decided once from what the user asked for and what the data holds.

Order of precedence: an explicit `FeedConfig.input_size`; else the data's image size when it is clearly not the
student's timm cfg size (a Python-API train set's `pixel_values` are fed as they are, so their size is the input
size; a split of images smaller than the cfg size is not meant to be upsampled); else the cfg size. The decision
is written into the student's `pretrained_cfg`, with the eval preprocessing it implies
(`transforms.eval_preprocessing`): the teachers' probes, the data transforms and the export all read it from there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from timm.data import resolve_model_data_config
from timm.models import get_model_input_config
from torch import nn

from ..data.images import decode_image
from ..data.transforms import eval_preprocessing

__all__ = [
    "RESOLUTION_ATTRIBUTE",
    "image_split_size",
    "pixel_values_size",
    "resolve_student_input_size",
    "set_student_input_size",
]

logger = logging.getLogger(__name__)

# Set on the student once decided: {"from": what decided its input size}, for feed_config.json (feed_record.py).
RESOLUTION_ATTRIBUTE = "feed_hf_resolution"
# Recommendations of the source checkpoint that no longer describe the student once it runs at another size.
_STALE_CFG_KEYS = ("test_input_size", "test_crop_pct", "test_pool_size", "min_input_size")


def resolve_student_input_size(
    student: nn.Module,
    input_size: int | None,
    data_size: tuple[int, int] | None,
    data_source: str,
    data_is_fed_as_is: bool,
) -> tuple[int, int]:
    """Decide the student's H×W once and apply it (`set_student_input_size`); returns it.

    `data_size` is the H×W of the training data (None: unknown), read from `data_source` (named in messages).
    `data_is_fed_as_is`: the data are tensors the student receives unchanged (Python API), so an explicit
    `input_size` that differs from them is a contradiction; otherwise (images resized by the student's
    transforms) the data's size only wins over the cfg's when it is smaller.
    """
    cfg_size = tuple(resolve_model_data_config(student)["input_size"][1:])
    if input_size is not None:
        size = (input_size, input_size)
        if data_is_fed_as_is and data_size is not None and tuple(data_size) != size:
            raise ValueError(
                f"input_size={input_size} contradicts the data: {data_source} are {data_size[0]}×{data_size[1]} and "
                f"the student is fed them unchanged; make the dataset's transform produce {input_size}×{input_size} "
                "images, or leave input_size unset (the data's size is then used)"
            )
        decided = "input_size"
    elif _data_size_wins(data_size, cfg_size, data_is_fed_as_is):
        size, decided = tuple(data_size), data_source
        logger.warning(
            "student input size %d×%d, from %s (the student's timm cfg says %d×%d); set input_size to choose another",
            *size,
            data_source,
            *cfg_size,
        )
    else:
        # The cfg size is an earlier decision's when one was made (build_trainer decides before FeedTrainer).
        earlier = getattr(student, RESOLUTION_ATTRIBUTE, None) or {}
        size, decided = cfg_size, earlier.get("from", "the student's timm cfg")
        logger.info("student input size %d×%d, from %s", *size, decided)
    set_student_input_size(student, size)
    setattr(student, RESOLUTION_ATTRIBUTE, {"from": decided})
    return size


def _data_size_wins(data_size: tuple[int, int] | None, cfg_size: tuple[int, ...], fed_as_is: bool) -> bool:
    # Images the transforms resize: only a size below the cfg's is a signal (nobody means to upsample 32 px to 224).
    if data_size is None or tuple(data_size) == tuple(cfg_size):
        return False
    return fed_as_is or max(data_size) < min(cfg_size)


def set_student_input_size(student: nn.Module, size: tuple[int, int]) -> None:
    """Make `size` the student's input H×W, and its `pretrained_cfg` the eval preprocessing at that size.

    A model built for a fixed input size is resized with timm's `set_input_size` when it has one (ViTs resample
    their position embeddings); one that cannot be is refused with a line naming `input_size`.
    """
    size = (int(size[0]), int(size[1]))
    current = get_model_input_config(student)
    if current["fixed_input_size"] and tuple(current["input_size"][1:]) != size:
        if hasattr(student, "set_input_size"):
            student.set_input_size(img_size=size)
            current = get_model_input_config(student)
        if tuple(current["input_size"][1:]) != size:
            raise ValueError(
                f"input_size: the student ({type(student).__name__}) only accepts "
                f"{current['input_size'][1]}×{current['input_size'][2]} inputs and cannot run at {size[0]}×{size[1]}; "
                "set input_size to its size and resize the data to it, or pick a student without a fixed input size"
            )
    cfg = dict(getattr(student, "pretrained_cfg", None) or {})
    native = tuple(cfg.get("input_size", (3, *size))[1:])
    honest = {key: value for key, value in cfg.items() if key not in _STALE_CFG_KEYS}
    if native != size:
        honest.pop("pool_size", None)  # the pre-pool map of another input size
    honest.update(eval_preprocessing(cfg, size, int(current["input_size"][0])))
    student.pretrained_cfg = honest
    student.default_cfg = honest  # timm's alias of pretrained_cfg


def pixel_values_size(dataset: Any) -> tuple[int, int] | None:
    """H×W of the first item's `pixel_values` `[C, H, W]`; None when the dataset cannot be indexed or has none."""
    if dataset is None:
        return None
    try:
        item = dataset[0]
    except (TypeError, IndexError, KeyError, NotImplementedError, AttributeError):  # a stream, an empty set, …
        return None
    pixel_values = item.get("pixel_values") if isinstance(item, Mapping) else None
    shape = getattr(pixel_values, "shape", None)
    if shape is None or len(shape) != 3:
        return None
    return int(shape[-2]), int(shape[-1])


def image_split_size(split: Any, column: str = "image", samples: int = 16) -> tuple[int, int] | None:
    """The square size that holds the first `samples` images of a `datasets` split (their largest side)."""
    import datasets  # the data extra; a core import only where a split is given

    features = getattr(split, "features", None) or {}
    if column not in features or len(split) == 0:
        return None
    head = split.select(range(min(samples, len(split))))
    if isinstance(features[column], datasets.Image):
        head = head.cast_column(column, datasets.Image(decode=False))
    side = max(max(decode_image(value).size) for value in head[column])
    return side, side
