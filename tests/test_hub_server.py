"""The real `huggingface_hub`, `timm` and `transformers` clients, unmodified, against `hub_server.LoopbackHub`.

`huggingface_hub` reads HF_ENDPOINT / HF_HUB_OFFLINE / HF_HUB_DISABLE_XET when it is imported, and conftest.py has
already imported it offline in this process.  So the client side of every test runs in a fresh subprocess with the
right environment, while the hub runs here, in a fixture, where its state can be inspected directly.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from hub_server import LoopbackHub
from safetensors.torch import save_file

TOKEN = "hf_test_token"
_PRELUDE = """\
import json, sys
ARGS = json.loads(sys.argv[1])
def emit(value):
    print("RESULT " + json.dumps(value), flush=True)
"""
_home_ids = itertools.count()


@pytest.fixture
def hub():
    with LoopbackHub() as server:
        yield server


def run_client(hub, tmp_path, script, *, token=TOKEN, args=None, extra_env=None, home=None, timeout=180):
    """Run `script` in a fresh interpreter pointed at `hub`; return what it `emit`ted.

    Each call gets an empty HF cache (so downloads really hit the hub) unless `home` names one to reuse.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "HUGGING_FACE_"))}
    env.pop("TRANSFORMERS_OFFLINE", None)  # would switch huggingface_hub to offline mode too
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home or tmp_path / f"hf-home-{next(_home_ids)}"),
        HF_HUB_DISABLE_XET="1",  # classic preupload + LFS batch + commit path
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        **(extra_env or {}),
    )
    if token is not None:
        env["HF_TOKEN"] = token
    code = _PRELUDE + textwrap.dedent(script)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args or {})], env=env, capture_output=True, text=True, timeout=timeout
    )
    results = [line[len("RESULT ") :] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        pytest.fail(f"client failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(results[-1])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_model_folder(folder, version: int):
    """config.json + model.safetensors (an LFS file) + README.md with YAML front matter; returns {name: bytes}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"version": version, "num_classes": 3}))
    save_file({"weight": torch.full((4, 3), float(version)), "bias": torch.arange(3.0)}, folder / "model.safetensors")
    (folder / "README.md").write_text(f"---\nlicense: apache-2.0\ntags:\n- test\n---\n# Tiny model v{version}\n")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


UPLOAD = """
from huggingface_hub import HfApi
api = HfApi()
api.create_repo(ARGS["repo"], exist_ok=True, private=ARGS.get("private", False))
emit([api.upload_folder(repo_id=ARGS["repo"], folder_path=f, revision=ARGS.get("rev")).oid for f in ARGS["folders"]])
"""

DOWNLOAD = """
import hashlib, pathlib
from huggingface_hub import hf_hub_download
def digest(name, revision):
    return hashlib.sha256(pathlib.Path(hf_hub_download(ARGS["repo"], name, revision=revision)).read_bytes()).hexdigest()
emit({rev: {name: digest(name, rev) for name in ARGS["names"]} for rev in ARGS["revisions"]})
"""


def test_upload_folder_then_download_each_file(hub, tmp_path):
    local = make_model_folder(tmp_path / "v1", version=1)
    [oid] = run_client(hub, tmp_path, UPLOAD, args={"repo": "tester/tiny", "folders": [str(tmp_path / "v1")]})

    assert len(oid) == 40 and hub.commits("tester/tiny")[0] == oid
    assert {k: v for k, v in hub.files("tester/tiny").items() if k != ".gitattributes"} == local
    commit_calls = [
        h for m, p, h in hub.requests_seen if m == "POST" and p.startswith("/api/models/tester/tiny/commit/")
    ]
    assert commit_calls[0]["authorization"] == f"Bearer {TOKEN}"
    assert ("PUT", f"/__lfs/{sha256(local['model.safetensors'])}") in [(m, p) for m, p, _ in hub.requests_seen]
    assert any(p == "/api/validate-yaml" for _, p, _ in hub.requests_seen)

    # A public repo reads without a token, from an empty cache.
    seen_before = len(hub.requests_seen)
    got = run_client(
        hub,
        tmp_path,
        """
        import hashlib, pathlib
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        api = HfApi()
        def digest(path):
            return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
        snapshot = pathlib.Path(snapshot_download("tester/tiny"))
        emit({
            "downloads": {name: digest(hf_hub_download("tester/tiny", name)) for name in ARGS["names"]},
            "snapshot": {p.name: digest(p) for p in snapshot.iterdir()},
            "snapshot_commit": snapshot.name,
            "files": sorted(api.list_repo_files("tester/tiny")),
            "siblings": sorted(s.rfilename for s in api.model_info("tester/tiny").siblings),
            "sha": api.model_info("tester/tiny").sha,
            "lfs": [f.path for f in api.list_repo_tree("tester/tiny") if getattr(f, "lfs", None)],
        })
        """,
        token=None,
        args={"names": sorted(local)},
    )
    assert got["downloads"] == {name: sha256(data) for name, data in local.items()}
    assert got["snapshot"] == {**got["downloads"], ".gitattributes": got["snapshot"][".gitattributes"]}
    assert got["files"] == got["siblings"] == sorted([*local, ".gitattributes"])
    assert got["sha"] == got["snapshot_commit"] == oid
    assert got["lfs"] == ["model.safetensors"]
    assert all("authorization" not in h for _, _, h in hub.requests_seen[seen_before:])


def test_second_upload_is_a_new_commit_and_old_revision_stays_downloadable(hub, tmp_path):
    v1, v2 = make_model_folder(tmp_path / "v1", 1), make_model_folder(tmp_path / "v2", 2)
    folders = [str(tmp_path / "v1"), str(tmp_path / "v2")]
    oid1, oid2 = run_client(hub, tmp_path, UPLOAD, args={"repo": "tester/tiny", "folders": folders})

    assert oid1 != oid2 and hub.commits("tester/tiny")[:2] == [oid2, oid1]
    names = ["config.json", "model.safetensors"]
    got = run_client(hub, tmp_path, DOWNLOAD, args={"repo": "tester/tiny", "names": names, "revisions": [oid1, "main"]})
    assert got[oid1] == {name: sha256(v1[name]) for name in names}
    assert got["main"] == {name: sha256(v2[name]) for name in names}
    assert hub.files("tester/tiny", revision=oid1)["config.json"] == v1["config.json"]


def test_create_repo_exist_ok_and_conflict(hub, tmp_path):
    got = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
        api = HfApi()
        first = api.create_repo("tester/dup")
        again = api.create_repo("tester/dup", exist_ok=True)
        try:
            api.create_repo("tester/dup")
            error = None
        except HfHubHTTPError as e:
            error = [type(e).__name__, e.response.status_code]
        emit({"urls": [first, again], "repo_id": first.repo_id, "error": error,
              "implicit_namespace": api.create_repo("no-namespace").repo_id, "user": api.whoami()["name"]})
        """,
    )
    assert got["urls"] == [f"{hub.url}/tester/dup"] * 2 and got["repo_id"] == "tester/dup"
    assert got["error"] == ["HfHubHTTPError", 409]
    assert got["implicit_namespace"] == "tester/no-namespace" and got["user"] == "tester"


def test_branch_upload_changes_only_that_branch(hub, tmp_path):
    v1, v2 = make_model_folder(tmp_path / "v1", 1), make_model_folder(tmp_path / "v2", 2)
    [main_oid] = run_client(hub, tmp_path, UPLOAD, args={"repo": "tester/tiny", "folders": [str(tmp_path / "v1")]})
    branches = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi
        HfApi().create_branch("tester/tiny", branch="dev")
        HfApi().create_branch("tester/tiny", branch="dev", exist_ok=True)
        emit(sorted(b.name for b in HfApi().list_repo_refs("tester/tiny").branches))
        """,
    )
    assert branches == ["dev", "main"]
    args = {"repo": "tester/tiny", "folders": [str(tmp_path / "v2")], "rev": "dev"}
    [dev_oid] = run_client(hub, tmp_path, UPLOAD, args=args)

    assert hub.commits("tester/tiny", revision="main")[0] == main_oid
    assert hub.commits("tester/tiny", revision="dev")[:2] == [dev_oid, main_oid]
    got = run_client(
        hub, tmp_path, DOWNLOAD, args={"repo": "tester/tiny", "names": ["config.json"], "revisions": ["dev", "main"]}
    )
    assert got["dev"]["config.json"] == sha256(v2["config.json"])
    assert got["main"]["config.json"] == sha256(v1["config.json"])


def test_writes_need_a_valid_token_and_leave_no_commit(hub, tmp_path):
    make_model_folder(tmp_path / "v1", 1)
    run_client(hub, tmp_path, UPLOAD, args={"repo": "tester/tiny", "folders": [str(tmp_path / "v1")]})
    before = hub.commits("tester/tiny")
    attempt = """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    try:
        HfApi().upload_folder(repo_id="tester/tiny", folder_path=ARGS["folder"])
        emit(None)
    except HfHubHTTPError as e:
        emit([type(e).__name__, e.response.status_code, str(e).splitlines()[0]])
    """
    args = {"folder": str(tmp_path / "v1")}
    bad = run_client(hub, tmp_path, attempt, token="hf_not_a_token", args=args)
    missing = run_client(hub, tmp_path, attempt, token=None, args=args)
    print("bad token ->", bad, "| no token ->", missing)

    assert bad[:2] == ["HfHubHTTPError", 401] and missing[:2] == ["HfHubHTTPError", 401]
    assert hub.commits("tester/tiny") == before


def test_private_repo_needs_a_token_to_read(hub, tmp_path):
    make_model_folder(tmp_path / "v1", 1)
    run_client(
        hub, tmp_path, UPLOAD, args={"repo": "tester/secret", "folders": [str(tmp_path / "v1")], "private": True}
    )
    read = """
    from huggingface_hub import HfApi, hf_hub_download
    try:
        config = open(hf_hub_download("tester/secret", "config.json")).read()
        emit([config, HfApi().model_info("tester/secret").private])
    except Exception as e:
        emit(type(e).__name__)
    """
    assert run_client(hub, tmp_path, read, token=None) == "RepositoryNotFoundError"
    assert run_client(hub, tmp_path, read) == [(tmp_path / "v1" / "config.json").read_text(), True]


def test_dataset_repo_round_trip(hub, tmp_path):
    got = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi, hf_hub_download
        api = HfApi()
        api.create_repo("tester/data", repo_type="dataset")
        api.upload_file(path_or_fileobj=b"a,b\\n1,2\\n", path_in_repo="train/data.csv", repo_id="tester/data",
                        repo_type="dataset")
        files = api.list_repo_files("tester/data", repo_type="dataset")
        emit([files, open(hf_hub_download("tester/data", "train/data.csv", repo_type="dataset")).read()])
        """,
    )
    assert got == [[".gitattributes", "train/data.csv"], "a,b\n1,2\n"]
    assert hub.files("tester/data", repo_type="dataset")["train/data.csv"] == b"a,b\n1,2\n"


