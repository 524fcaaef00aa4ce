"""Student-only export in timm's Hub format, readable by timm and by transformers' TimmWrapper, replaced as a whole.

Layout of an export folder (POSIX; the files a user or timm opens are at its top):

    OUTPUT_DIR/config.json        -> .feed-export/current/config.json
    OUTPUT_DIR/model.safetensors  -> .feed-export/current/model.safetensors
    ... (feed_config.json, feed_connectors.safetensors, results.json, README.md alike)
    OUTPUT_DIR/.feed-export/current -> v-<n>          the one link that says which version is the export
    OUTPUT_DIR/.feed-export/v-<n>/                    one complete export

A new export is written into a new version folder, then `current` is replaced by one atomic rename: a kill at any
moment leaves either the previous export or the new one, never a config of one beside the weights of the other.
Stale versions and half-written ones are removed by the next export. Where symbolic links are not available
(some Windows set-ups), files are replaced one by one instead (logged).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from timm.data import resolve_model_data_config
from timm.models import save_for_hf
from torch import nn

from .files import (
    CONNECTORS_NAME,
    EXPORT_FILE_NAMES,
    FEED_CONFIG_NAME,
    MODEL_CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_write_text,
)

__all__ = ["CONNECTORS_NAME", "FEED_CONFIG_NAME", "VERSIONS_DIR", "export_student", "has_export", "write_export_file"]

logger = logging.getLogger(__name__)

VERSIONS_DIR = ".feed-export"
_CURRENT = "current"
_PARTIAL_SUFFIX = ".partial"
_LEGACY_STAGING_PREFIX = ".export-"  # staging folders of feed-hf 0.1 exports
# The pretrained_cfg keys an export keeps (plus first_conv/classifier when true): what a pipeline user needs.
_TRUE_CFG_KEYS = (
    "input_size",
    "fixed_input_size",
    "interpolation",
    "crop_pct",
    "crop_mode",
    "mean",
    "std",
    "num_classes",
    "custom_load",
    "label_names",
    "label_descriptions",
)


def export_student(
    student: nn.Module,
    output_dir: str | os.PathLike,
    feed_config: dict[str, Any],
    label_names: list[str] | None = None,
    connectors: nn.Module | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` (timm format) + `feed_config.json` as the export of `output_dir`.

    config.json's `pretrained_cfg` is also what transformers' TimmWrapperImageProcessor (and so
    `pipeline("image-classification")`) preprocesses with: one source of truth for resize/normalise.
    `connectors`, when given and non-empty, go to a separate `feed_connectors.safetensors`: the student's
    weights file never holds connector or teacher tensors. The previous export's results.json and README.md
    go with it: they described another model.
    """
    output_dir = Path(output_dir)
    versions = output_dir / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    _remove_stale(output_dir)
    _adopt_plain_export(output_dir)
    staging = versions / f"v-{time.time_ns()}-{uuid.uuid4().hex[:8]}{_PARTIAL_SUFFIX}"
    staging.mkdir()
    _write_student_files(staging, student, feed_config, label_names, connectors)
    version = staging.with_name(staging.name.removesuffix(_PARTIAL_SUFFIX))
    os.replace(staging, version)
    _fsync_dir(versions)
    if not _switch_current(output_dir, version):
        _replace_files_one_by_one(output_dir, version)
        return output_dir
    _link_top_level_files(output_dir)
    _remove_stale(output_dir)
    return output_dir


