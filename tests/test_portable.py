"""No local path leaves the machine: sources are recorded portably, and a push refuses what still names this machine."""

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi
from recipe_helpers import load_recipe, tiny_argv

from feed_hf.data.loading import digits_dataset
from feed_hf.publishing.export import export_file, export_student
from feed_hf.publishing.hub import UnpushableExportError, push_export
from feed_hf.publishing.portable import (
    portable_dataset,
    portable_feed_config,
    portable_folder,
    portable_teacher_source,
    portable_training_arguments,
)

# Folders between tmp_path and what is recorded: none of these names may appear in a pushed file.
INNER_FOLDERS = ("teachers ü dir", "plain teachers", "ckpt dir", "runs ü", "logs dir", "data sets ü")


@pytest.mark.parametrize(
    ("spec", "recorded"),
    [
        ("hf-hub:tester/t@0123abc", "hf-hub:tester/t@0123abc"),
        ("local-dir:/home/me/my runs/t=0 ü/", "local-dir:t=0 ü"),
        ("/home/me/my runs/teacher 1", "teacher 1"),
        ("resnet8_cifar=/home/me/w=2 ü/model.safetensors", "resnet8_cifar=model.safetensors"),
        ("resnet8_cifar=~/ckpt.safetensors", "resnet8_cifar=ckpt.safetensors"),
        ("./teachers/t0", "t0"),
        ("C:\\Users\\me\\teacher", "teacher"),
        ("resnet18.a1_in1k", "resnet18.a1_in1k"),
    ],
)
def test_every_teacher_syntax_is_recorded_without_its_folders(spec, recorded):
    assert portable_teacher_source(spec) == recorded
    assert portable_teacher_source(recorded) == recorded  # idempotent: an old record can be re-recorded


def test_datasets_folders_and_tokens_are_recorded_portably(tmp_path):
    assert portable_dataset("uoft-cs/cifar100") == "uoft-cs/cifar100" and portable_dataset("digits") == "digits"
    assert portable_dataset(str(tmp_path / "my data" / "train.parquet")) == "train.parquet"
    assert portable_folder(None) is None and portable_folder(str(tmp_path / "a b") + "/") == "a b"
    config = {
        "output_dir": str(tmp_path / "out put"),
        "logging_dir": str(tmp_path / "out put" / "logs"),
        "resume_from_checkpoint": "last",
        "hub_token": "hf_secret_value",
        "push_to_hub_token": "<PUSH_TO_HUB_TOKEN>",
        "teachers": [f"local-dir:{tmp_path}/t 0"],
        "fsdp_config": {"nested": str(tmp_path / "x.json")},
        "learning_rate": 0.1,
    }
    recorded = portable_training_arguments(config)
    assert recorded["output_dir"] == "out put" and recorded["logging_dir"] == "logs"
    assert recorded["resume_from_checkpoint"] == "last" and recorded["teachers"] == ["local-dir:t 0"]
    assert recorded["fsdp_config"] == {"nested": "x.json"} and recorded["learning_rate"] == 0.1
    assert not any("token" in key for key in recorded)
    feed = {"teachers": [f"{tmp_path}/t 0"], "resolved_teachers": [{"name": f"teacher 0 ({tmp_path}/t 0)"}]}
    assert str(tmp_path) not in json.dumps(portable_feed_config(feed))