LOGITS = """
import torch
def logits(model):
    torch.manual_seed(0)
    return model.eval()(torch.randn(2, 3, 32, 32)).tolist()
"""


def test_timm_push_then_load_pretrained_from_the_hub(hub, tmp_path):
    pushed = run_client(
        hub,
        tmp_path,
        LOGITS
        + textwrap.dedent(
            """
            import timm
            torch.manual_seed(1)
            model = timm.create_model("resnet18", num_classes=3)
            timm.models.push_to_hf_hub(model, "tester/r18", safe_serialization=True)
            emit(logits(model))
            """
        ),
    )
    assert {"config.json", "model.safetensors", "README.md"} <= set(hub.files("tester/r18"))
    assert any(p == "/api/validate-yaml" for _, p, _ in hub.requests_seen)  # timm writes a model card

    loaded = run_client(
        hub,
        tmp_path,
        LOGITS + 'import timm\nemit(logits(timm.create_model("hf-hub:tester/r18", pretrained=True)))\n',
        token=None,
    )
    torch.testing.assert_close(torch.tensor(loaded), torch.tensor(pushed))


TRANSFORMERS = """
import torch
from transformers import ResNetConfig, ResNetForImageClassification
if ARGS["push"]:
    torch.manual_seed(1)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
    model = ResNetForImageClassification(config)
    model.push_to_hub("tester/tiny-resnet")
else:
    model = ResNetForImageClassification.from_pretrained("tester/tiny-resnet")
torch.manual_seed(0)
emit(model.eval()(pixel_values=torch.randn(2, 3, 32, 32)).logits.tolist())
"""


