"""Early checks of a FEED run's inputs: each fails in seconds with a message that says what to do."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import safetensors
from torch import nn

__all__ = ["check_checkpoint_connectors", "check_labels_fit", "check_not_empty", "check_output_dir"]


def check_checkpoint_connectors(checkpoint: str, expected: int) -> None:
    weights = Path(checkpoint) / "model.safetensors"
    if not weights.is_file():
        return  # the Trainer reports a checkpoint without weights itself
    with safetensors.safe_open(str(weights), framework="pt") as handle:
        indices = {int(key.split(".")[1]) for key in handle.keys() if key.startswith("connectors.")}
    if len(indices) != expected:
        raise ValueError(
            f"checkpoint {checkpoint} was trained with {len(indices)} teacher connector(s), this run has {expected} "
            "teacher(s) with FEED. Resume with the same teachers, or start a new output_dir."
        )


def check_labels_fit(class_names: list[str] | None, student: nn.Module) -> None:
    num_classes = getattr(student, "num_classes", None)
    if class_names and num_classes is not None and len(class_names) > num_classes:
        raise ValueError(
            f"the training set has {len(class_names)} classes (labels 0..{len(class_names) - 1}) but the student has "
            f"num_labels={num_classes}; set num_labels to {len(class_names)} (or leave it unset to use the data's)"
        )


def check_output_dir(output_dir: str) -> None:
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"output_dir {output_dir!r} is not a writable folder ({error}); choose another") from None


def check_not_empty(dataset: Any) -> None:
    if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:
        raise ValueError("train_dataset is empty: check the dataset path, split and max_train_samples")
