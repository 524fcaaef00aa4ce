"""Push an exported student or teacher to the Hugging Face Hub (timm files, FEED record, model card)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import timm
import torch
from huggingface_hub import CommitInfo, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError

from ..teachers.sources import TeacherSourceError, check_weights_fit, weight_shapes
from ..transformers_models.sources import checkpoint_format
from .card.render import write_model_card
from .export import export_file
from .export_store import current_version, public_names
from .exported_model import transformers_export_problem
from .files import CARD_NAME, CONNECTORS_NAME, FEED_CONFIG_NAME, MODEL_CONFIG_NAME, RESULTS_NAME, WEIGHTS_NAME
from .portable import local_fragment, local_fragments_in_json, portable_feed_config, portable_results

__all__ = ["HubPushError", "PushArguments", "UnpushableExportError", "check_pushable", "push_export", "pushed_names"]

# What a pushed repo holds: the timm model (config.json also carries the preprocessing that transformers'
# TimmWrapperImageProcessor and pipeline() read), the FEED record and the card.
_PUSHED_FILES = (MODEL_CONFIG_NAME, WEIGHTS_NAME, FEED_CONFIG_NAME, RESULTS_NAME, CARD_NAME)
_REQUIRED_FILES = (MODEL_CONFIG_NAME, WEIGHTS_NAME, FEED_CONFIG_NAME)
_HOW_TO_EXPORT = (
    "export the student with FeedTrainer.save_model() or a feed-hf training command (they write config.json, "
    "model.safetensors and feed_config.json), then `feed-hf card --export_dir DIR` to preview the card"
)


class HubPushError(RuntimeError):
    """A push that failed before anything was committed; the local export is untouched."""


class UnpushableExportError(ValueError):
    """A folder refused before the Hub is contacted: no repo is created, nothing is pushed."""


@dataclass
class PushArguments:
    export_dir: str = field(
        metadata={"help": "An exported folder (config.json + model.safetensors + feed_config.json)."}
    )
    repo_id: str = field(metadata={"help": "Target repo, 'namespace/name' (created if missing)."})
    revision: str | None = field(default=None, metadata={"help": "Branch to commit to (created if missing)."})
    private: bool = field(default=False, metadata={"help": "Create the repo private (no effect if it exists)."})
    push_connectors: bool = field(
        default=False, metadata={"help": f"Also push the connectors, as a separate {CONNECTORS_NAME}."}
    )
    commit_message: str = field(default="Upload FEED student (feed-hf)", metadata={"help": "Commit message."})


def push_export(
    export_dir: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    push_connectors: bool = False,
    commit_message: str = "Upload FEED student (feed-hf)",
    blocking: bool = True,
) -> CommitInfo | Future:
    """Upload the exported folder's shareable files in one commit and return its CommitInfo.

    The folder is checked first (`check_pushable`), its files copied aside, the card rendered for `repo_id` and
    every pushed text checked for this machine's paths and token values, all before the repo is created: a
    refused push leaves no empty repo behind. The records were made portable when they were written; an export
    from an older feed-hf is re-recorded the same way (`feed_hf.publishing.portable`). With `blocking=False` the
    upload runs in the background (one push after another, in order) and a `concurrent.futures.Future` of its
    CommitInfo is returned, as `Trainer.push_to_hub(blocking=False)` does; what is pushed was copied before this
    returns, so a later export does not change it.
    Raises UnpushableExportError (the folder) or HubPushError (no token, token refused, Hub unreachable) before
    anything is committed (from the Future, for what fails during the upload).
    """
    export_dir = Path(export_dir)
    check_pushable(export_dir, push_connectors)
    token = token or get_token()
    if not token:
        raise HubPushError(
            f"no Hugging Face token to push {repo_id!r}: set HF_TOKEN or run `hf auth login`; "
            f"the export in {export_dir} is unchanged"
        )
    api = HfApi(token=token, library_name="feed-hf")
    staging_dir = Path(tempfile.mkdtemp(prefix="feed-hf-push-"))
    try:
        _stage_files(export_dir, staging_dir, push_connectors)
        with _hub_errors(repo_id, export_dir):
            repo_id = repo_id if "/" in repo_id else f"{api.whoami()['name']}/{repo_id}"
        write_model_card(staging_dir, _read_json(staging_dir / RESULTS_NAME), repo_id=repo_id)
        _refuse_local_text(export_dir, staging_dir, _secrets(token))
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    upload = functools.partial(_upload, api, staging_dir, export_dir, repo_id, private, revision, commit_message)
    return upload() if blocking else _background().submit(upload)


def _upload(
    api: HfApi,
    staging_dir: Path,
    export_dir: Path,
    repo_id: str,
    private: bool,
    revision: str | None,
    commit_message: str,
) -> CommitInfo:
    try:
        with _hub_errors(repo_id, export_dir):
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and revision != constants.DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, folder_path=staging_dir, revision=revision, commit_message=commit_message
            )
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)


@functools.cache
def _background() -> ThreadPoolExecutor:
    # One worker: background pushes commit in the order they were asked for.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-hf-push")


def check_pushable(export_dir: str | os.PathLike, push_connectors: bool = False) -> None:
    """Refuse a folder that is not a complete export: the three files present and readable, the
    weights fitting the architecture config.json describes (built on the meta device: no memory)."""
    export_dir = Path(export_dir)
    missing = [name for name in _REQUIRED_FILES if not (export_dir / name).is_file()]
    if not export_dir.is_dir() or missing:
        what = "does not exist or is not a folder" if not export_dir.is_dir() else f"has no {', '.join(missing)}"
        raise UnpushableExportError(f"cannot push {export_dir}: it {what}; {_HOW_TO_EXPORT}")
    config = _parsed_json(export_dir / MODEL_CONFIG_NAME)
    _parsed_json(export_dir / FEED_CONFIG_NAME)
    if (export_dir / RESULTS_NAME).exists():
        _parsed_json(export_dir / RESULTS_NAME)
    if checkpoint_format(config) == "transformers":  # a transformers student's save_pretrained folder
        problem = transformers_export_problem(export_dir)
        if problem:
            raise UnpushableExportError(f"cannot push {export_dir}: {problem}; {_HOW_TO_EXPORT}")
    elif not isinstance(config.get("architecture"), str):
        raise UnpushableExportError(
            f"cannot push {export_dir}: its config.json names no 'architecture' (not a timm export); {_HOW_TO_EXPORT}"
        )
    else:
        _check_weights_fit(export_dir, config["architecture"])
    if push_connectors and not export_file(export_dir, CONNECTORS_NAME).is_file():
        raise UnpushableExportError(
            f"cannot push the connectors of {export_dir}: it has no {CONNECTORS_NAME} (a CE-only model has none, "
            "and only FeedTrainer.save_model() writes it); push without push_connectors"
        )


def _parsed_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        value, reason = None, _one_line(error)
    else:
        reason = f"a JSON {type(value).__name__}, not an object"
    if not isinstance(value, dict):
        raise UnpushableExportError(
            f"cannot push {path.parent}: {path.name} is unreadable ({reason}); re-create it: {_HOW_TO_EXPORT}"
        )
    return value


def _check_weights_fit(export_dir: Path, architecture: str) -> None:
    try:
        shapes = weight_shapes(export_dir / WEIGHTS_NAME, allow_pickle=False)  # the header alone
    except ValueError as error:
        reason = _one_line(error.__cause__ or error) if error.__cause__ else "a truncated or corrupt file"
        raise UnpushableExportError(
            f"cannot push {export_dir}: model.safetensors is not a readable safetensors file ({reason}); "
            f"{_HOW_TO_EXPORT}"
        ) from None
    try:
        with torch.device("meta"):  # shapes only: no memory, no weights read
            model = timm.create_model(f"local-dir:{export_dir}", pretrained=False)
    except Exception as error:  # unknown architecture, bad model_args: whatever timm raises
        raise UnpushableExportError(
            f"cannot push {export_dir}: its config.json does not build a timm model (architecture {architecture!r}: "
            f"{_one_line(error)}); a custom architecture must be registered (import its module) first"
        ) from None
    problem = (
        f"cannot push {export_dir}: model.safetensors does not fit the {architecture!r} that config.json describes"
    )
    try:
        check_weights_fit(shapes, model, problem, _HOW_TO_EXPORT)
    except TeacherSourceError as error:
        raise UnpushableExportError(str(error)) from None


@contextlib.contextmanager
def _hub_errors(repo_id: str, export_dir: Path) -> Iterator[None]:
    try:
        yield
    except HfHubHTTPError as error:
        raise HubPushError(_http_error_message(error, repo_id, export_dir)) from error
    except (HTTPError, OSError) as error:
        raise HubPushError(
            f"cannot reach the Hub at {constants.ENDPOINT} to push {repo_id!r} ({type(error).__name__}: {error}); "
            f"the export in {export_dir} is unchanged: retry with `feed-hf push --export_dir {export_dir} "
            f"--repo_id {repo_id}`"
        ) from error


def _stage_files(export_dir: Path, staging_dir: Path, push_connectors: bool) -> None:
    """Copy what is pushed; the records go through the same portable form they were written in."""
    for name in pushed_names(export_dir) + ([CONNECTORS_NAME] if push_connectors else []):
        source = export_file(export_dir, name)
        if not source.is_file() or name == CARD_NAME:
            continue  # README.md is rendered for the repo
        if name == RESULTS_NAME:
            _write_json(staging_dir / name, portable_results(_read_json(source)))
        elif name == FEED_CONFIG_NAME:
            _write_json(staging_dir / name, portable_feed_config(_read_json(source)))
        elif name == MODEL_CONFIG_NAME:
            _write_json(staging_dir / name, _without_local_source(_read_json(source)))
        else:
            _snapshot(source, staging_dir / name)


def pushed_names(export_dir: str | os.PathLike) -> list[str]:
    """The files a push takes: the current export version's public files (a processing_class's included), or the
    timm files, FEED record and card of a folder of plain files."""
    version = current_version(export_dir)
    return public_names(version) if version is not None else list(_PUSHED_FILES)


def _snapshot(source: Path, destination: Path) -> None:
    # A hard link is an instant copy here: export files are replaced by rename, never rewritten in place.
    try:
        os.link(os.path.realpath(source), destination)
    except OSError:
        shutil.copy2(source, destination)


def _without_local_source(config: dict[str, Any]) -> dict[str, Any]:
    # timm records where a local-dir model came from (`file`, `source`) in pretrained_cfg; never needed on the Hub.
    pretrained_cfg = {k: v for k, v in config.get("pretrained_cfg", {}).items() if k not in ("file", "source")}
    return {**config, "pretrained_cfg": pretrained_cfg} if "pretrained_cfg" in config else config


def _refuse_local_text(export_dir: Path, staging_dir: Path, secrets: list[str]) -> None:
    """The safety net: a pushed text that still names this machine's paths or a token is refused."""
    for path in sorted(staging_dir.iterdir()):
        if path.suffix == ".json":
            found = next(local_fragments_in_json(_read_json(path), secrets), None)
        elif path.suffix == ".safetensors":
            with safetensors.safe_open(path, framework="pt") as weights:
                found = next(local_fragments_in_json(weights.metadata() or {}, secrets, "metadata"), None)
        else:
            found = _first_local_line(path.read_text(encoding="utf-8", errors="replace"), secrets)
        if found:
            field, fragment = found
            raise UnpushableExportError(
                f"refusing to push {export_dir}: the pushed {path.name} ({field}) holds {fragment!r}, a path of "
                f"this machine or a token; nothing was pushed. Edit that field of {path.name} in the export (a "
                "README.md is rendered from results.json and feed_config.json) and push again"
            )


def _first_local_line(text: str, secrets: list[str]) -> tuple[str, str] | None:
    for number, line in enumerate(text.splitlines(), 1):
        if (fragment := local_fragment(line, secrets)) is not None:
            return f"line {number}", fragment
    return None


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


def _secrets(token: str) -> list[str]:
    return [
        value for value in (token, get_token(), *map(os.environ.get, ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))) if value
    ]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False), encoding="utf-8")


def _http_error_message(error: HfHubHTTPError, repo_id: str, export_dir: Path) -> str:
    status = error.response.status_code if error.response is not None else "?"
    if status in (401, 403):
        return (
            f"the Hub at {constants.ENDPOINT} refused the token for {repo_id!r} (HTTP {status}): use a token with "
            f"write access to that namespace (HF_TOKEN or `hf auth login`); the export in {export_dir} is unchanged"
        )
    return f"pushing {repo_id!r} to {constants.ENDPOINT} failed (HTTP {status}): {error}; {export_dir} is unchanged"
