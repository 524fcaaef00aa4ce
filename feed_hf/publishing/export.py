"""Student-only export in timm's Hub format, readable by timm and by transformers' TimmWrapper, replaced as a whole.

Each export is written into a new version folder of the output folder's store, then made current by one atomic
rename of a link (`export_store.py` draws the layout): a kill at any moment leaves either the previous export or
the new one, never a config of one beside the weights of the other, and a first export cut short leaves no
config.json (no folder that looks like a model and fails to load). A write that fails (a full disk) removes what
it wrote and leaves the previous export as it was. Stale versions and half-written ones are removed by the next
export. Where symbolic links are not available (some Windows set-ups), files are replaced one by one (logged).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from timm.data import resolve_model_data_config
from timm.models import save_for_hf
from torch import nn

from ..transformers_models.adapter import TransformersVisionModel
from ..transformers_models.students import save_transformers_student
from .export_store import (
    CURRENT,
    LEGACY_VERSIONS_DIR,
    VERSIONS_DIR,
    check_export_location,
    current_version,
    export_file,
    link,
    public_names,
)
from .files import (
    CONNECTORS_NAME,
    EXPORT_FILE_NAMES,
    FEED_CONFIG_NAME,
    LOCAL_ONLY_NAMES,
    MODEL_CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_write_text,
)

__all__ = [
    "CONNECTORS_NAME",
    "FEED_CONFIG_NAME",
    "VERSIONS_DIR",
    "ExportError",
    "check_processing_class",
    "export_file",
    "export_student",
    "has_export",
    "write_export_file",
]

logger = logging.getLogger(__name__)

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


class ExportError(RuntimeError):
    """An export that could not be written (a full disk, a folder that changed under it); the message says what
    the output folder holds now."""


def export_student(
    student: nn.Module,
    output_dir: str | os.PathLike,
    feed_config: dict[str, Any],
    label_names: list[str] | None = None,
    connectors: nn.Module | None = None,
    processing_class: Any = None,
) -> Path:
    """Write `config.json` + `model.safetensors` (timm format) + `feed_config.json` as the export of `output_dir`.

    config.json's `pretrained_cfg` is also what transformers' TimmWrapperImageProcessor (and so
    `pipeline("image-classification")`) preprocesses with: one source of truth for resize/normalise.
    `connectors`, when given and non-empty, go to a separate `feed_connectors.safetensors` kept in the version
    folder (`export_file`): the student's weights file never holds connector or teacher tensors.
    `processing_class` (anything with `save_pretrained`, as `Trainer.save_model` saves it) is saved with it.
    The previous export's results.json and README.md go with it: they described another model.
    Raises ExportError when the export cannot be written; the previous export is then unchanged.
    """
    output_dir = Path(output_dir)
    check_export_location(output_dir)
    had_export = has_export(output_dir)
    versions = output_dir / VERSIONS_DIR
    try:
        _remove_stale(output_dir)
        _adopt_older_layouts(output_dir)
        version = _write_version(versions, student, feed_config, label_names, connectors, processing_class)
    except (OSError, SafetensorError) as error:  # safetensors reports a full disk as its own error
        raise ExportError(_not_written(output_dir, _as_os_error(error), had_export)) from error
    try:
        _make_current(output_dir, version)
    except OSError as error:
        state = "its previous export is unchanged" if _current_target(versions) != version.name else None
        raise ExportError(_not_written(output_dir, error, had_export, state)) from error
    return output_dir


def has_export(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds an exported model (its config and weights)."""
    folder = Path(folder)
    return (folder / MODEL_CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def write_export_file(export_dir: str | os.PathLike, name: str, text: str) -> Path:
    """Add or replace one text file (results.json, README.md, local_sources.json) of the current export,
    atomically; a public one is linked at the top of `export_dir`."""
    export_dir = Path(export_dir)
    current = current_version(export_dir)
    if current is None:  # not a versioned export (e.g. a push staging folder): a plain file
        return atomic_write_text(export_dir / name, text)
    atomic_write_text(current / name, text)
    if name in LOCAL_ONLY_NAMES:
        return current / name
    link(export_dir / name, current.relative_to(export_dir).joinpath(name).as_posix())
    return export_dir / name


def _write_version(
    versions: Path,
    student: nn.Module,
    feed_config: dict,
    label_names: list[str] | None,
    connectors: nn.Module | None,
    processing_class: Any,
) -> Path:
    """One complete version folder, or nothing: a failed write removes what it wrote."""
    staging = versions / f"v-{time.time_ns()}-{uuid.uuid4().hex[:8]}{_PARTIAL_SUFFIX}"
    try:
        staging.mkdir()
        if processing_class is not None:  # first: the student's own files must win any shared name
            _save_processing_class(processing_class, staging)
        _write_student_files(staging, student, feed_config, label_names, connectors)
        version = staging.with_name(staging.name.removesuffix(_PARTIAL_SUFFIX))
        os.replace(staging, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(versions)
    return version


def check_processing_class(processing_class: Any) -> None:
    """A `processing_class` the export can save (checked before training too)."""
    if processing_class is not None and not callable(getattr(processing_class, "save_pretrained", None)):
        raise ValueError(
            f"processing_class {type(processing_class).__name__} has no save_pretrained(); the export saves it as "
            "Trainer.save_model does: pass an image processor (e.g. AutoImageProcessor.from_pretrained(...))"
        )


def _save_processing_class(processing_class: Any, folder: Path) -> None:
    check_processing_class(processing_class)
    processing_class.save_pretrained(folder)
    clashes = sorted({p.name for p in folder.iterdir()} & {MODEL_CONFIG_NAME, WEIGHTS_NAME, FEED_CONFIG_NAME})
    if clashes or any(p.is_dir() for p in folder.iterdir()):
        raise ValueError(
            f"processing_class {type(processing_class).__name__}.save_pretrained() writes {clashes or 'folders'}, "
            "which the student's export cannot hold beside its own files; save it to another folder yourself"
        )


def _as_os_error(error: Exception) -> OSError:
    if isinstance(error, OSError):
        return error
    code = re.search(r"os error (\d+)", str(error))  # safetensors: "I/O error: File too large (os error 27)"
    number = int(code.group(1)) if code else 0
    return OSError(number, os.strerror(number) if number else str(error))


def _not_written(output_dir: Path, error: OSError, had_export: bool, state: str | None = None) -> str:
    code = errno.errorcode.get(error.errno or 0, "")
    reason = f"{error.strerror or error}{f' ({code})' if code else ''}"
    if state is None:
        state = "its previous export is unchanged" if had_export else "it holds no export (nothing half-written)"
    full = code in ("ENOSPC", "EFBIG", "EDQUOT")
    disk = " free space on that disk or choose another output_dir, then" if full else ""
    return f"cannot write the export to {str(output_dir)!r}: {reason}; {state}.{disk} export again"


def _write_student_files(
    folder: Path, student: nn.Module, feed_config: dict, label_names: list[str] | None, connectors: nn.Module | None
) -> None:
    if isinstance(student, TransformersVisionModel):  # transformers' own format: save_pretrained + its processor
        save_transformers_student(student, folder, label_names)
        _write_feed_files(folder, feed_config, connectors)
        return
    model_config = {"label_names": list(label_names)} if label_names else None
    # The eval preprocessing training used (the student's cfg, as feed_hf.training.resolution decided it) replaces the
    # source checkpoint's test-time recommendations: pipeline() then preprocesses exactly as evaluation did.
    data_config = resolve_model_data_config(student)
    save_for_hf(student, folder, model_config=model_config, safe_serialization=True, data_config=data_config)
    _drop_num_classes_model_arg(folder / MODEL_CONFIG_NAME)
    _keep_true_pretrained_cfg(folder / MODEL_CONFIG_NAME, student)
    _write_feed_files(folder, feed_config, connectors)


def _write_feed_files(folder: Path, feed_config: dict, connectors: nn.Module | None) -> None:
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


def _make_current(output_dir: Path, version: Path) -> None:
    """Link the version's public files at the top (config.json last), then make it current in one rename."""
    versions = output_dir / VERSIONS_DIR
    if not _symlinks_work(versions):
        _replace_files_one_by_one(output_dir, version)
        return
    names = public_names(version)
    for name in names[:-1]:  # on a first export these links dangle until the switch: no export shows
        link(output_dir / name, f"{VERSIONS_DIR}/{CURRENT}/{name}")
    _switch_current(versions, version.name)
    for name in names[-1:]:  # config.json: only now does the folder look like a model
        link(output_dir / name, f"{VERSIONS_DIR}/{CURRENT}/{name}")
    _unlink_what_the_export_lacks(output_dir)
    _remove_stale(output_dir)


def _symlinks_work(versions: Path) -> bool:
    probe = versions / f".link-test-{uuid.uuid4().hex[:8]}"
    try:
        os.symlink(CURRENT, probe)
    except (OSError, NotImplementedError) as error:
        logger.warning("no symbolic links here (%s): export files are replaced one by one", error)
        return False
    probe.unlink()
    return True


def _switch_current(versions: Path, target: str) -> None:
    """The commit point: one rename makes `target` (a version folder, relative to `versions`) the export."""
    pending = versions / f"{CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
    os.symlink(target, pending, target_is_directory=True)
    try:
        os.replace(pending, versions / CURRENT)
    except OSError:
        pending.unlink(missing_ok=True)
        raise
    _fsync_dir(versions)


def _current_target(versions: Path) -> str | None:
    current = versions / CURRENT
    return os.readlink(current) if current.is_symlink() else None


def _unlink_what_the_export_lacks(output_dir: Path) -> None:
    """Top-level links into a store that now dangle (a file the new version lacks), those of local-only files
    (feed-hf 0.2 linked them), and a 0.2 store once nothing points into it."""
    for entry in output_dir.iterdir():
        if not entry.is_symlink():
            continue
        target = os.readlink(entry)
        if target.startswith((f"{VERSIONS_DIR}/", f"{LEGACY_VERSIONS_DIR}/")):
            if not entry.exists() or entry.name in LOCAL_ONLY_NAMES:
                entry.unlink()
    legacy = output_dir / LEGACY_VERSIONS_DIR
    still_used = any(
        e.is_symlink() and os.readlink(e).startswith(f"{LEGACY_VERSIONS_DIR}/") for e in output_dir.iterdir()
    )
    if legacy.is_dir() and not legacy.is_symlink() and not still_used:
        shutil.rmtree(legacy, ignore_errors=True)


def _adopt_older_layouts(output_dir: Path) -> None:
    """Bring an export of an older feed-hf into this layout, each top-level file's content unchanged at every
    moment: a 0.2 store (`.feed-export/current`) becomes this store's current version where it lies; plain
    top-level files (0.1) are copied into version 0."""
    versions = output_dir / VERSIONS_DIR
    if (versions / CURRENT).is_dir():
        return
    legacy_current = output_dir / LEGACY_VERSIONS_DIR / CURRENT
    if legacy_current.is_symlink() and legacy_current.is_dir():
        # Both paths then name the same version: each top-level link can move over without a mixed moment.
        relative = os.path.relpath(legacy_current.resolve(), versions)
        _switch_current(versions, relative)
        for entry in output_dir.iterdir():
            if entry.is_symlink() and os.readlink(entry) == f"{LEGACY_VERSIONS_DIR}/{CURRENT}/{entry.name}":
                link(entry, f"{VERSIONS_DIR}/{CURRENT}/{entry.name}")
        return
    plain = [
        name for name in EXPORT_FILE_NAMES if (output_dir / name).is_file() and not (output_dir / name).is_symlink()
    ]
    if not plain:
        return
    adopted = versions / "v-0"
    adopted.mkdir(exist_ok=True)
    for name in plain:
        shutil.copy2(output_dir / name, adopted / name)
    if _symlinks_work(versions):
        _switch_current(versions, adopted.name)
        for name in public_names(adopted):
            link(output_dir / name, f"{VERSIONS_DIR}/{CURRENT}/{name}")


def _remove_stale(output_dir: Path) -> None:
    """Versions other than the current one, interrupted exports, and 0.1-style staging folders."""
    versions = output_dir / VERSIONS_DIR
    keep = _current_target(versions)
    for child in versions.iterdir() if versions.is_dir() else []:
        if child.name in (CURRENT, keep):
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
    # Without links there is no current version to keep local-only files in: they sit at the top as in 0.1.
    names = [name for name in LOCAL_ONLY_NAMES if (version / name).is_file()] + public_names(version)
    for name in names:  # config.json last: a first export cut short has none
        os.replace(version / name, output_dir / name)
    for name in EXPORT_FILE_NAMES:  # what the new export lacks
        if name not in names and name not in (MODEL_CONFIG_NAME, WEIGHTS_NAME, FEED_CONFIG_NAME):
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
