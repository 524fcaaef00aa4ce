"""Which Trainer checkpoints are complete, whether one was made by the same kind of run, and its files unchanged.

The Trainer writes checkpoint-N/ file by file, in place: a job killed mid-save leaves a folder that looks like a
checkpoint. A marker file, written last by a callback, says the save finished and records the run's signature
(student, connectors, teachers, feature taps), so that resuming another kind of run is refused by name instead
of loading mismatched tensors. It also records the SHA-256 of every file the save wrote that is not plain data
(`optimizer.pt`, `scheduler.pt`, `rng_state.pth`, `training_args.bin`, ...: pickles the Trainer unpickles on resume,
even with `weights_only=True`). Resuming checks them first: a pickle that the save did not write, or that changed
since, is refused by name before anything is read; one of a checkpoint that records no digests needs the
pickle opt-in (`teacher_allow_pickle`). The cost is one read of those files per save and per resume.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import safetensors
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..publishing.files import WEIGHTS_NAME, atomic_write_text
from .config.readouts import connector_options

__all__ = [
    "run_signature",
    "COMPLETE_MARKER",
    "CheckpointMarkerCallback",
    "check_checkpoint_files",
    "check_resume_compatible",
    "code_file_digests",
    "is_complete",
    "last_complete_checkpoint",
    "mark_complete",
]

COMPLETE_MARKER = "feed_checkpoint_complete.json"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_DATA_SUFFIXES = (".json", ".safetensors", ".txt", ".md")  # files that cannot run code when read


def mark_complete(checkpoint_dir: str | Path, global_step: int, signature: dict[str, Any]) -> None:
    payload = {"global_step": global_step, "signature": signature, "files": code_file_digests(checkpoint_dir)}
    atomic_write_text(Path(checkpoint_dir) / COMPLETE_MARKER, json.dumps(payload, indent=2, default=str))


def code_file_digests(folder: str | Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` that is not plain data (pickles and unknown formats), by relative path."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != COMPLETE_MARKER and not path.name.endswith(_DATA_SUFFIXES)
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


class CheckpointMarkerCallback(TrainerCallback):
    """Writes the completion marker after the Trainer has written everything else of a checkpoint."""

    def __init__(self, signature: dict[str, Any]) -> None:
        self.signature = signature

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001 (the TrainerCallback signature)
        if args.world_size > 1:  # every rank has written its files (rng_state_<rank>.pth) before they are digested
            args.distributed_state.wait_for_everyone()
        if args.should_save:
            checkpoint_dir = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if checkpoint_dir.is_dir():
                mark_complete(checkpoint_dir, state.global_step, self.signature)
        return control


def check_resume_compatible(
    checkpoint: str | Path, signature: dict[str, Any], state_shapes: dict[str, list], allow_pickle: bool = False
) -> None:
    """Refuse, naming what changed, a checkpoint of another student, connector layout, teachers or taps, or one
    whose pickles are not the ones its save wrote (`check_checkpoint_files`)."""
    checkpoint = Path(checkpoint)
    if not is_complete(checkpoint):
        previous = last_complete_checkpoint(checkpoint.parent)
        raise ValueError(
            f"checkpoint {checkpoint} is incomplete (its save was interrupted); resume from "
            + (f"{previous}" if previous else "scratch: no complete checkpoint exists")
        )
    marker = json.loads((checkpoint / COMPLETE_MARKER).read_text())
    check_checkpoint_files(checkpoint, marker.get("files"), allow_pickle)
    recorded = marker.get("signature") or {}
    changes = [
        f"{key}: {recorded[key]!r} in the checkpoint, {value!r} now"
        for key, value in signature.items()
        if key in recorded and _comparable(recorded[key]) != _comparable(value)
    ]
    changes += _tensor_changes(checkpoint / WEIGHTS_NAME, state_shapes)
    if changes:
        raise ValueError(
            f"cannot resume from {checkpoint}: it was made by another run ({'; '.join(changes[:4])}"
            f"{f'; and {len(changes) - 4} more' if len(changes) > 4 else ''}). Resume with the same student, "
            "connectors and teachers, or start a new output_dir."
        )


def check_checkpoint_files(checkpoint: Path, recorded: dict[str, str] | None, allow_pickle: bool) -> None:
    """Every pickle (or unknown file) in `checkpoint` is one its save wrote, unchanged; else refused by name."""
    found = code_file_digests(checkpoint)
    if recorded is None:  # a marker of an older feed-hf: nothing to compare with
        if found and not allow_pickle:
            raise ValueError(
                f"cannot resume from {checkpoint}: it records no digests of its files (an older feed-hf), and resuming "
                f"would unpickle {sorted(found)} unchecked; set teacher_allow_pickle=True to trust them, or start a "
                "new output_dir"
            )
        return
    for name, digest in found.items():
        if name not in recorded:
            raise ValueError(
                f"cannot resume from {checkpoint}: it holds {name}, which its save did not write (not in "
                f"{COMPLETE_MARKER}), and the Trainer could unpickle it; delete that file, or resume from a "
                "checkpoint as feed-hf saved it"
            )
        if digest != recorded[name]:
            raise ValueError(
                f"cannot resume from {checkpoint}: {name} differs from the file its save wrote (SHA-256 "
                f"{digest[:12]}…, recorded {recorded[name][:12]}…), and the Trainer would unpickle it; restore it, "
                "or resume from another checkpoint"
            )


def _comparable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))  # tuples and lists alike, as the marker stores them


def _tensor_changes(weights: Path, state_shapes: dict[str, list]) -> list[str]:
    if not weights.is_file():
        return []  # the Trainer reports a checkpoint without weights itself
    with safetensors.safe_open(str(weights), framework="pt") as handle:
        saved = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    changes = [f"tensor {key} is missing from the checkpoint" for key in state_shapes if key not in saved]
    changes += [f"tensor {key} is not in this run's model" for key in saved if key not in state_shapes]
    changes += [
        f"tensor {key} has shape {saved[key]} in the checkpoint, {state_shapes[key]} now"
        for key in state_shapes
        if key in saved and saved[key] != list(state_shapes[key])
    ]
    return changes


def run_signature(feed_student: Any, args: Any, teachers: Any) -> dict[str, Any]:
    """What a checkpoint of a run records, so that resuming another kind of run is refused by name."""
    return {
        "student": feed_student.student.pretrained_cfg.get("architecture", type(feed_student.student).__name__),
        "num_classes": getattr(feed_student.student, "num_classes", None),
        "student_feature": [args.student_feature_index, args.student_feature_module],
        "connector": connector_options(args),
        "teachers": [teacher.name for teacher in teachers],
        "teacher_feature_shapes": [list(teacher.feature_shape) for teacher in teachers],
    }
