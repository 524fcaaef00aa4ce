"""The names of the files a FEED export holds, and the one way feed-hf writes a small file atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = [
    "CARD_NAME",
    "CONNECTORS_NAME",
    "EXPORT_FILE_NAMES",
    "LOCAL_DIR",
    "LOCAL_ONLY_NAMES",
    "FEED_CONFIG_NAME",
    "LOCAL_SOURCES_NAME",
    "MODEL_CONFIG_NAME",
    "RESULTS_NAME",
    "WEIGHTS_NAME",
    "atomic_write_text",
]

MODEL_CONFIG_NAME = "config.json"  # timm's Hub format: architecture, classes, preprocessing
WEIGHTS_NAME = "model.safetensors"
FEED_CONFIG_NAME = "feed_config.json"  # the FEED settings and teachers the student was trained with
# Kept with the student for analysis and warm starts (`export.export_file`); timm and transformers never read it,
# and pushes leave it out unless asked.
CONNECTORS_NAME = "feed_connectors.safetensors"
RESULTS_NAME = "results.json"  # the run's record; its presence marks a finished run
CARD_NAME = "README.md"
# This machine's paths of the teachers and data, for local tools (analysis); never pushed.
LOCAL_SOURCES_NAME = "local_sources.json"
# What must stay on this machine lives under this folder of output_dir: huggingface_hub's `upload_folder` (and so
# `hf upload`) never takes `.cache/huggingface/`, so a plain upload of an output folder publishes the export alone.
LOCAL_DIR = ".cache/huggingface/feed-hf"
# Files of an export kept only in its version folder (under LOCAL_DIR), never linked at the top of output_dir: the
# connectors (they leave the machine only with push_connectors) and this machine's paths.
LOCAL_ONLY_NAMES = (CONNECTORS_NAME, LOCAL_SOURCES_NAME)
# Everything that describes one exported model: replaced together, never one without the others.
EXPORT_FILE_NAMES = (
    MODEL_CONFIG_NAME,
    WEIGHTS_NAME,
    FEED_CONFIG_NAME,
    CONNECTORS_NAME,
    RESULTS_NAME,
    CARD_NAME,
    LOCAL_SOURCES_NAME,
)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary file and one rename: readers see the old or the new file.

    A symbolic link (an export file, see `export.py`) is written through: its target is replaced, the link kept.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path
