"""A loopback Hugging Face Hub for tests (stdlib only).

`LoopbackHub` serves the subset of the Hub HTTP API that the real `huggingface_hub` client (and therefore
`transformers` / `timm`) uses to create repos, commit files (regular and LFS), create branches, list trees and
commits, and download files.  Point the client at it with ``HF_ENDPOINT=hub.url`` *before* `huggingface_hub` is
imported, and set ``HF_HUB_DISABLE_XET=1`` so uploads take the classic LFS path instead of the Xet protocol.

Repos live in memory.  Every commit gets a fresh 40-hex sha and keeps a full snapshot of its tree, so any
revision (branch name or commit sha) stays downloadable.  Like the real Hub, a new repo starts with an
"initial commit" holding a `.gitattributes` file.

Deliberate simplifications: any valid token may read and write every repo (one-user hub); no pull requests,
tags, pagination, Range requests or Xet; a repo id must be ``namespace/name``.
Set ``LOOPBACK_HUB_DEBUG=1`` to log every request to stderr.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# Files the real Hub routes to LFS by default (a subset of its default .gitattributes), plus anything >= 10 MB.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".npy", ".npz", ".pkl")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}  # URL prefix of each repo type

_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+?)\.git/info/lfs/objects/batch$")
_LFS_OBJECT = re.compile(r"^/__lfs/([0-9a-f]{64})$")  # our stand-in for the presigned S3 upload URL


def free_port() -> int:
    """A TCP port that is free right now, so a test session can export HF_ENDPOINT before starting the hub."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # the Hub's date format


@dataclass(frozen=True)
class _Blob:
    data: bytes
    lfs: bool

    @property
    def git_oid(self) -> str:  # what `git hash-object` prints; the ETag of regular files
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def sha256(self) -> str:  # the LFS oid; the ETag of LFS files
        return hashlib.sha256(self.data).hexdigest()

    @property
    def oid(self) -> str:  # the oid the client compares against to skip unchanged files
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class _Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    author: str
    tree: dict[str, _Blob]
    date: str = field(default_factory=_now)

    def as_json(self) -> dict:  # one entry of the `commits` listing
        authors = [{"user": self.author}]
        return dict(id=self.sha, title=self.title, message=self.message, date=self.date, authors=authors)


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, _Commit] = field(default_factory=dict)  # insertion order = creation order
    branches: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=_now)

    def resolve(self, revision: str) -> _Commit:
        sha = self.branches.get(revision, revision)
        if sha not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[sha]

    def history(self, revision: str) -> list[_Commit]:
        """`revision` and its ancestors, newest first."""
        commits = [self.resolve(revision)]
        while commits[-1].parent is not None:
            commits.append(self.commits[commits[-1].parent])
        return commits

    @property
    def url_path(self) -> str:
        return PREFIXES[self.repo_type] + self.repo_id