def _export_teacher(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    export_student(timm.create_model("resnet8_cifar", num_classes=10), folder, {"teachers": []})
    return folder


@pytest.fixture(scope="module")
def portable_run(loopback_hub, tmp_path_factory):
    """A pFEED student taught by every teacher-source syntax, from folders with spaces, unicode and `=`, pushed."""
    root = tmp_path_factory.mktemp("portable")
    local_dir = _export_teacher(root / "teachers ü dir" / "t=0 ü", 1)
    (local_dir / "results.json").write_text(json.dumps({"metrics": {"eval_top1": 61.5}}))
    plain = _export_teacher(root / "plain teachers" / "t 1", 2)
    (plain / "results.json").write_text("{not json")  # malformed beside a teacher: unknown, never a crash
    checkpoint = _export_teacher(root / "ckpt dir" / "w=2 ü", 3) / "model.safetensors"
    hub_teacher = _export_teacher(root / "teachers ü dir" / "hub teacher", 4)
    push_export(hub_teacher, "tester/portable-teacher", token=HUB_TOKEN)
    dataset = root / "data sets ü" / "digits=sub ü"
    digits_dataset().select(range(120)).save_to_disk(str(dataset))
    teachers = [f"local-dir:{local_dir}", str(plain), f"resnet8_cifar={checkpoint}", "hf-hub:tester/portable-teacher"]
    output_dir = root / "runs ü" / "student=1 x"
    argv = tiny_argv(output_dir, "--teachers", *teachers, "--dataset", str(dataset))
    argv += ["--run_name", str(root / "logs dir" / "tb"), "--push_to_hub", "true"]  # a path as a run name
    argv += ["--hub_model_id", "tester/portable-student", "--hub_token", HUB_TOKEN]
    results = load_recipe("feed_parallel").main(argv)
    return root, output_dir, results


def _assert_nothing_local(name: str, data: bytes, root: Path) -> None:
    forbidden = [str(root), root.name, str(root.parent), *INNER_FOLDERS, HUB_TOKEN]
    if str(Path.home()) not in ("/", ""):
        forbidden.append(str(Path.home()))
    for text in forbidden:
        for form in (text, json.dumps(text)[1:-1]):  # as written, and as JSON escapes it
            assert form.encode() not in data, f"{text!r} in {name}"


def test_no_local_path_in_any_pushed_or_recorded_file(loopback_hub, portable_run):
    root, output_dir, results = portable_run
    pushed = loopback_hub.files("tester/portable-student")
    assert {"config.json", "model.safetensors", "feed_config.json", "results.json", "README.md"} <= set(pushed)
    for name, data in pushed.items():
        _assert_nothing_local(name, data, root)
    for name in ("feed_config.json", "results.json", "README.md", "config.json"):  # portable when recorded
        _assert_nothing_local(f"local {name}", (output_dir / name).read_bytes(), root)
    feed = json.loads(pushed["feed_config.json"])
    sha = loopback_hub.commits("tester/portable-teacher")[0]
    assert feed["teachers"][:3] == ["local-dir:t=0 ü", "t 1", "resnet8_cifar=model.safetensors"]
    assert feed["resolved_teachers"][3]["source"] == f"hf-hub:tester/portable-teacher@{sha}"
    recorded = json.loads(pushed["results.json"])
    assert recorded["data"]["dataset"] == "digits=sub ü" and recorded["config"]["output_dir"] == "student=1 x"
    assert recorded["config"]["run_name"] == "tb" and "hub_token" not in recorded["config"]


def test_malformed_results_beside_a_teacher_is_unknown_not_a_crash(portable_run):
    _, output_dir, results = portable_run
    top1 = [teacher["top1"] for teacher in results["feed"]["resolved_teachers"]]
    assert top1 == [61.5, None, None, None]
    assert (output_dir / "model.safetensors").is_file()


def test_recorded_sources_still_serve_local_tools(portable_run):
    root, output_dir, _ = portable_run
    local = json.loads(export_file(output_dir, "local_sources.json").read_text())  # kept here, never pushed
    assert local["teachers"][0] == f"local-dir:{root / 'teachers ü dir' / 't=0 ü'}"


def _copy_export(output_dir: Path, destination: Path) -> Path:
    shutil.copytree(output_dir, destination, symlinks=False, ignore=shutil.ignore_patterns(".cache"))
    return destination


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [("notes", "trained in {root}/runs ü", "/"), ("comment", HUB_TOKEN, "a token value")],
)
def test_push_refuses_a_path_or_token_left_in_a_pushed_file(loopback_hub, portable_run, tmp_path, field, value, shown):
    root, output_dir, _ = portable_run
    export = _copy_export(output_dir, tmp_path / "export")
    results = json.loads((export / "results.json").read_text())
    results[field] = value.format(root=root)
    (export / "results.json").write_text(json.dumps(results))
    repo_id = f"tester/refused-{field}"
    with pytest.raises(UnpushableExportError, match=rf"results\.json \({field}\) holds .*nothing was pushed") as error:
        push_export(export, repo_id, token=HUB_TOKEN)
    assert shown in str(error.value) and HUB_TOKEN not in str(error.value)
    assert not HfApi(token=HUB_TOKEN).repo_exists(repo_id)


def test_local_source_in_config_json_is_not_pushed(loopback_hub, portable_run, tmp_path):
    root, output_dir, _ = portable_run
    export = _copy_export(output_dir, tmp_path / "export")
    config = json.loads((export / "config.json").read_text())
    config["pretrained_cfg"].update(file=str(root / "runs ü" / "student=1 x"), source="local-dir")
    (export / "config.json").write_text(json.dumps(config))
    push_export(export, "tester/portable-config", token=HUB_TOKEN)
    pushed = loopback_hub.files("tester/portable-config")
    assert "file" not in json.loads(pushed["config.json"])["pretrained_cfg"]
    _assert_nothing_local("config.json", pushed["config.json"], root)


def test_a_local_dir_spec_in_any_field_is_recorded_by_folder_name():
    from feed_hf.publishing.portable import portable_training_arguments

    recorded = portable_training_arguments({"student": "local-dir:/home/someone/models/my vit", "seed": 0})
    assert recorded == {"student": "local-dir:my vit", "seed": 0}