def has_export(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds an exported model (its config and weights)."""
    folder = Path(folder)
    return (folder / MODEL_CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def write_export_file(export_dir: str | os.PathLike, name: str, text: str) -> Path:
    """Add or replace one text file (results.json, README.md) of the current export, atomically."""
    export_dir = Path(export_dir)
    current = export_dir / VERSIONS_DIR / _CURRENT
    if not current.is_dir():  # not a versioned export (e.g. a push staging folder): a plain file
        return atomic_write_text(export_dir / name, text)
    atomic_write_text(current / name, text)
    _link(export_dir / name, f"{VERSIONS_DIR}/{_CURRENT}/{name}")
    return export_dir / name


def _write_student_files(
    folder: Path, student: nn.Module, feed_config: dict, label_names: list[str] | None, connectors: nn.Module | None
) -> None:
    model_config = {"label_names": list(label_names)} if label_names else None
    # The eval preprocessing training used (the student's cfg, as feed_hf.resolution decided it) replaces the
    # source checkpoint's test-time recommendations: pipeline() then preprocesses exactly as evaluation did.
    data_config = resolve_model_data_config(student)
    save_for_hf(student, folder, model_config=model_config, safe_serialization=True, data_config=data_config)
    _drop_num_classes_model_arg(folder / MODEL_CONFIG_NAME)
    _keep_true_pretrained_cfg(folder / MODEL_CONFIG_NAME, student)
    (folder / FEED_CONFIG_NAME).write_text(json.dumps(feed_config, indent=2, default=str))
    if connectors is not None and len(connectors):
        state = {key: value.contiguous() for key, value in connectors.state_dict().items()}
        safetensors.torch.save_file(state, folder / CONNECTORS_NAME)
    for file in folder.iterdir():  # durable before the switch makes them the export
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _keep_true_pretrained_cfg(config_path: Path, student: nn.Module) -> None:
    """config.json's `pretrained_cfg` reduced to what is true of this student: its eval preprocessing, its classes,
    and `first_conv`/`classifier` only when those modules exist with weights. A source checkpoint's tag, Hub id,
    URL, pool size, licence and papers described other weights."""
    config = json.loads(config_path.read_text())
    source = config.get("pretrained_cfg", {})
    kept = {key: source[key] for key in _TRUE_CFG_KEYS if key in source}
    modules = dict(student.named_modules())
    for key in ("first_conv", "classifier"):
        names = source.get(key)
        names_list = [names] if isinstance(names, str) else list(names or [])
        if names_list and all(isinstance(getattr(modules.get(n), "weight", None), torch.Tensor) for n in names_list):
            kept[key] = names
    config["pretrained_cfg"] = kept
    config_path.write_text(json.dumps(config, indent=2))


def _switch_current(output_dir: Path, version: Path) -> bool:
    """The commit point: one rename makes `version` the export. False where links are unavailable."""
    versions = output_dir / VERSIONS_DIR
    pending = versions / f"{_CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.symlink(version.name, pending, target_is_directory=True)
    except (OSError, NotImplementedError) as error:
        logger.warning("no symbolic links here (%s): export files are replaced one by one", error)
        return False
    os.replace(pending, versions / _CURRENT)
    _fsync_dir(versions)
    return True


def _link_top_level_files(output_dir: Path) -> None:
    current = output_dir / VERSIONS_DIR / _CURRENT
    for name in EXPORT_FILE_NAMES:
        top_level = output_dir / name
        if (current / name).exists():
            _link(top_level, f"{VERSIONS_DIR}/{_CURRENT}/{name}")
        elif top_level.is_symlink() and not top_level.exists():  # a file the new version does not have
            top_level.unlink()


def _link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    pending = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(target, pending)
    os.replace(pending, path)  # a plain file of the same name (an older export) is replaced in one step


def _adopt_plain_export(output_dir: Path) -> None:
    """Turn an export of plain top-level files into version 0, each file's content unchanged at every moment."""
    plain = [
        name for name in EXPORT_FILE_NAMES if (output_dir / name).is_file() and not (output_dir / name).is_symlink()
    ]
    if not plain or (output_dir / VERSIONS_DIR / _CURRENT).is_dir():
        return
    adopted = output_dir / VERSIONS_DIR / "v-0"
    adopted.mkdir(exist_ok=True)
    for name in plain:
        shutil.copy2(output_dir / name, adopted / name)
    if _switch_current(output_dir, adopted):
        _link_top_level_files(output_dir)


def _remove_stale(output_dir: Path) -> None:
    """Versions other than the current one, interrupted exports, and 0.1-style staging folders."""
    versions = output_dir / VERSIONS_DIR
    current = versions / _CURRENT
    keep = os.readlink(current) if current.is_symlink() else None
    for child in versions.iterdir():
        if child.name == _CURRENT or child.name == keep:
            continue
        if child.is_symlink() or child.is_file():
            child.unlink()
        else:
            shutil.rmtree(child, ignore_errors=True)
    for child in output_dir.glob(f"{_LEGACY_STAGING_PREFIX}*"):
        shutil.rmtree(child, ignore_errors=True)
    for child in output_dir.glob(".*.tmp"):  # links or files of a write cut short
        if child.is_symlink() or child.is_file():
            child.unlink()


def _replace_files_one_by_one(output_dir: Path, version: Path) -> None:
    for name in EXPORT_FILE_NAMES:
        if (version / name).is_file():
            os.replace(version / name, output_dir / name)
        elif name not in (MODEL_CONFIG_NAME, WEIGHTS_NAME, FEED_CONFIG_NAME):  # what the new export lacks
            (output_dir / name).unlink(missing_ok=True)
    shutil.rmtree(version, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the renames are still atomic
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _drop_num_classes_model_arg(config_path: Path) -> None:
    # timm records num_classes twice (root and model_args); transformers' TimmWrapper passes both and
    # fails with "got multiple values for keyword argument 'num_classes'". The root value suffices.
    config = json.loads(config_path.read_text())
    model_args = config.get("model_args", {})
    model_args.pop("num_classes", None)
    if not model_args:
        config.pop("model_args", None)
    config_path.write_text(json.dumps(config, indent=2))
