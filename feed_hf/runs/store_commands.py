"""`feed-hf store push|pull|info`: teacher store parts to and from a Hub dataset repo, and what a store holds.

The work is `feed_hf.store.hub` (push, pull, verification) and `feed_hf.store.card` (the facts of each part);
these are the command-line faces, one dataclass each.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StoreInfoArguments", "StorePullArguments", "StorePushArguments", "store_info", "store_pull", "store_push"]

_DIR_HELP = "Folder of the teacher stores (a run's teacher_store_dir). Unset: ~/.cache/feed_hf/teacher_store."
_PARTS_HELP = "Fingerprints (folder names) of the parts to take. Unset: every part."


@dataclass
class StorePushArguments:
    repo_id: str = field(metadata={"help": "Hub dataset repo 'namespace/name' (created if missing)."})
    teacher_store_dir: str | None = field(default=None, metadata={"help": _DIR_HELP})
    parts: list[str] = field(default_factory=list, metadata={"help": _PARTS_HELP})
    private: bool = field(default=False, metadata={"help": "Create the repo private (no effect if it exists)."})


@dataclass
class StorePullArguments:
    repo_id: str = field(metadata={"help": "Hub dataset repo 'namespace/name' or 'namespace/name@revision'."})
    teacher_store_dir: str | None = field(default=None, metadata={"help": _DIR_HELP})
    parts: list[str] = field(default_factory=list, metadata={"help": _PARTS_HELP})


@dataclass
class StoreInfoArguments:
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub dataset repo 'namespace/name[@revision]'. Unset: the local store folder."}
    )
    teacher_store_dir: str | None = field(default=None, metadata={"help": _DIR_HELP})


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _root(folder: str | None) -> Path:
    from ..store.reader import default_store_root

    return Path(folder) if folder else default_store_root()


def store_push(args: StorePushArguments) -> dict[str, Any]:
    """Push the complete parts of a store folder missing from the repo, each verified in full, with its card."""
    from ..store.hub import push_store

    sha, added = push_store(_root(args.teacher_store_dir), args.repo_id, args.parts or None, private=args.private)
    if sha is None:
        _say(f"every part is on {args.repo_id} already; nothing pushed")
    else:
        _say(f"pushed {len(added)} part(s) to dataset {args.repo_id} at {sha}: {', '.join(added)}")
    return {"commit": sha, "added": added}


def store_pull(args: StorePullArguments) -> dict[str, Any]:
    """Pull the repo's parts not in the store folder, each verified in full before it is moved into place."""
    from ..store.hub import pull_store

    sha, pulled = pull_store(args.repo_id, _root(args.teacher_store_dir), args.parts or None)
    _say(f"pulled {len(pulled)} part(s) of {args.repo_id} at {sha}" + (f": {', '.join(pulled)}" if pulled else ""))
    return {"commit": sha, "pulled": pulled}


def store_info(args: StoreInfoArguments) -> list[dict[str, Any]]:
    """One line per part (teacher, map, images, views, storage, size) of a local store folder or a Hub repo."""
    from ..store.card import part_summary
    from ..store.hub import hub_manifests, local_parts
    from ..store.integrity import read_manifest

    if args.repo_id:
        manifests = hub_manifests(args.repo_id)
    else:
        parts = local_parts(_root(args.teacher_store_dir))
        manifests = {fingerprint: read_manifest(folder, "manifest.json") for fingerprint, folder in parts.items()}
    rows = []
    for fingerprint, manifest in sorted(manifests.items()):
        if len(manifest["key"]["teachers"]) != 1:  # a store of several teachers in one folder (before parts)
            continue
        rows.append(part_summary(fingerprint, manifest))
    for row in rows:
        _say(json.dumps(row))
    if not rows:
        _say("no teacher store part there")
    return rows