def test_transformers_push_to_hub_then_from_pretrained(hub, tmp_path):
    pushed = run_client(hub, tmp_path, TRANSFORMERS, args={"push": True})
    loaded = run_client(hub, tmp_path, TRANSFORMERS, args={"push": False}, token=None)
    torch.testing.assert_close(torch.tensor(loaded), torch.tensor(pushed))
    assert {"config.json", "model.safetensors", "README.md"} <= set(hub.files("tester/tiny-resnet"))


def test_model_card_push_to_hub(hub, tmp_path):
    card_text = "---\nlicense: mit\nlibrary_name: timm\n---\n# r18\n\nA tiny test card.\n"
    got = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi, ModelCard
        HfApi().create_repo("tester/r18")
        ModelCard(ARGS["text"]).push_to_hub("tester/r18")
        card = ModelCard.load("tester/r18")
        emit([card.data.license, card.text.strip()])
        """,
        args={"text": card_text},
    )
    assert got == ["mit", "# r18\n\nA tiny test card."]
    assert hub.files("tester/r18")["README.md"] == card_text.encode()
    assert any(p == "/api/validate-yaml" for _, p, _ in hub.requests_seen)


FAILURES = """
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
def failure(call):
    try:
        return ["ok", call()]
    except Exception as e:
        return [type(e).__name__, type(e.__cause__).__name__ if e.__cause__ else None]
