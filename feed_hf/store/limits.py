"""What a teacher store may cost: a bound on its views, and its size checked against the disk before it is built.

- **Views.** A view is one draw of (crop top, crop left, flip) by `random_crop_flip`: with padding p there are
  (2p + 1)² crop positions, times 2 with flips. More views than that only store the same crops again (162 for
  CIFAR's p = 4 with flips), so `teacher_store_views` is refused above it: the bound follows from the augmentation,
  it is not a guess at what a disk holds (the size check below is that).
- **Size.** The bytes of every shard (header, maps, logits, recorded crops) and of its checksums are known before
  the first teacher forward (`store_files.safetensors_layout`); they are logged and checked against the free space
  of the disk that will hold the store, refused in one line naming the size, the free space and what to lower.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

__all__ = ["StoreSpaceError", "check_free_space", "check_store_views", "distinct_views", "human_bytes"]

logger = logging.getLogger(__name__)
HEADROOM_BYTES = 1 << 20  # left free beyond the estimate: the manifest, the lock file, rounding to blocks


class StoreSpaceError(ValueError):
    """A teacher store that does not fit on its disk (before the build, or when the disk fills during it)."""


def distinct_views(augmentation: str, padding: int) -> int:
    """How many different views `batch_augmentation` with `padding` can draw: (2p + 1)² crops, × 2 with flips."""
    if augmentation == "none":
        return 1
    return (2 * padding + 1) ** 2 * (2 if augmentation == "crop_flip" else 1)


def check_store_views(views: int, augmentation: str, padding: int) -> None:
    """Refuse `teacher_store_views` below 1 or above the distinct views the augmentation can draw."""
    if views < 1:
        raise ValueError(f"teacher_store_views must be >= 1, got {views}")
    limit = distinct_views(augmentation, padding)
    if views > limit:
        flips = " × 2 flips" if augmentation == "crop_flip" else ""
        raise ValueError(
            f"teacher_store_views={views} is more than the {limit} distinct views batch_augmentation="
            f"{augmentation!r} with padding {padding} can draw ((2·{padding}+1)² crop positions{flips}); more "
            f"views would store the same crops again. Set teacher_store_views to at most {limit}"
        )


def human_bytes(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_free_space(target: Path, needed: int, what: str, lowering: str) -> None:
    """Log the store's size; refuse it when the disk holding `target` has less than `needed` (+ headroom) free.

    `what` describes the store ("512 images × 8 views × 3 teachers"); `lowering` names what the user can lower.
    """
    disk = _existing_ancestor(target)
    free = shutil.disk_usage(disk).free
    logger.info("teacher store %s: %s, %s (%s free on %s)", target, what, human_bytes(needed), human_bytes(free), disk)
    if needed + HEADROOM_BYTES > free:
        raise StoreSpaceError(
            f"the teacher store needs {human_bytes(needed)} ({what}) but {disk} has {human_bytes(free)} free; "
            f"lower {lowering}, free space there, or point teacher_store_dir at a larger disk"
        )
