"""FEED students and teachers through the loopback Hub with the real huggingface_hub / timm / transformers clients."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi, ModelCard
from recipe_helpers import load_recipe, tiny_argv

from feed_hf.cli import main as cli_main
from feed_hf.data.loading import digits_dataset
from feed_hf.publishing.export import export_student
from feed_hf.publishing.hub import HubPushError, UnpushableExportError, push_export
from feed_hf.runs.evaluation import predict_logits

REPO_FILES = {".gitattributes", "config.json", "model.safetensors", "feed_config.json", "results.json", "README.md"}


def _push_argv(output_dir, repo_id, *extra):
    return tiny_argv(output_dir, "--push_to_hub", "true", "--hub_model_id", repo_id, "--hub_token", HUB_TOKEN, *extra)


@pytest.fixture(scope="module")
def pushed_student(loopback_hub, tmp_path_factory):
    """A tiny pFEED student trained from two teachers, exported and pushed to tester/feed-student."""
    root = tmp_path_factory.mktemp("hub")
    teachers = load_recipe("train_teachers").main(
        _push_argv(root / "teachers", "tester/feed-teacher", "--teacher_seeds", "1", "2")
    )
    teacher_dirs = [str(root / "teachers" / f"teacher_{i}") for i in range(len(teachers))]
    results = load_recipe("feed_parallel").main(
        _push_argv(root / "student", "tester/feed-student", "--teachers", *teacher_dirs)
    )
    return root, results


def _scan_for_secrets_and_paths(files: dict[str, bytes], root: Path) -> None:
    for name, data in files.items():
        assert HUB_TOKEN.encode() not in data, name
        assert str(root).encode() not in data and b"/tmp/" not in data, f"local path in pushed {name}"


def test_push_holds_the_student_only_with_card_and_no_secrets(loopback_hub, pushed_student):
    root, results = pushed_student
    files = loopback_hub.files("tester/feed-student")
    assert set(files) == REPO_FILES
    pushed = safetensors.torch.load(files["model.safetensors"])
    assert set(pushed) == set(timm.create_model("resnet8_cifar", num_classes=10).state_dict())  # no connectors
    _scan_for_secrets_and_paths(files, root)
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "timm" and card.data.pipeline_tag == "image-classification"
    assert {"feed", "knowledge-distillation"} <= set(card.data.tags)
    measured = round(results["metrics"]["eval_top1"], 2)
    assert any(r.metric_value == measured for r in card.data.eval_results)  # model-index parses back
    assert "hf-hub:tester/feed-student" in card.text and "import feed_hf" in card.text
    teacher_repos = [f"tester/feed-teacher-teacher-{i}" for i in range(2)]
    for repo in teacher_repos:  # teachers from train_teachers.py are pushed the same way
        assert set(loopback_hub.files(repo)) == REPO_FILES


def test_pulled_in_a_fresh_process_with_timm_automodel_and_pipeline(pushed_student, tmp_path):
    root, _ = pushed_student
    images = digits_dataset().select(range(12))
    expected = predict_logits(root / "student", images).argmax(axis=1)
    script = """
import json, sys
import feed_hf, timm, torch
from transformers import AutoModelForImageClassification, pipeline
from feed_hf.data.loading import digits_dataset
images = digits_dataset().select(range(12))
model = timm.create_model("hf-hub:tester/feed-student", pretrained=True).eval()
config = timm.data.resolve_model_data_config(model)
transform = timm.data.create_transform(**config)
pixels = torch.stack([transform(im.convert("RGB")) for im in images["image"]])
hf_model = AutoModelForImageClassification.from_pretrained("tester/feed-student").eval()
classifier = pipeline("image-classification", model="tester/feed-student")
with torch.no_grad():
    timm_pred = model(pixels).argmax(1).tolist()
    hf_pred = hf_model(pixel_values=pixels).logits.argmax(1).tolist()
