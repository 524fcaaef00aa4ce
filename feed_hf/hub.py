"""Push an exported student or teacher to the Hugging Face Hub (timm files, FEED record, model card)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError

from .export import CONNECTORS_NAME, FEED_CONFIG_NAME
from .model_card import write_model_card

__all__ = ["HubPushError", "PushArguments", "push_export", "scrub_local_paths"]

RESULTS_NAME = "results.json"
# What a pushed repo holds: the timm model (config.json also carries the preprocessing that transformers'
# TimmWrapperImageProcessor and pipeline() read), the FEED record and the card.
_PUSHED_FILES = ("config.json", "model.safetensors", FEED_CONFIG_NAME, RESULTS_NAME, "README.md")


# An absolute POSIX path (two or more components) anywhere in a string, e.g. "teacher 0 (/home/me/runs/t0)".
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+\-]+/)+[\w.@+\-]+")


class HubPushError(RuntimeError):
    """A push that failed before anything was committed; the local export is untouched."""


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
) -> CommitInfo:
    """Upload the exported folder's shareable files in one commit and return its CommitInfo.

    The card is re-rendered for `repo_id` (loading code names the repo); results.json and
    feed_config.json are copied with local paths reduced to folder names and tokens removed.
    Raises HubPushError (no token, token refused, Hub unreachable) before anything is committed.
    """
    export_dir = Path(export_dir)
    if not (export_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"{export_dir} holds no exported model (model.safetensors); train or export first")
    token = token or get_token()
    if not token:
        raise HubPushError(
            f"no Hugging Face token to push {repo_id!r}: set HF_TOKEN or run `hf auth login`; "
            f"the export in {export_dir} is unchanged"
        )
    api = HfApi(token=token, library_name="feed-hf")
    with tempfile.TemporaryDirectory(prefix="feed-hf-push-") as staging:
        staging_dir = Path(staging)
        _stage_files(export_dir, staging_dir, push_connectors)
        try:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            write_model_card(staging_dir, _read_json(staging_dir / RESULTS_NAME), repo_id=repo_id)
            if revision and revision != constants.DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, folder_path=staging_dir, revision=revision, commit_message=commit_message
            )
        except HfHubHTTPError as error:
            raise HubPushError(_http_error_message(error, repo_id, export_dir)) from error
        except (HTTPError, OSError) as error:
            raise HubPushError(
                f"cannot reach the Hub at {constants.ENDPOINT} to push {repo_id!r} ({type(error).__name__}: {error}); "
                f"the export in {export_dir} is unchanged: retry with `feed-hf push --export_dir {export_dir} "
                f"--repo_id {repo_id}`"
            ) from error


def _stage_files(export_dir: Path, staging_dir: Path, push_connectors: bool) -> None:
    names = list(_PUSHED_FILES) + ([CONNECTORS_NAME] if push_connectors else [])
    if push_connectors and not (export_dir / CONNECTORS_NAME).is_file():
        raise FileNotFoundError(f"push_connectors: {export_dir} has no {CONNECTORS_NAME} (a CE-only model has none)")
    for name in names:
        source = export_dir / name
        if not source.is_file() or name == "README.md":
            continue  # README.md is rendered for the repo below
        if name.endswith(".json") and name != "config.json":
            (staging_dir / name).write_text(json.dumps(scrub_local_paths(_read_json(source)), indent=2))
        else:
            shutil.copy2(source, staging_dir / name)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def scrub_local_paths(value: Any) -> Any:
    """A JSON value with local paths reduced to their last component and token values removed.

    Catches whole-string paths (relative ones that exist here too) and absolute paths inside text.
    """
    if isinstance(value, dict):
        return {
            k: None if "token" in k.lower() and isinstance(v, str) else scrub_local_paths(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub_local_paths(item) for item in value]
    if not isinstance(value, str):
        return value
    prefix = "local-dir:" if value.startswith("local-dir:") else ""
    path = value.removeprefix(prefix)
    if os.path.isabs(path) or path.startswith(("~", "./", "../")) or (os.sep in path and os.path.exists(path)):
        return prefix + Path(path).name
    return _ABSOLUTE_PATH.sub(lambda match: Path(match.group(0)).name, value)


def _http_error_message(error: HfHubHTTPError, repo_id: str, export_dir: Path) -> str:
    status = error.response.status_code if error.response is not None else "?"
    if status in (401, 403):
        return (
            f"the Hub at {constants.ENDPOINT} refused the token for {repo_id!r} (HTTP {status}): use a token with "
            f"write access to that namespace (HF_TOKEN or `hf auth login`); the export in {export_dir} is unchanged"
        )
    return f"pushing {repo_id!r} to {constants.ENDPOINT} failed (HTTP {status}): {error}; {export_dir} is unchanged"
