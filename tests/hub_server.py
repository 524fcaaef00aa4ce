"""A loopback Hugging Face Hub for tests (stdlib only): the routes feed-hf's pushes and pulls use, no more.

Set HF_ENDPOINT=hub.url before huggingface_hub is imported, and HF_HUB_DISABLE_XET=1 (classic LFS uploads).
Model and dataset repos in memory; each commit keeps its whole tree, so every branch and commit sha stays downloadable.
Routes: whoami-v2, validate-yaml, repos/create, info[/revision/REV], tree/REV[/PATH], preupload, commit
(file, lfsFile), branch, LFS batch + PUT, HEAD/GET resolve; 404s carry the X-Error-Code the client maps.
Any valid token reads and writes every repo; a bad token gets 401; a private repo is a 404 without a token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

__all__ = ["HubError", "LoopbackHub", "free_port"]

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".npy", ".npz", ".pkl")
# Dataset repos (teacher stores) live beside the model repos, keyed "datasets/ns/name" as in their URLs.
_API = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)/?(.*)$")
_RESOLVE = re.compile(r"^/((?:datasets/)?[^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/((?:datasets/)?[^/]+/[^/]+?)\.git/info/lfs/objects/batch$")
_LFS_PUT = re.compile(r"^/__lfs/([0-9a-f]{64})$")  # our stand-in for the presigned storage URL


def free_port() -> int:
    """A TCP port that is free now, so a test session can export HF_ENDPOINT before starting the hub."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubError(Exception):
    """An error answer, with the headers the client reads it from."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = {"X-Error-Message": message.encode("ascii", "replace").decode()}  # headers are latin-1
        self.headers.update({"X-Error-Code": code} if code else {})
        self.headers.update({"X-Repo-Commit": commit} if commit else {})  # lets the client cache a file's absence


@dataclass
class _Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> head commit sha
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> {path: bytes}, oldest first
    parents: dict[str, str | None] = field(default_factory=dict)

    def sha(self, revision: str) -> str:
        sha = self.branches.get(revision, revision)
        if sha not in self.trees:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    def commit(self, branch: str, tree: dict[str, bytes]) -> str:
        sha = os.urandom(20).hex()  # random: one HF cache never confuses the commits of two hubs
        self.trees[sha], self.parents[sha], self.branches[branch] = tree, self.branches.get(branch), sha
        return sha


@dataclass
class _Request:
    method: str
    path: str
    body: bytes
    token: str | None

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


class LoopbackHub:
    """An in-memory Hub on http://127.0.0.1:PORT, served from a daemon thread."""

    def __init__(self, port: int = 0, valid_tokens: set[str] = frozenset({"hf_test_token"}), user: str = "tester"):
        self.port, self.valid_tokens, self.user = port, set(valid_tokens), user
        self.url = f"http://127.0.0.1:{port}"
        self.requests_seen: list[tuple[str, str, dict]] = []  # (method, path, headers with lower-case names)
        # A slow Hub: while set to an unset Event, commits wait for it (at most a minute) before they are answered.
        self.commit_gate: threading.Event | None = None
        self._repos: dict[str, _Repo] = {}
        self._lfs: dict[str, bytes] = {}  # uploaded LFS objects by sha256
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

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
            self._server.server_close()  # later connections are refused at once instead of hanging
            self._server = None

    def commits(self, repo_id: str, revision: str | None = None, repo_type: str = "model") -> list[str]:
        """Commit shas, newest first: all of the repo's commits, or the history of `revision` if given."""
        with self._lock:
            repo = self._repos[_key(repo_id, repo_type)]
            shas = [repo.sha(revision)] if revision else list(reversed(repo.trees))
            while revision and repo.parents[shas[-1]] is not None:
                shas.append(repo.parents[shas[-1]])
            return shas

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        with self._lock:
            repo = self._repos[_key(repo_id, repo_type)]
            return dict(repo.trees[repo.sha(revision)])

    def replace_file(self, repo_id: str, path: str, data: bytes | None, repo_type: str = "model") -> str:
        """A new commit on main where `path` holds `data`, or is gone if None (a bad upload, for tests); its sha."""
        with self._lock:
            repo = self._repos[_key(repo_id, repo_type)]
            tree = {**repo.trees[repo.branches["main"]], path: data}
            return repo.commit("main", {name: value for name, value in tree.items() if value is not None})

    def answer(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        with self._lock:
            self.requests_seen.append((method, raw_path, headers))
            try:
                path = urlsplit(raw_path).path  # the query (tree's recursive=, expand=) changes nothing here
                status, extra, payload = self._route(_Request(method, path, body, self._token(method, path, headers)))
            except Exception as exc:  # always answer: a dropped connection makes the client retry and hang
                error = exc if isinstance(exc, HubError) else HubError(400, f"LoopbackHub cannot handle it: {exc!r}")
                status, extra, payload = error.status, error.headers, {"error": error.message}
        if isinstance(payload, (dict, list)):
            extra, payload = {"Content-Type": "application/json", **extra}, json.dumps(payload).encode()
        return status, extra, payload

    def _token(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        """The request's token if valid, None if none was sent; the Hub refuses a bad token even on reads."""
        token = headers["authorization"].removeprefix("Bearer ").strip() if "authorization" in headers else None
        if token is not None and token not in self.valid_tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        if token is None and (method == "POST" or path == "/api/whoami-v2"):  # writes (and who-am-I) need one
            raise HubError(401, "You must be authenticated to access this resource (no token sent)")
        return token

    def _route(self, req: _Request) -> tuple[int, dict, dict | list | bytes]:
        if (req.method, req.path) == ("GET", "/api/whoami-v2"):  # feed-hf asks it for a repo id without namespace
            return 200, {}, {"type": "user", "name": self.user, "orgs": []}
        if (req.method, req.path) == ("POST", "/api/validate-yaml"):  # every model-card push asks it
            return 200, {}, {"errors": [], "warnings": []}
        if (req.method, req.path) == ("POST", "/api/repos/create"):
            return self._create_repo(req)
        if req.method == "PUT" and (match := _LFS_PUT.match(req.path)):
            self._lfs[match[1]] = req.body
            return 200, {}, b""
        if req.method == "POST" and (match := _LFS_BATCH.match(req.path)):
            return self._lfs_batch(req)
        if req.method in ("GET", "HEAD") and (match := _RESOLVE.match(req.path)):
            return _resolve(self._repo(req, match[1]), unquote(match[2]), unquote(match[3]))
        if match := _API.match(req.path):
            repo_id = match[2] if match[1] == "models" else f"datasets/{match[2]}"
            return self._api(req, repo_id, [unquote(part) for part in match[3].split("/")])
        raise HubError(404, f"LoopbackHub does not implement {req.method} {req.path}")

    def _repo(self, req: _Request, repo_id: str) -> _Repo:
        """The repo, if the request may read it; private and missing repos look the same (404), as on the Hub."""
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and req.token is None):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _create_repo(self, req: _Request) -> tuple[int, dict, dict]:
        payload = req.json()
        repo_id = _key(f"{payload.get('organization') or self.user}/{payload['name']}", payload.get("type") or "model")
        url = f"{self.url}/{repo_id}"
        if repo_id in self._repos:  # the client's exist_ok turns this 409 into success
            return 409, {}, {"error": "You already created this model repo", "url": url}
        private = payload.get("private") is True or payload.get("visibility") == "private"
        self._repos[repo_id] = _Repo(private)
        self._repos[repo_id].commit("main", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
        bare_id = repo_id.removeprefix("datasets/")
        return 200, {}, {"url": url, "name": bare_id, "id": bare_id}

    def _api(self, req: _Request, repo_id: str, parts: list[str]) -> tuple[int, dict, dict | list]:
        repo, (op, *args) = self._repo(req, repo_id), parts
        match req.method, op:
            case "GET", "" | "revision":
                sha = repo.sha(args[0] if args else "main")
                siblings = [{"rfilename": path} for path in sorted(repo.trees[sha])]
                bare_id = repo_id.removeprefix("datasets/")
                return 200, {}, {"id": bare_id, "sha": sha, "private": repo.private, "siblings": siblings}
            case "GET", "tree":
                return 200, {}, _tree(repo, args[0], "/".join(args[1:]))
            case "POST", "preupload":
                return 200, {}, _upload_modes(req.json()["files"])
            case "POST", "commit":
                return 200, {}, self._commit(req, repo_id, repo, args[0])
            case "POST", "branch":
                if args[0] in repo.branches:  # the client's exist_ok turns this 409 into success
                    raise HubError(409, f"Reference refs/heads/{args[0]} already exists")
                repo.branches[args[0]] = repo.sha(req.json().get("startingPoint") or "main")
                return 200, {}, {}
        raise HubError(404, f"LoopbackHub does not implement {req.method} {req.path}")

    def _lfs_batch(self, req: _Request) -> tuple[int, dict, dict]:
        objects = [{"oid": obj["oid"], "size": obj["size"]} for obj in req.json()["objects"]]
        for obj in objects:  # an object without "actions" is one the hub already holds: the client skips it
            if obj["oid"] not in self._lfs:
                obj["actions"] = {"upload": {"href": f"{self.url}/__lfs/{obj['oid']}"}}
        return 200, {}, {"transfer": "basic", "objects": objects}

    def _commit(self, req: _Request, repo_id: str, repo: _Repo, branch: str) -> dict:
        if branch not in repo.branches:  # commits land on branch heads only, never on a bare sha
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        tree = dict(repo.trees[repo.branches[branch]])  # built aside: a bad line leaves the repo untouched
        for line in map(json.loads, filter(bytes.strip, req.body.splitlines())):
            key, value = line["key"], line["value"]
            if key == "file":
                tree[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile" and value["oid"] in self._lfs:
                tree[value["path"]] = self._lfs[value["oid"]]
            elif key != "header":
                raise HubError(400, f"LoopbackHub cannot apply {key!r} to {value.get('path')!r}")
        sha = repo.commit(branch, tree)
        return {"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo_id}/commit/{sha}"}


def _key(repo_id: str, repo_type: str) -> str:
    return repo_id if repo_type in ("model", None) else f"{repo_type}s/{repo_id}"


def _upload_modes(files: list[dict]) -> dict:
    """LFS by file type, like the Hub's default .gitattributes."""
    modes = [(file["path"], "lfs" if file["path"].endswith(LFS_SUFFIXES) else "regular") for file in files]
    return {"files": [{"path": path, "uploadMode": mode, "shouldIgnore": False} for path, mode in modes]}


def _resolve(repo: _Repo, revision: str, path: str) -> tuple[int, dict, bytes]:
    sha = repo.sha(revision)
    if (data := repo.trees[sha].get(path)) is None:
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=sha)
    etag = hashlib.sha256(data).hexdigest()
    return 200, {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}, data


def _tree(repo: _Repo, revision: str, folder: str) -> list[dict]:
    """Every file below `folder`, however deep (the Hub lists subfolders instead unless asked for recursive)."""
    sha, folder = repo.sha(revision), folder.strip("/")
    prefix = f"{folder}/" if folder else ""
    files = {path: data for path, data in sorted(repo.trees[sha].items()) if path.startswith(prefix)}
    if not files:
        raise HubError(404, f"Entry not found: {folder}", "EntryNotFound", commit=sha)
    return [{"type": "file", "path": p, "size": len(d), "oid": hashlib.sha1(d).hexdigest()} for p, d in files.items()]


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, lets the hub answer it, writes the answer (HTTP/1.0: one request per connection)."""

    def _serve(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # huggingface_hub never sends chunked
        hub: LoopbackHub = self.server.hub  # type: ignore[attr-defined]
        if self.command == "POST" and "/commit/" in self.path and hub.commit_gate is not None:
            hub.commit_gate.wait(timeout=60)  # outside the hub's lock: other requests are answered meanwhile
        status, extra, payload = hub.answer(self.command, self.path, headers, body)
        self.send_response(status)
        for name, value in {**extra, "Content-Length": str(len(payload))}.items():  # HEAD too: the client reads it
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - no access log on stderr
        pass
