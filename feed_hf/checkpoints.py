"""Which Trainer checkpoints are complete: a marker written after everything else, and the lookup that uses it."""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["COMPLETE_MARKER", "is_complete", "last_complete_checkpoint", "mark_complete"]

# The Trainer writes checkpoint-N/ file by file, in place: a job killed mid-save leaves a folder that
# looks like a checkpoint. This file is written last; a folder without it is never resumed from.
COMPLETE_MARKER = "feed_checkpoint_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint_dir: str | Path, global_step: int, num_connectors: int) -> None:
    path = Path(checkpoint_dir) / COMPLETE_MARKER
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps({"global_step": global_step, "num_connectors": num_connectors}))
    staging.replace(path)


def is_complete(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / COMPLETE_MARKER).is_file()


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest-step checkpoint-N under `output_dir` whose save finished, or None."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = sorted(
        (int(match.group(1)), child)
        for child in folder.iterdir()
        if (match := _CHECKPOINT.match(child.name)) and child.is_dir() and is_complete(child)
    )
    return str(steps[-1][1]) if steps else None