labels = [out[0]["label"] for out in classifier([im.convert("RGB") for im in images["image"]])]
print(json.dumps({"timm": timm_pred, "hf": hf_pred, "pipeline": labels, "id2label": hf_model.config.id2label}))
"""
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_HOME=str(tmp_path / "fresh-cache"), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    pulled = json.loads(done.stdout.strip().splitlines()[-1])
    assert pulled["timm"] == expected.tolist() == pulled["hf"]
    assert pulled["pipeline"] == [str(p) for p in expected]  # digit class names survive the round trip
    assert pulled["id2label"]["3"] == "3"


def test_second_push_is_a_new_commit_on_the_same_repo(loopback_hub, pushed_student):
    root, _ = pushed_student
    before = loopback_hub.commits("tester/feed-student")
    results_file = root / "student" / "results.json"
    results = json.loads(results_file.read_text())
    results["metrics"]["eval_top1"] = 12.5  # as if re-evaluated: the card and results.json change
    results_file.write_text(json.dumps(results))
    commit = push_export(root / "student", "tester/feed-student", token=HUB_TOKEN, commit_message="re-evaluated")
    after = loopback_hub.commits("tester/feed-student")
    assert after[1:] == before and after[0] == commit.oid
    assert b"12.5" in loopback_hub.files("tester/feed-student")["README.md"]
    assert b"12.5" not in loopback_hub.files("tester/feed-student", revision=before[0])["README.md"]


def test_push_to_existing_repo_branch_and_private(loopback_hub, pushed_student):
    root, _ = pushed_student
    api = HfApi(token=HUB_TOKEN)
    api.create_repo("tester/existing", exist_ok=False)
    first = push_export(root / "student", "tester/existing", token=HUB_TOKEN)
    assert "model.safetensors" in loopback_hub.files("tester/existing")
    push_export(root / "student", "tester/existing", token=HUB_TOKEN, revision="dev", push_connectors=True)
    assert "feed_connectors.safetensors" in loopback_hub.files("tester/existing", revision="dev")
    assert "feed_connectors.safetensors" not in loopback_hub.files("tester/existing", revision="main")
    assert loopback_hub.commits("tester/existing", revision="main")[0] == first.oid
    push_export(root / "student", "tester/private-student", token=HUB_TOKEN, private=True)
    assert api.model_info("tester/private-student").private


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_push_failures_are_explained_and_leave_the_export_intact(loopback_hub, pushed_student, tmp_path):
    root, _ = pushed_student
    before = _digest(root / "student")
    commits = loopback_hub.commits("tester/feed-student")
    with pytest.raises(HubPushError, match="refused the token.*HTTP 401.*unchanged"):
        push_export(root / "student", "tester/feed-student", token="hf_wrong")
    with pytest.raises(HubPushError, match="no Hugging Face token.*HF_TOKEN"):
        push_export(root / "student", "tester/feed-student", token=None)
    assert loopback_hub.commits("tester/feed-student") == commits
    assert _digest(root / "student") == before

    script = (
        "from feed_hf.publishing.hub import push_export\n"
        f"push_export({str(root / 'student')!r}, 'tester/feed-student', token={HUB_TOKEN!r})\n"
    )
    env = dict(
        os.environ,
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HOME=str(tmp_path),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0 and "cannot reach the Hub at http://127.0.0.1:9" in done.stderr
    assert "retry with `feed-hf push" in done.stderr
    assert _digest(root / "student") == before


def test_hub_teacher_is_downloaded_and_pinned_to_its_commit(loopback_hub, pushed_student, tmp_path):
    root, _ = pushed_student
    sha = loopback_hub.commits("tester/feed-teacher-teacher-0")[0]
    results = load_recipe("feed_parallel").main(
        tiny_argv(tmp_path / "from-hub", "--teachers", "hf-hub:tester/feed-teacher-teacher-0")
    )
    resolved = results["feed"]["resolved_teachers"][0]
    assert resolved["hf_hub_id"] == "tester/feed-teacher-teacher-0" and resolved["revision"] == sha
    feed_config = json.loads((tmp_path / "from-hub" / "feed_config.json").read_text())
    assert feed_config["resolved_teachers"][0]["revision"] == sha
    card = ModelCard.load(tmp_path / "from-hub" / "README.md")
    assert card.data.teachers == [f"tester/feed-teacher-teacher-0@{sha}"] and card.data.base_model is None
    downloaded = timm.create_model(f"hf-hub:tester/feed-teacher-teacher-0@{sha}", pretrained=True).state_dict()
    local = safetensors.torch.load_file(root / "teachers" / "teacher_0" / "model.safetensors")
    assert all(torch.equal(downloaded[name], tensor) for name, tensor in local.items())


def _good_export(folder: Path) -> Path:
    export_student(timm.create_model("resnet8_cifar", num_classes=10), folder, {"teachers": []})
    return folder


def _without(name):
    return lambda folder: (folder / name).unlink()


def _write(name, text):
    return lambda folder: (folder / name).unlink(missing_ok=True) or (folder / name).write_text(text)  # not via a link


def _weights_of_another_model(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    safetensors.torch.save_file(
        timm.create_model("resnet8_cifar", num_classes=5).state_dict(), folder / "model.safetensors"
    )


@pytest.mark.parametrize(
    ("break_export", "message"),
    [
        (_without("feed_config.json"), r"has no feed_config\.json; export the student with FeedTrainer\.save_model"),
        (_without("config.json"), r"has no config\.json"),
        (_without("model.safetensors"), r"has no model\.safetensors"),
        (_write("feed_config.json", "{oops"), r"feed_config\.json is unreadable \(JSONDecodeError"),
        (_write("results.json", "[1, 2]"), r"results\.json is unreadable \(a JSON list, not an object\)"),
        (_write("config.json", '{"num_classes": 10}'), r"config\.json names no 'architecture'"),
        (_write("config.json", '{"architecture": "no_such_net"}'), r"does not build a timm model"),
        (_write("model.safetensors", "not safetensors"), r"model\.safetensors is not a readable safetensors file"),
        (_weights_of_another_model, r"model\.safetensors does not fit the 'resnet8_cifar' that config\.json describes"),
    ],
)
def test_push_checks_the_folder_before_creating_the_repo(loopback_hub, tmp_path, break_export, message):
    export = _good_export(tmp_path / "export")
    break_export(export)
    creates = sum(path == "/api/repos/create" for _, path, _ in loopback_hub.requests_seen)
    with pytest.raises(UnpushableExportError, match=rf"cannot push .*export.*{message}"):
        push_export(export, "tester/never-created", token=HUB_TOKEN)
    assert sum(path == "/api/repos/create" for _, path, _ in loopback_hub.requests_seen) == creates
    assert not HfApi(token=HUB_TOKEN).repo_exists("tester/never-created")


def test_push_command_on_a_folder_without_feed_config_names_it(loopback_hub, tmp_path, capsys, monkeypatch):
    export = _good_export(tmp_path / "export")
    (export / "feed_config.json").unlink()
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["push", "--export_dir", str(export), "--repo_id", "tester/cli-never-created"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "has no feed_config.json" in error and "cannot reach the Hub" not in error
    assert not HfApi(token=HUB_TOKEN).repo_exists("tester/cli-never-created")


def test_push_connectors_only_when_present(loopback_hub, tmp_path):
    export = _good_export(tmp_path / "export")
    with pytest.raises(
        UnpushableExportError, match="has no feed_connectors.safetensors .*push without push_connectors"
    ):
        push_export(export, "tester/no-connectors", token=HUB_TOKEN, push_connectors=True)
    assert not HfApi(token=HUB_TOKEN).repo_exists("tester/no-connectors")
