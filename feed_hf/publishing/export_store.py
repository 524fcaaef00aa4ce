"""Where an export lives in its output folder: the version store, the top-level links, and what is checked first.

    OUTPUT_DIR/config.json        -> .cache/huggingface/feed-hf/export/current/config.json
    OUTPUT_DIR/model.safetensors  -> .cache/huggingface/feed-hf/export/current/model.safetensors
    ... (feed_config.json, results.json, README.md, a processing_class's files alike)
    OUTPUT_DIR/.cache/huggingface/feed-hf/export/current -> v-<n>     the one link that says which version is current
    OUTPUT_DIR/.cache/huggingface/feed-hf/export/v-<n>/              one complete export, with its connectors and
                                                                      local_sources.json (never linked at the top)

huggingface_hub's `upload_folder` and `hf upload` never take `.cache/huggingface/`, and do not descend into linked
folders: a plain upload of the output folder takes the top-level export files (their contents, through the links)
and nothing that must stay here. Exports of feed-hf 0.2 kept their versions in `OUTPUT_DIR/.feed-export/`; the next
export moves them (`adopt_legacy_store`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from .files import LOCAL_DIR, LOCAL_ONLY_NAMES, MODEL_CONFIG_NAME, WEIGHTS_NAME

__all__ = [
    "CURRENT",
    "LEGACY_VERSIONS_DIR",
    "VERSIONS_DIR",
    "check_export_location",
    "current_version",
    "export_file",
    "is_in_export_store",
    "link",
    "public_names",
]

VERSIONS_DIR = f"{LOCAL_DIR}/export"
LEGACY_VERSIONS_DIR = ".feed-export"  # feed-hf 0.2
CURRENT = "current"
# Written into a version folder by a processing_class or by export_student: none may be a folder at the top.
_TOP_LEVEL_FILES = (MODEL_CONFIG_NAME, WEIGHTS_NAME, "feed_config.json", "results.json", "README.md")


def current_version(output_dir: str | os.PathLike) -> Path | None:
    """The folder of the current export version (this layout's, else a 0.2 export's); None for none."""
    for store in (VERSIONS_DIR, LEGACY_VERSIONS_DIR):
        current = Path(output_dir) / store / CURRENT
        if current.is_dir():
            return current
    return None


def export_file(output_dir: str | os.PathLike, name: str) -> Path:
    """Where a file of the export in `output_dir` is: its current version's copy (connectors, local_sources.json
    and the public files alike), or `output_dir/name` for a folder of plain files (an older feed-hf, a download)."""
    version = current_version(output_dir)
    if version is not None and (version / name).exists():
        return version / name
    return Path(output_dir) / name


def public_names(version: Path) -> list[str]:
    """The files of a version linked at the top of the output folder (what a push or a plain upload takes), with
    config.json last: a folder whose links were cut short then has no config.json, so it looks like no export."""
    names = sorted(p.name for p in version.iterdir() if p.is_file() and p.name not in LOCAL_ONLY_NAMES)
    return sorted(names, key=lambda name: name == MODEL_CONFIG_NAME)


def is_in_export_store(path: str | os.PathLike) -> bool:
    """Whether `path` is inside an export's version store (a copy of a top-level file, not a run of its own)."""
    parts = Path(path).parts
    local = tuple(Path(LOCAL_DIR).parts)
    windows = (parts[i : i + len(local)] for i in range(len(parts)))
    return LEGACY_VERSIONS_DIR in parts or local in windows


def link(path: Path, target: str) -> None:
    """Make `path` a symbolic link to `target` in one rename (a plain file of that name is replaced too)."""
    if path.is_symlink() and os.readlink(path) == target:
        return
    pending = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(target, pending)
    try:
        os.replace(pending, path)
    except OSError:
        pending.unlink(missing_ok=True)
        raise


def check_export_location(output_dir: str | os.PathLike, needed_bytes: int = 0) -> None:
    """Refuse, in one line naming the path, an output folder an export cannot be written to; makes the store.

    Checked before training (`FeedTrainer.train`) and again by each export: a file where a folder of the layout
    goes, a folder where an export file goes, a store that cannot be written, or less free space than
    `needed_bytes` (about the size of the weights written).
    """
    output_dir = Path(output_dir)
    store = output_dir / VERSIONS_DIR
    parts = Path(VERSIONS_DIR).parts
    for path in [output_dir, *(output_dir.joinpath(*parts[: i + 1]) for i in range(len(parts)))]:
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"output_dir {str(output_dir)!r}: {str(path)!r} is a file, but the export keeps its versions in the "
                f"folder {VERSIONS_DIR!r} there; move that file away, or choose another output_dir"
            )
    for name in _TOP_LEVEL_FILES:
        if (output_dir / name).is_dir() and not (output_dir / name).is_symlink():
            raise ValueError(
                f"output_dir {str(output_dir)!r}: {name!r} is a folder, but the export writes a file of that name; "
                "move it away, or choose another output_dir"
            )
    try:
        store.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=store, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(
            f"output_dir {str(output_dir)!r}: cannot write the export's folder {str(store)!r} "
            f"({error.strerror or error}); make it writable, or choose another output_dir"
        ) from None
    free = shutil.disk_usage(store).free
    if free < needed_bytes:
        raise ValueError(
            f"output_dir {str(output_dir)!r} has {free / 2**20:.1f} MiB free, but the export needs about "
            f"{needed_bytes / 2**20:.1f} MiB (the student's weights and connectors); free space, or choose another "
            "output_dir"
        )