class HubError(Exception):
    """An error response; `code` becomes the X-Error-Code header that the client maps to its exception types."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    token: str | None  # a valid token, or None when no Authorization header was sent

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


class LoopbackHub:
    """An in-memory Hub on http://127.0.0.1:PORT, served from a daemon thread."""

    def __init__(
        self, port: int = 0, valid_tokens: set[str] = frozenset({"hf_test_token"}), user: str = "tester"
    ) -> None:
        self.port, self.valid_tokens, self.user = port, set(valid_tokens), user
        self.url = f"http://127.0.0.1:{port}"
        self.requests_seen: list[tuple[str, str, dict]] = []  # (method, path, headers with lower-cased names)
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lfs: dict[str, bytes] = {}  # uploaded LFS objects by sha256, shared by all repos
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> LoopbackHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.hub = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # closing the socket makes later connections fail fast (refused)
            self._server = None

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- inspection helpers for assertions ---------------------------------------------------------------------
    def commits(self, repo_id: str, repo_type: str = "model", revision: str | None = None) -> list[str]:
        """Commit shas, newest first: all of the repo's commits, or the history of `revision` if given."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return list(reversed(repo.commits)) if revision is None else [c.sha for c in repo.history(revision)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        with self._lock:
            tree = self._repos[(repo_type, repo_id)].resolve(revision).tree
            return {path: blob.data for path, blob in tree.items()}

    # ---- request handling --------------------------------------------------------------------------------------
    def _handle(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        with self._lock:
            self.requests_seen.append((method, raw_path, {k.lower(): v for k, v in headers.items()}))
            try:
                split = urlsplit(raw_path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                request = _Request(method, split.path, query, body, self._token(headers.get("Authorization")))
                status, extra, payload = self._route(request)
            except Exception as exc:  # always answer: a dropped connection would make the client retry and hang
                err = exc if isinstance(exc, HubError) else _unexpected(exc)
                extra = {"X-Error-Message": err.message, **err.headers}
                if err.code:
                    extra["X-Error-Code"] = err.code
                status, payload = err.status, {"error": err.message}
        if isinstance(payload, (dict, list)):
            extra = {"Content-Type": "application/json", **extra}
            payload = json.dumps(payload).encode()
        if os.environ.get("LOOPBACK_HUB_DEBUG") == "1":
            print(f"[loopback-hub] {method} {raw_path} -> {status}", file=sys.stderr)
        return status, extra, payload

    def _token(self, authorization: str | None) -> str | None:
        if authorization is None:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self.valid_tokens:  # the real Hub rejects a bad token even on public reads
            raise HubError(401, "Invalid credentials in Authorization header")
        return token

    def _route(self, req: _Request) -> tuple[int, dict, dict | list | bytes]:
        if req.path == "/api/whoami-v2" and req.method == "GET":
            self._require_token(req)
            auth = {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}}
            return 200, {}, {"type": "user", "name": self.user, "fullname": self.user, "orgs": [], "auth": auth}
        if req.path == "/api/validate-yaml" and req.method == "POST":
            return 200, {}, {"errors": [], "warnings": []}
        if req.path == "/api/repos/create" and req.method == "POST":
            return self._create_repo(req)
        if m := _API.match(req.path):
            return self._api(req, m[1][:-1], m[2], m[3] or "")
        if (m := _RESOLVE.match(req.path)) and req.method in ("GET", "HEAD"):
            return self._resolve(self._repo(req, (m[1] or "models")[:-1], m[2]), unquote(m[3]), unquote(m[4]))
        if (m := _LFS_BATCH.match(req.path)) and req.method == "POST":
            return self._lfs_batch(req, (m[1] or "models")[:-1], m[2])
        if (m := _LFS_OBJECT.match(req.path)) and req.method == "PUT":
            if hashlib.sha256(req.body).hexdigest() != m[1]:
                raise HubError(400, "Uploaded content does not match its sha256 oid")
            self._lfs[m[1]] = req.body
            return 200, {}, b""
        raise HubError(404, f"LoopbackHub does not implement {req.method} {req.path}")

    def _require_token(self, req: _Request) -> None:
        if req.token is None:
            raise HubError(401, "You must be authenticated to access this resource (no token sent)")

    def _repo(self, req: _Request, repo_type: str, repo_id: str) -> _Repo:
        """The repo, if the request may read it; private and missing repos look the same (404), like on the Hub."""
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and req.token is None):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _create_repo(self, req: _Request) -> tuple[int, dict, dict]:
        self._require_token(req)
        payload = req.json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        url = f"{self.url}/{PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self._repos:
            return 409, {}, {"error": f"You already created this {repo_type} repo", "url": url}
        private = payload.get("visibility") == "private" or payload.get("private") is True
        repo = self._repos[(repo_type, repo_id)] = _Repo(repo_type, repo_id, private)
        self._commit(repo, "main", {".gitattributes": _Blob(GITATTRIBUTES, False)}, "initial commit", author="system")
        return 200, {}, {"url": url, "name": repo_id, "id": repo_id}

    def _commit(self, repo: _Repo, branch: str, tree: dict, title: str, message: str = "", author: str = "") -> _Commit:
        """Record `tree` as a new commit on top of `branch` and move the branch to it."""
        parent = repo.branches.get(branch)
        # A commit sha only has to be unique and 40-hex; hashing a counter with the content guarantees that.
        self._counter += 1
        seed = json.dumps([self._counter, time.time_ns(), parent, title, sorted((p, b.oid) for p, b in tree.items())])
        commit = _Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, message, author or self.user, tree)
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit

    def _api(self, req: _Request, repo_type: str, repo_id: str, rest: str) -> tuple[int, dict, dict | list]:
        op, *args = rest.split("/") if rest else [""]
        if req.method == "POST":
            self._require_token(req)
        repo = self._repo(req, repo_type, repo_id)
        match req.method, op:
            case "GET", "" | "revision":
                return 200, {}, self._info(repo, repo.resolve(unquote(args[0]) if args else "main"))
            case "GET", "tree":
                return 200, {}, _tree_entries(repo.resolve(unquote(args[0])), unquote("/".join(args[1:])), req.query)
            case "GET", "commits":
                return 200, {}, [c.as_json() for c in repo.history(unquote(args[0]) if args else "main")]
            case "GET", "refs":
                refs = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in repo.branches.items()]
                return 200, {}, {"branches": refs, "converts": [], "tags": [], "pullRequests": []}
            case "POST", "preupload":
                return 200, {}, self._preupload(req, repo.resolve(unquote(args[0])))
            case "POST", "commit":
                return 200, {}, self._apply_commit(req, repo, unquote(args[0]))
            case "POST", "branch":
                branch = unquote(args[0])
                if branch in repo.branches:
                    raise HubError(409, f"Reference refs/heads/{branch} already exists")
                repo.branches[branch] = repo.resolve(req.json().get("startingPoint") or "main").sha
                return 200, {}, {}
        raise HubError(404, f"LoopbackHub does not implement {req.method} {req.path}")

    def _info(self, repo: _Repo, commit: _Commit) -> dict:
        info = dict(id=repo.repo_id, author=repo.repo_id.split("/")[0], sha=commit.sha, private=repo.private)
        info.update(gated=False, disabled=False, downloads=0, likes=0, tags=[], createdAt=repo.created)
        info.update(lastModified=commit.date, siblings=[_sibling(p, b) for p, b in sorted(commit.tree.items())])
        return info

    def _preupload(self, req: _Request, commit: _Commit) -> dict:
        if req.query.get("create_pr"):
            raise HubError(400, "LoopbackHub does not support pull requests (create_pr)")
        answers = []
        for item in req.json()["files"]:
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE
            existing = commit.tree.get(item["path"])  # lets the client skip unchanged files
            oid = existing.oid if existing is not None and existing.lfs == lfs else None
            answers.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return {"files": answers, "commitOid": commit.sha}

    def _lfs_batch(self, req: _Request, repo_type: str, repo_id: str) -> tuple[int, dict, dict]:
        self._require_token(req)
        self._repo(req, repo_type, repo_id)
        objects = []
        for obj in req.json()["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self._lfs:  # no "actions" tells the client the object is already stored
                answer["actions"] = {"upload": {"href": f"{self.url}/__lfs/{obj['oid']}", "expires_in": 3600}}
            objects.append(answer)
        return 200, {"Content-Type": "application/vnd.git-lfs+json"}, {"transfer": "basic", "objects": objects}

    def _apply_commit(self, req: _Request, repo: _Repo, branch: str) -> dict:
        if req.query.get("create_pr"):
            raise HubError(400, "LoopbackHub does not support pull requests (create_pr)")
        if branch not in repo.branches:  # commits land on branch heads only, never on a bare sha
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        header = lines[0]["value"] if lines and lines[0]["key"] == "header" else {}
        head = repo.commits[repo.branches[branch]]
        if header.get("parentCommit") not in (None, head.sha):
            raise HubError(412, f"Parent commit {header['parentCommit']} is not the head of {branch}")
        tree = dict(head.tree)  # build the new tree aside so a bad operation leaves the repo untouched
        for line in lines[1:]:
            _apply_operation(tree, line["key"], line["value"], self._lfs)
        commit = self._commit(repo, branch, tree, header.get("summary") or "", header.get("description") or "")
        url = f"{self.url}/{repo.url_path}/commit/{commit.sha}"
        return {"success": True, "commitOid": commit.sha, "commitUrl": url, "pullRequestUrl": None}

    def _resolve(self, repo: _Repo, revision: str, path: str) -> tuple[int, dict, bytes]:
        commit = repo.resolve(revision)
        headers = {"X-Repo-Commit": commit.sha}
        blob = commit.tree.get(path)
        if blob is None:  # X-Repo-Commit on the 404 lets the client cache the file's absence at this commit
            raise HubError(404, "Entry not found", "EntryNotFound", headers)
        headers.update({"Content-Type": "application/octet-stream", "ETag": f'"{blob.git_oid}"'})
        if blob.lfs:  # the client prefers X-Linked-Etag, so LFS blobs are cached under their sha256 like on the Hub
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(blob.data))})
        return 200, headers, blob.data


def _unexpected(exc: Exception) -> HubError:
    if os.environ.get("LOOPBACK_HUB_DEBUG") == "1":
        traceback.print_exception(exc)
    # A malformed request is the client's fault (400, not retried); anything else is a bug here (500, retried).
    status = 400 if isinstance(exc, (KeyError, IndexError, TypeError, ValueError)) else 500
    return HubError(status, f"LoopbackHub could not handle the request: {exc!r}")


def _sibling(path: str, blob: _Blob) -> dict:
    lfs = {"sha256": blob.sha256, "size": len(blob.data), "pointerSize": 134} if blob.lfs else None
    return {"rfilename": path, "size": len(blob.data), "blobId": blob.git_oid, "lfs": lfs}


def _tree_entries(commit: _Commit, base: str, query: dict[str, str]) -> list[dict]:
    """The `tree` listing of folder `base`: its files and folders, or everything beneath it if recursive."""
    recursive = query.get("recursive", "").lower() in ("1", "true")
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    entries: dict[str, dict] = {}
    for path, blob in sorted(commit.tree.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        folders = parts[:-1] if recursive else parts[:1] if len(parts) > 1 else []
        for depth in range(1, len(folders) + 1):
            folder = prefix + "/".join(folders[:depth])
            entries.setdefault(folder, {"type": "directory", "path": folder, "size": 0, "oid": _sha1(folder)})
        if recursive or len(parts) == 1:
            lfs = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": 134} if blob.lfs else None
            entries[path] = {"type": "file", "path": path, "size": len(blob.data), "oid": blob.git_oid, "lfs": lfs}
    if prefix and not entries:
        raise HubError(404, f"Entry not found: {base}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
    return list(entries.values())


def _apply_operation(tree: dict[str, _Blob], key: str, value: dict, lfs_store: dict[str, bytes]) -> None:
    path = value["path"]
    if key == "file":
        tree[path] = _Blob(base64.b64decode(value["content"]), lfs=False)
    elif key == "lfsFile":
        if value["oid"] not in lfs_store:
            raise HubError(400, f"LFS object {value['oid']} for {path} was never uploaded")
        tree[path] = _Blob(lfs_store[value["oid"]], lfs=True)
    elif key == "deletedFile":
        if tree.pop(path, None) is None:
            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif key == "deletedFolder":
        for name in [name for name in tree if name.startswith(path.rstrip("/") + "/")]:
            del tree[name]
    else:
        raise HubError(400, f"Unsupported commit operation {key!r}")


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Reads the request, lets the hub answer it, writes the answer (HTTP/1.0: one request per connection)."""

    server_version = "LoopbackHub/1.0"

    def _serve(self) -> None:
        hub: LoopbackHub = self.server.hub  # type: ignore[attr-defined]
        status, headers, payload = hub._handle(self.command, self.path, self.headers, self._read_body())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))  # also on HEAD: the client reads the size from it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []  # streamed uploads (file objects) may arrive chunked
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence the default stderr access log
        pass
