"""The loopback Hub's own contract, the part feed-hf's Hub tests (test_hub.py, test_teacher_sources.py,
test_portable.py) rely on: what a push stores, what a commit does to the history, and the answers a client maps
to its errors. The real clients' round trips through it are feed-hf's own tests, not repeated here."""

import hashlib
import http.client
import json

import pytest
from conftest import HUB_TOKEN
from hub_server import LoopbackHub
from huggingface_hub import HfApi


@pytest.fixture
def hub():
    hub = LoopbackHub(valid_tokens={HUB_TOKEN}).start()  # its own, so the session's repos cannot interfere
    yield hub
    hub.stop()


def call(hub, method, path, payload=None, token=HUB_TOKEN):
    connection = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=5)
    body = payload if isinstance(payload, bytes | None) else json.dumps(payload).encode()
    connection.request(method, path, body=body, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = connection.getresponse()
    return response.status, response.getheader("X-Error-Code"), response.read(), response


def test_each_push_is_a_new_commit_on_its_branch_and_every_revision_stays_readable(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token=HUB_TOKEN)
    api.create_repo("tester/tiny")
    (tmp_path / "model.safetensors").write_bytes(b"weights" * 100)
    (tmp_path / "config.json").write_text("v1")
    first = api.upload_folder(repo_id="tester/tiny", folder_path=tmp_path).oid
    api.create_branch("tester/tiny", branch="dev")
    (tmp_path / "config.json").write_text("v2")
    second = api.upload_folder(repo_id="tester/tiny", folder_path=tmp_path, revision="dev").oid

    assert hub.commits("tester/tiny", revision="dev")[:2] == [second, first] and second != first
    assert hub.commits("tester/tiny", revision="main")[0] == first  # the branch moved alone
    assert hub.files("tester/tiny")["config.json"] == b"v1" and hub.files("tester/tiny", "dev")["config.json"] == b"v2"
    assert hub.files("tester/tiny", first)["model.safetensors"] == b"weights" * 100
    lfs_puts = [path for method, path, _ in hub.requests_seen if method == "PUT"]
    assert lfs_puts == [f"/__lfs/{hashlib.sha256(b'weights' * 100).hexdigest()}"]  # once: then already held
    status, _, body, response = call(hub, "GET", f"/tester/tiny/resolve/{first}/config.json")
    assert (status, body, response.getheader("X-Repo-Commit")) == (200, b"v1", first)
    status, _, body, response = call(hub, "HEAD", "/tester/tiny/resolve/dev/config.json")
    assert (body, response.getheader("Content-Length"), response.getheader("X-Repo-Commit")) == (b"", "2", second)


def test_missing_repo_revision_and_file_are_404s_with_the_code_the_client_maps(hub):
    assert call(hub, "POST", "/api/repos/create", {"name": "r"})[0] == 200
    assert call(hub, "GET", "/api/models/tester/none")[:2] == (404, "RepoNotFound")
    assert call(hub, "HEAD", "/tester/none/resolve/main/config.json")[:2] == (404, "RepoNotFound")
    assert call(hub, "GET", "/api/models/tester/r/revision/v9")[:2] == (404, "RevisionNotFound")
    assert call(hub, "HEAD", "/tester/r/resolve/v9/config.json")[:2] == (404, "RevisionNotFound")
    status, code, _, response = call(hub, "HEAD", "/tester/r/resolve/main/config.json")
    assert (status, code, response.getheader("X-Repo-Commit")) == (404, "EntryNotFound", hub.commits("tester/r")[0])
    assert call(hub, "GET", "/api/models/tester/r/tree/main/nowhere")[:2] == (404, "EntryNotFound")
    assert call(hub, "GET", "/api/models/tester/r/commits/main")[0] == 404  # a route feed-hf never calls


def test_tokens_private_repos_and_refused_writes_leave_nothing_behind(hub):
    assert call(hub, "POST", "/api/repos/create", {"name": "secret", "private": True})[0] == 200
    assert call(hub, "POST", "/api/repos/create", {"name": "secret"})[0] == 409  # exist_ok relies on it
    assert call(hub, "GET", "/api/models/tester/secret", token=None)[:2] == (404, "RepoNotFound")
    assert json.loads(call(hub, "GET", "/api/models/tester/secret")[2])["private"] is True
    assert call(hub, "GET", "/api/models/tester/secret", token="hf_wrong")[0] == 401
    assert call(hub, "POST", "/api/repos/create", {"name": "other"}, token=None)[0] == 401
    assert json.loads(call(hub, "GET", "/api/whoami-v2")[2])["name"] == "tester"
    before = hub.commits("tester/secret")
    lines = [{"key": "header", "value": {"summary": "s"}}, {"key": "file", "value": {"path": "a", "content": ""}}]
    lines.append({"key": "lfsFile", "value": {"path": "b.bin", "algo": "sha256", "oid": "0" * 64}})  # never uploaded
    ndjson = "\n".join(map(json.dumps, lines)).encode()
    assert call(hub, "POST", "/api/models/tester/secret/commit/main", ndjson)[0] == 400
    assert hub.commits("tester/secret") == before and "a" not in hub.files("tester/secret")  # all or nothing
