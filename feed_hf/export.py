"""Student-only export in timm's Hub format, readable by timm and by transformers' TimmWrapper."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import safetensors.torch
from timm.models import save_for_hf
from torch import nn

__all__ = ["CONNECTORS_NAME", "FEED_CONFIG_NAME", "export_student"]

FEED_CONFIG_NAME = "feed_config.json"
# Kept beside the student for analysis and warm starts; timm and transformers never read it, and
# pushes leave it out unless asked.
CONNECTORS_NAME = "feed_connectors.safetensors"
# Replaced one at a time; the weights go in last so an interrupted export never pairs new weights
# with a config that does not describe them.
_EXPORT_ORDER = (FEED_CONFIG_NAME, "config.json", "model.safetensors")


def export_student(
    student: nn.Module,
    output_dir: str | os.PathLike,
    feed_config: dict[str, Any],
    label_names: list[str] | None = None,
    connectors: nn.Module | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` (timm format) + `feed_config.json` into `output_dir`.

    config.json's `pretrained_cfg` is also what transformers' TimmWrapperImageProcessor (and so
    `pipeline("image-classification")`) preprocesses with: one source of truth for resize/normalise.

    `connectors`, when given and non-empty, go to a separate `feed_connectors.safetensors`: the
    student's weights file never holds connector or teacher tensors.

    The files are written in a temporary folder beside `output_dir` and moved in by atomic renames,
    so a save interrupted half-way leaves the previous export (or nothing), never a partial file.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=output_dir))
    try:
        model_config = {"label_names": list(label_names)} if label_names else None
        save_for_hf(student, staging, model_config=model_config, safe_serialization=True)
        _drop_num_classes_model_arg(staging / "config.json")
        (staging / FEED_CONFIG_NAME).write_text(json.dumps(feed_config, indent=2, default=str))
        names = list(_EXPORT_ORDER)
        if connectors is not None and len(connectors):
            safetensors.torch.save_file(
                {k: v.contiguous() for k, v in connectors.state_dict().items()}, staging / CONNECTORS_NAME
            )
            names.insert(0, CONNECTORS_NAME)
        for name in names:
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def _drop_num_classes_model_arg(config_path: Path) -> None:
    # timm records num_classes twice (root and model_args); transformers' TimmWrapper passes both and
    # fails with "got multiple values for keyword argument 'num_classes'". The root value suffices.
    config = json.loads(config_path.read_text())
    model_args = config.get("model_args", {})
    model_args.pop("num_classes", None)
    if not model_args:
        config.pop("model_args", None)
    config_path.write_text(json.dumps(config, indent=2))
