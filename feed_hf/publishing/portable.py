"""What a run records about its sources, in a form that names no folder of this machine.

A pushed record must mean the same thing on any machine: a Hub teacher is its Hub id (with the
revision), a local teacher, dataset or output folder is its folder or file name, and a token is
never recorded. Each kind of thing recorded has one function here, called when the record is made
(`FeedTrainer.feed_config()`, `results.json`), so nothing has to be scrubbed from text afterwards.
`local_fragment` is the push's last safety net, not the mechanism.

Local tools (reconstruction analysis) still need the real paths: `write_local_sources` keeps them in
`local_sources.json` in the export's version folder, a file that is never pushed nor taken by a plain upload of
the output folder (`export_store.py`).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .export import export_file, write_export_file
from .files import LOCAL_SOURCES_NAME

__all__ = [
    "LOCAL_SOURCES_NAME",
    "PASSED_IN",
    "local_fragment",
    "local_fragments_in_json",
    "portable_data_arguments",
    "portable_dataset",
    "portable_feed_config",
    "portable_folder",
    "portable_results",
    "portable_teacher_source",
    "portable_training_arguments",
    "read_local_sources",
    "write_local_sources",
]

_HUB_PREFIX, _LOCAL_DIR_PREFIX = "hf-hub:", "local-dir:"
# How a teacher given as a module is recorded: its class name and this (its weights' origin is not known).
PASSED_IN = " (a module passed in)"
# TrainingArguments fields that hold a folder or file of this machine.
_FOLDER_FIELDS = ("output_dir", "logging_dir", "resume_from_checkpoint", "deepspeed", "fsdp_config")


def portable_folder(path: str | os.PathLike | None) -> str | None:
    """A local folder or file as recorded: its name alone (`/home/me/runs/t 0/` → `t 0`); None for none."""
    if path is None or os.fspath(path) == "":
        return None
    text = os.path.expanduser(os.fspath(path))
    # Both separators: a record made on Windows must not keep `C:\Users\...` either.
    parts = [part for part in re.split(r"[\\/]+", text) if part not in ("", ".")]
    if parts and parts[-1] != "..":
        return parts[-1]
    return Path(text).resolve().name or None


def portable_teacher_source(source: Any) -> str:
    """A teacher spec as recorded: Hub ids and timm names as given, local folders and files by name.

    `hf-hub:ns/name@rev` → unchanged; `local-dir:/a/b c` → `local-dir:b c`; `/a/b c` → `b c`;
    `NAME=/a/model.safetensors` → `NAME=model.safetensors`; a module → `ClassName (a module passed in)`.
    """
    if not isinstance(source, str):
        return f"{type(source).__name__}{PASSED_IN}"
    if source.startswith(_HUB_PREFIX):
        return source
    if source.startswith(_LOCAL_DIR_PREFIX):
        return _LOCAL_DIR_PREFIX + (portable_folder(source.removeprefix(_LOCAL_DIR_PREFIX)) or "")
    name, separator, checkpoint = source.partition("=")
    if separator and not _is_local_path(name):
        return f"{name}={portable_folder(checkpoint) or ''}"
    # A plain folder (teachers/frozen.py loads an existing folder before it tries a timm name).
    local = _is_local_path(source) or os.path.isdir(source)
    return (portable_folder(source) or source) if local else source


def portable_dataset(dataset: str | None) -> str | None:
    """A dataset source as recorded: a Hub id or `digits` as given, a local file or folder by name."""
    if not dataset:
        return dataset
    local = os.path.exists(os.path.expanduser(dataset)) or (
        dataset.startswith((".", "/", "~")) or dataset.count("/") > 1 or "\\" in dataset
    )
    return portable_folder(dataset) if local else dataset


def portable_training_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """`TrainingArguments.to_dict()` as recorded: folders by name, teachers portable, no token values."""
    recorded = {}
    for key, value in config.items():
        if _is_token_field(key, value):
            continue  # a token (or its placeholder) is never recorded
        if key == "teachers" and isinstance(value, list):
            recorded[key] = [portable_teacher_source(spec) for spec in value]
        elif key in _FOLDER_FIELDS and isinstance(value, str):
            recorded[key] = portable_folder(value)  # "last" / "True" (resume) stay as they are
        else:
            recorded[key] = _portable_value(value)
    return recorded


def portable_data_arguments(data: dict[str, Any]) -> dict[str, Any]:
    """`DataArguments` (as a dict) as recorded: the dataset by Hub id or name, other paths by name."""
    return {key: portable_dataset(v) if key == "dataset" else _portable_value(v) for key, v in data.items()}


def portable_feed_config(feed: dict[str, Any]) -> dict[str, Any]:
    """feed_config.json as recorded; idempotent, so an export made by an older feed-hf can be re-recorded."""
    recorded = dict(feed)
    recorded["teachers"] = [portable_teacher_source(spec) for spec in feed.get("teachers") or []]
    recorded["resolved_teachers"] = [
        {**teacher, "name": f"teacher {index} ({source})", "source": source}
        for index, teacher in enumerate(feed.get("resolved_teachers") or [])
        for source in [portable_teacher_source(teacher.get("source", "?"))]
    ]
    return recorded


def portable_results(results: dict[str, Any]) -> dict[str, Any]:
    """results.json as recorded (data, config and FEED record portable); idempotent."""
    recorded = dict(results)
    if isinstance(results.get("data"), dict):
        recorded["data"] = portable_data_arguments(results["data"])
    if isinstance(results.get("config"), dict):
        recorded["config"] = portable_training_arguments(results["config"])
    if isinstance(results.get("feed"), dict):
        recorded["feed"] = portable_feed_config(results["feed"])
    return recorded


def write_local_sources(output_dir: str | os.PathLike, teachers: list[Any], data: dict[str, Any]) -> Path:
    """Keep this machine's teacher specs and data arguments with the export for local tools (never pushed)."""
    specs = [spec if isinstance(spec, str) else None for spec in teachers]
    text = json.dumps({"teachers": specs, "data": data}, indent=2, default=str)
    return write_export_file(output_dir, LOCAL_SOURCES_NAME, text)  # replaced with the export it belongs to