"""
DOWN_ENV = {"HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}


def test_stopped_hub_fails_fast_but_cached_files_still_load(hub, tmp_path):
    make_model_folder(tmp_path / "v1", 1)
    run_client(hub, tmp_path, UPLOAD, args={"repo": "tester/tiny", "folders": [str(tmp_path / "v1")]})
    warm = tmp_path / "warm-home"
    args = {"repo": "tester/tiny", "names": ["config.json"], "revisions": ["main"]}
    run_client(hub, tmp_path, DOWNLOAD, args=args, home=warm)
    hub.stop()  # the fixture's own stop() is then a no-op

    started = time.monotonic()
    got = run_client(
        hub,
        tmp_path,
        FAILURES
        + textwrap.dedent(
            """
            emit({
                "cached": failure(lambda: open(hf_hub_download("tester/tiny", "config.json")).read()),
                "metadata": failure(lambda: get_hf_file_metadata(hf_hub_url("tester/tiny", "README.md"))),
                "model_info": failure(lambda: HfApi().model_info("tester/tiny")),
            })
            """
        ),
        home=warm,
        extra_env=DOWN_ENV,
    )
    print("server down ->", got)
    assert got["cached"] == ["ok", (tmp_path / "v1" / "config.json").read_text()]
    assert got["metadata"][0] == got["model_info"][0] == "ConnectError"
    assert time.monotonic() - started < 20


@pytest.mark.slow
def test_stopped_hub_uncached_download_gives_up_after_client_retries(hub, tmp_path):
    """hf_hub_download retries a refused connection 5 times (1+2+4+8+8 s) when nothing is cached: ~25 s."""
    hub.stop()
    script = FAILURES + 'emit(failure(lambda: hf_hub_download("tester/tiny", "config.json")))\n'
    got = run_client(hub, tmp_path, script, extra_env=DOWN_ENV)
    print("server down, nothing cached ->", got)
    assert got == ["LocalEntryNotFoundError", "ConnectError"]


def test_protocol_details_the_clients_above_do_not_exercise(hub):
    """Chunked uploads, tampered LFS objects, malformed JSON, unknown routes, bad tokens, atomic failed commits."""

    def call(method, path, body=None, token=TOKEN, chunked=False):
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=5)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response.getheader("X-Error-Code"), response.read()

    data = b"weights" * 10_000
    assert call("PUT", f"/__lfs/{sha256(data)}", iter([data[:1000], data[1000:]]), chunked=True)[0] == 200
    assert call("PUT", f"/__lfs/{sha256(b'other')}", data)[0] == 400  # content does not match the oid
    assert call("POST", "/api/repos/create", b"not json")[0] == 400
    assert call("GET", "/api/whoami-v2", token="hf_wrong")[0] == 401
    assert call("GET", "/api/models/tester/none")[:2] == (404, "RepoNotFound")
    assert call("GET", "/no/such/route")[0] == 404

    assert call("POST", "/api/repos/create", json.dumps({"name": "raw"}).encode())[0] == 200
    before = hub.commits("tester/raw")
    header = {"key": "header", "value": {"summary": "raw commit"}}
    uploaded = {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256", "oid": sha256(data)}}
    missing = {"key": "lfsFile", "value": {"path": "b.bin", "algo": "sha256", "oid": sha256(b"never uploaded")}}
    ndjson = "\n".join(json.dumps(line) for line in (header, uploaded, missing)).encode()
    assert call("POST", "/api/models/tester/raw/commit/main", ndjson)[0] == 400
    assert call("GET", "/tester/raw/resolve/nope/a.bin")[:2] == (404, "RevisionNotFound")
    assert call("GET", "/tester/raw/resolve/main/a.bin")[:2] == (404, "EntryNotFound")
    assert hub.commits("tester/raw") == before  # the failed commit left nothing behind

    ndjson = "\n".join(json.dumps(line) for line in (header, uploaded)).encode()
    assert call("POST", "/api/models/tester/raw/commit/main", ndjson)[0] == 200
    assert hub.files("tester/raw")["a.bin"] == data and len(hub.commits("tester/raw")) == 2
