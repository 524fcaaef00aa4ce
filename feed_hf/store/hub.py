"""Teacher stores on the Hub: parts pushed to and pulled from a dataset repo, verified before any is used.

Layout of the repo: one folder per part (one teacher's maps, `store_parts`), named by its fingerprint, holding
the part's files exactly as built here (`manifest.json`, `shard-*.safetensors`, `*.digests.safetensors`), and a
`README.md` dataset card (`store_card`). The fingerprint is the version: a part with other teachers, data or
settings has another name, so a push adds folders and never rewrites one (parts already on the Hub are skipped),
and a run pulls exactly the parts whose fingerprints its own key gives.

Pushed: the files the manifest names, nothing else (no lock, no `.building`, no local path: the key holds the
teacher's weights digest, never its path; every pushed manifest and the card are checked for this machine's paths
and token values before the repo is touched). Each part is verified in full before it is pushed.

Pulled: into `<teacher_store_dir>/.pull-<fp>-<random>/`, then verified in full (the folder name is the
fingerprint of the manifest's key, every shard's size, header and rows match the checksums) and only then moved
to `<teacher_store_dir>/<fp>`: a partial, truncated or edited download is refused in one line and removed, and
nothing of it is ever read. Pinned: every pull resolves the revision to a commit sha first and downloads that.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, get_token, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from ..publishing.portable import local_fragment, local_fragments_in_json
from .card import store_card
from .integrity import DIGESTS_SUFFIX, StoreIntegrityError, read_manifest
from .key import store_fingerprint
from .reader import MANIFEST, TeacherStore

__all__ = [
    "HubStoreError",
    "hub_manifests",
    "hub_parts",
    "local_parts",
    "pull_missing_parts",
    "pull_store",
    "push_store",
    "split_repo",
    "verify_part",
]

CARD = "README.md"


class HubStoreError(ValueError):
    """A teacher store push or pull the Hub refused or could not answer."""


def split_repo(spec: str) -> tuple[str, str | None]:
    """`ns/name@revision` -> ("ns/name", "revision"); without "@" the revision is None (main)."""
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"teacher store repo {spec!r} is not 'namespace/name' or 'namespace/name@revision'")
    return repo_id, revision or None


def local_parts(root: str | Path, fingerprints: Sequence[str] | None = None) -> dict[str, Path]:
    """{fingerprint: folder} of the complete parts under `root` (all, or those of `fingerprints`)."""
    root = Path(root)
    found = {path.name: path for path in sorted(root.iterdir()) if (path / MANIFEST).is_file()} if root.is_dir() else {}
    if fingerprints is None:
        return found
    missing = [fingerprint for fingerprint in fingerprints if fingerprint not in found]
    if missing:
        raise FileNotFoundError(f"no complete teacher store part {missing} under {root}; build it with a run first")
    return {fingerprint: found[fingerprint] for fingerprint in fingerprints}


def verify_part(folder: Path, fingerprint: str) -> dict[str, Any]:
    """The manifest of the one-teacher part at `folder`, after a full verification; `StoreIntegrityError` else."""
    manifest = read_manifest(folder, MANIFEST)
    if store_fingerprint(manifest["key"]) != fingerprint or len(manifest["key"].get("teachers", [])) != 1:
        raise StoreIntegrityError(
            f"teacher store part {folder}: its manifest is not that of part {fingerprint} (one teacher whose key "
            "gives that fingerprint); the part is not used"
        )
    TeacherStore.open(folder, manifest["key"], verify="full")
    return manifest


def _part_files(folder: Path, manifest: dict[str, Any]) -> list[Path]:
    shards = [folder / shard["file"] for shard in manifest["shards"]]
    return [folder / MANIFEST, *shards, *(shard.with_name(shard.name + DIGESTS_SUFFIX) for shard in shards)]


def _hub_call(what: str, repo_id: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise HubStoreError(f"the Hub refused to {what} {repo_id!r} (HTTP {status}: {_first_line(error)})") from None
    except OSError as error:
        raise HubStoreError(f"cannot reach the Hub to {what} {repo_id!r} ({type(error).__name__}: {error})") from None


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [""])[0]


def _secrets(token: str | None) -> list[str]:
    values = (token, get_token(), os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    return [value for value in values if value]


def _refuse_local(name: str, fragment: tuple[str, str] | str | None) -> None:
    if fragment:
        raise HubStoreError(
            f"refusing to push the teacher store: {name} holds {fragment!r}, a path of this machine or a token; "
            "nothing was pushed"
        )


def push_store(
    root: str | Path,
    repo_id: str,
    fingerprints: Sequence[str] | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Add teacher store parts (feed-hf)",
) -> tuple[str | None, list[str]]:
    """Push the parts under `root` (all, or `fingerprints`) missing from dataset `repo_id`, and its card, in one
    commit; (the commit sha or None when every part was there, the fingerprints added)."""
    token = token or get_token()
    if not token:
        raise HubStoreError(f"no Hugging Face token to push {repo_id!r}: set HF_TOKEN or run `hf auth login`")
    parts = local_parts(root, fingerprints)
    if not parts:
        raise FileNotFoundError(f"no complete teacher store part under {root}; build one with a run first")
    manifests = {fingerprint: verify_part(folder, fingerprint) for fingerprint, folder in parts.items()}
    secrets = _secrets(token)
    for fingerprint, manifest in manifests.items():
        _refuse_local(f"{fingerprint}/{MANIFEST}", next(local_fragments_in_json(manifest, secrets), None))
    api = HfApi(token=token, library_name="feed-hf")
    _hub_call("create", repo_id, lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
    present = set(_hub_call("list", repo_id, lambda: api.list_repo_files(repo_id, repo_type="dataset")))
    on_hub = {name.split("/")[0] for name in present if name.endswith(f"/{MANIFEST}") and name.count("/") == 1}
    added = [fingerprint for fingerprint in manifests if fingerprint not in on_hub]
    if not added:
        return None, []
    every = {**{fp: _hub_manifest(repo_id, None, fp, token) for fp in on_hub}, **manifests}
    card = store_card(repo_id, every)
    _refuse_local(CARD, local_fragment(card, secrets))
    operations = [CommitOperationAdd(CARD, card.encode())]
    for fingerprint in added:
        folder = parts[fingerprint]
        files = _part_files(folder, manifests[fingerprint])
        operations += [CommitOperationAdd(f"{fingerprint}/{path.name}", str(path)) for path in files]
    commit = _hub_call(
        "push to", repo_id,
        lambda: api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="dataset"),
    )  # fmt: skip
    return commit.oid, added


def _hub_manifest(repo_id: str, revision: str | None, fingerprint: str, token: str | None) -> dict[str, Any]:
    name = f"{fingerprint}/{MANIFEST}"
    path = _hub_call(
        "read", repo_id, lambda: hf_hub_download(repo_id, name, repo_type="dataset", revision=revision, token=token)
    )
    return json.loads(Path(path).read_text())


def hub_manifests(repo: str, token: str | None = None) -> dict[str, dict[str, Any]]:
    """{fingerprint: manifest} of the parts of `repo` ("ns/name[@revision]"), read at one commit."""
    repo_id, revision = split_repo(repo)
    sha, parts = hub_parts(repo_id, revision, token)
    return {fingerprint: _hub_manifest(repo_id, sha, fingerprint, token) for fingerprint in sorted(parts)}


def hub_parts(repo_id: str, revision: str | None, token: str | None = None) -> tuple[str, set[str]]:
    """(the commit sha `revision` resolves to, the fingerprints of the parts there)."""
    api = HfApi(token=token, library_name="feed-hf")
    info = _hub_call("read", repo_id, lambda: api.dataset_info(repo_id, revision=revision, files_metadata=False))
    names = [sibling.rfilename for sibling in info.siblings or []]
    return info.sha, {name.split("/")[0] for name in names if name.endswith(f"/{MANIFEST}") and name.count("/") == 1}


def pull_store(
    repo: str, root: str | Path, fingerprints: Sequence[str] | None = None, token: str | None = None
) -> tuple[str, list[str]]:
    """Pull the parts of `repo` ("ns/name[@revision]"; all, or `fingerprints` that are there) not yet under `root`,
    each verified in full before it is moved into place; (the commit sha pulled, the fingerprints pulled)."""
    repo_id, revision = split_repo(repo)
    sha, available = hub_parts(repo_id, revision, token)
    wanted = sorted(available) if fingerprints is None else [fp for fp in fingerprints if fp in available]
    root = Path(root)
    pulled = []
    for fingerprint in wanted:
        if (root / fingerprint / MANIFEST).is_file():
            continue  # complete here already (opened and verified by the run that uses it)
        _pull_part(repo_id, sha, fingerprint, root, token)
        pulled.append(fingerprint)
    return sha, pulled


def _pull_part(repo_id: str, sha: str, fingerprint: str, root: Path, token: str | None) -> None:
    staging = root / f".pull-{fingerprint}-{os.urandom(4).hex()}"
    try:
        staging.mkdir(parents=True)
        _hub_call(
            "download from", repo_id,
            lambda: snapshot_download(repo_id, repo_type="dataset", revision=sha, allow_patterns=[f"{fingerprint}/*"],
                                      local_dir=staging, token=token),
        )  # fmt: skip
        try:
            verify_part(staging / fingerprint, fingerprint)
        except StoreIntegrityError as error:  # the problem alone, its files named as in the repo
            problem = str(error).split(": ", 1)[-1].split("; the")[0].replace(f"{staging}/", "")
            raise StoreIntegrityError(
                f"teacher store part {fingerprint} pulled from {repo_id}@{sha[:12]} failed verification ({problem}); "
                "nothing of it was kept or used. Push that part again from a machine that has it, or build it here "
                "(drop teacher_store_repo)"
            ) from None
        try:
            os.replace(staging / fingerprint, root / fingerprint)
        except OSError:
            if not (root / fingerprint / MANIFEST).is_file():  # else another process pulled it meanwhile
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull_missing_parts(
    repo: str,
    root: Path,
    fingerprints: Sequence[str],
    rank: int,
    barrier: Callable[[], None],
    gather_object: Callable[[list[Any]], list[Any]] | None,
) -> list[str]:
    """Rank 0 pulls the parts of `fingerprints` that `repo` holds and `root` lacks; every rank gets the sources
    ("hub:REPO@SHA" for a part pulled now, else "store") or the same error. Collective."""
    outcome: tuple[str, Any] = ("ok", [])
    if rank == 0:
        try:
            repo_id, _ = split_repo(repo)
            sha, pulled = pull_store(repo, root, fingerprints)
            outcome = ("ok", [f"hub:{repo_id}@{sha}" if fp in pulled else "store" for fp in fingerprints])
        except (ValueError, OSError) as error:
            outcome = ("error", (type(error), str(error)))
    if gather_object is not None:
        outcome = gather_object([outcome])[0]
    barrier()
    if outcome[0] == "error":
        kind, message = outcome[1]
        raise (kind if issubclass(kind, ValueError) else HubStoreError)(message)
    return outcome[1] or ["store"] * len(fingerprints)