def read_local_sources(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What `write_local_sources` kept, or {} when the run was recorded elsewhere or by an older feed-hf."""
    path = export_file(run_dir, LOCAL_SOURCES_NAME)  # in the export's version folder, outside any upload
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def local_fragment(text: str, secrets: Iterable[str] = ()) -> str | None:
    """The first thing in `text` that belongs to this machine (a path under one of its top-level
    folders or its home, `~/…`, a Windows drive path) or to the user (a token value); None if clean."""
    for secret in secrets:
        if secret and len(secret) >= 8 and secret in text:
            return "a token value"
    match = _local_path_pattern().search(text)
    return match.group(0).strip() if match else None


def local_fragments_in_json(value: Any, secrets: Iterable[str] = (), where: str = "") -> Iterator[tuple[str, str]]:
    """(field, fragment) for every key or string in a JSON value that `local_fragment` flags."""
    secrets = list(secrets)
    if isinstance(value, dict):
        for key, item in value.items():
            field = f"{where}.{key}" if where else str(key)
            if (fragment := local_fragment(str(key), secrets)) is not None:
                yield field, fragment
            yield from local_fragments_in_json(item, secrets, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from local_fragments_in_json(item, secrets, f"{where}[{index}]")
    elif isinstance(value, str) and (fragment := local_fragment(value, secrets)) is not None:
        yield where or "(value)", fragment


@functools.cache
def _local_path_pattern() -> re.Pattern[str]:
    roots = sorted((entry for entry in os.listdir("/") if entry), key=len, reverse=True)
    home = str(Path.home())
    alternatives = [rf"/(?:{'|'.join(map(re.escape, roots))})(?=/|$|[\s\"'),;\]])", r"~/", r"[A-Za-z]:\\"]
    if home not in ("/", ""):
        alternatives.insert(0, re.escape(home) + r"(?![\w.\-])")
    # Not after a word or a dot: `loss/ce`, `github.com/…` and Hub ids are no local paths; after a colon
    # (`local-dir:/home/…`, `file:///tmp/…`) or a slash it still is one.
    return re.compile(rf"(?<![\w.~\\-])(?:{'|'.join(alternatives)})\S{{0,60}}")


def _is_local_path(text: str) -> bool:
    return (
        os.path.isabs(os.path.expanduser(text))
        or text.startswith(("~", "./", "../"))
        or "\\" in text
        or ("/" in text and os.path.exists(text))
    )


def _portable_value(value: Any) -> Any:
    """A value of some other field: any local path in it (however nested) reduced to its name."""
    if isinstance(value, dict):
        return {key: _portable_value(item) for key, item in value.items() if not _is_token_field(key, item)}
    if isinstance(value, list):
        return [_portable_value(item) for item in value]
    if isinstance(value, str) and value.startswith(_LOCAL_DIR_PREFIX):  # e.g. a `student` spec: the folder by name
        return portable_teacher_source(value)
    if isinstance(value, str) and _is_local_path(value):
        return portable_folder(value)
    return value


def _is_token_field(key: Any, value: Any) -> bool:
    return "token" in str(key).lower() and isinstance(value, str)
