"""Teacher stores on the Hub (issue 22, items 2 and 3): pushed part by part, pulled verified, zero teacher forwards."""

import json
import os
import re
from pathlib import Path

import pytest
from conftest import HUB_TOKEN

from feed_hf.store.hub import pull_store, push_store
from feed_hf.store.integrity import StoreIntegrityError
from feed_hf_cli import main

REPO = "tester/cifar-teacher-store"
STORE = dict(teacher_store=True, batch_augmentation="crop_flip", teacher_store_views=2, teacher_store_dtype="float32")


def _run(factory, tmp_path, name, teachers, data, **overrides):
    """(the trainer, results.json) of a 3-step run."""
    from feed_hf import FeedTrainer

    config = factory(tmp_path / name, max_steps=3, logging_steps=1, **{**STORE, **overrides})
    trainer = FeedTrainer(teachers=teachers, args=config, train_dataset=data)
    trainer.train()
    return trainer, json.loads((tmp_path / name / "results.json").read_text())


def _losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _another_machine(monkeypatch, tmp_path, name):
    """Another HF_HOME (and hub cache) for what follows, as on a machine that never saw the first one's files."""
    import huggingface_hub.constants

    home = tmp_path / f"{name}-hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))


def test_a_pulled_store_makes_zero_teacher_forwards_and_trains_like_the_local_store(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    data = synthetic_images(24)
    local, local_results = _run(feed_config_factory, tmp_path, "local", tiny_teachers, data,
                                teacher_store_dir=str(tmp_path / "built"))  # fmt: skip
    assert local_results["teacher_features"] == "store"
    assert local_results["teacher_forwards"]["images"] == 2 * 24 * 2  # teachers × images × views, once
    sha, added = push_store(tmp_path / "built", REPO)
    assert sorted(added) == sorted(path.name for path in local.teacher_feature_cache.paths)
    for name, content in loopback_hub.files(REPO, repo_type="dataset").items():  # no path of here, no token
        assert str(tmp_path).encode() not in content and HUB_TOKEN.encode() not in content, name
        assert os.path.expanduser("~").encode() + b"/" not in content, name
    card = loopback_hub.files(REPO, repo_type="dataset")["README.md"].decode()
    assert "resnet8_cifar" in card and "crop_flip" in card and "float32" in card and "teacher-store" in card

    _another_machine(monkeypatch, tmp_path, "other")
    pulled, results = _run(feed_config_factory, tmp_path, "pulled", tiny_teachers, data,
                           teacher_store_dir=str(tmp_path / "elsewhere"), teacher_store_repo=REPO)  # fmt: skip
    assert results["teacher_forwards"]["images"] == 0
    assert results["teacher_features"] == f"hub:{REPO}@{sha}"
    assert _losses(pulled) == _losses(local) and len(_losses(local)) == 3
    assert sorted(path.name for path in (tmp_path / "elsewhere").iterdir()) == sorted(added)  # no staging left


def test_a_teacher_added_to_a_pushed_store_builds_and_pushes_only_its_part(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch
):
    repo = f"{REPO}-grown"
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    data, stores = synthetic_images(16), str(tmp_path / "stores")
    _run(feed_config_factory, tmp_path, "one", tiny_teachers[:1], data, teacher_store_dir=stores)
    first_sha, _ = push_store(stores, repo)
    before = loopback_hub.files(repo, repo_type="dataset")
    _, results = _run(feed_config_factory, tmp_path, "two", tiny_teachers, data, teacher_store_dir=stores)
    assert results["teacher_forwards"]["images"] == 16 * 2  # the new teacher's part only
    second_sha, added = push_store(stores, repo)
    after = loopback_hub.files(repo, repo_type="dataset")
    assert len(added) == 1 and second_sha != first_sha
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {"README.md"}  # nothing of the first part rewritten
    assert {name.split("/")[0] for name in set(after) - set(before)} == set(added)
    assert push_store(stores, repo) == (None, [])  # everything there: no commit


def test_mixed_hub_parts_and_a_new_teacher_train_like_all_live_teachers(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch
):
    import timm
    import torch

    repo = f"{REPO}-mixed"
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    torch.manual_seed(3)
    teachers = [*tiny_teachers, timm.create_model("resnet8_cifar", num_classes=7)]
    data, exact = synthetic_images(24), dict(batch_augmentation="none", teacher_store_views=1)
    _run(feed_config_factory, tmp_path, "ab", teachers[:2], data, teacher_store_dir=str(tmp_path / "ab"), **exact)
    sha, _ = push_store(tmp_path / "ab", repo)
    _another_machine(monkeypatch, tmp_path, "abc")
    mixed, results = _run(feed_config_factory, tmp_path, "abc", teachers, data, teacher_store_repo=repo,
                          teacher_store_dir=str(tmp_path / "abc-stores"), **exact)  # fmt: skip
    assert results["teacher_feature_sources"] == [f"hub:{repo}@{sha}"] * 2 + ["store"]
    assert results["teacher_features"] == "mixed" and results["teacher_forwards"]["images"] == 24  # C alone
    live, live_results = _run(feed_config_factory, tmp_path, "live", teachers, data, teacher_store=False,
                              teacher_store_dtype="bfloat16", **exact)  # fmt: skip
    assert live_results["teacher_features"] == "live"
    assert live_results["teacher_forwards"]["images"] == 3 * (16 + 8 + 16)  # 3 teachers × 3 steps' images
    torch.testing.assert_close(torch.tensor(_losses(mixed)), torch.tensor(_losses(live)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("damage", ["truncated shard", "missing checksums", "edited manifest"])
def test_a_corrupted_or_partial_pull_is_refused_in_one_line_and_nothing_is_kept(
    loopback_hub, tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch, damage
):
    repo = f"{REPO}-{damage.replace(' ', '-')}"
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    _run(feed_config_factory, tmp_path, "one", tiny_teachers[:1], synthetic_images(16),
         teacher_store_dir=str(tmp_path / "built"))  # fmt: skip
    push_store(tmp_path / "built", repo)
    files = loopback_hub.files(repo, repo_type="dataset")
    shard = next(name for name in files if re.search(r"/shard-\d+-of-\d+\.safetensors$", name))
    manifest = next(name for name in files if name.endswith("/manifest.json"))
    if damage == "truncated shard":
        loopback_hub.replace_file(repo, shard, files[shard][:-100], repo_type="dataset")
    elif damage == "missing checksums":
        loopback_hub.replace_file(repo, shard + ".digests.safetensors", None, repo_type="dataset")
    else:
        edited = json.loads(files[manifest])
        edited["key"]["settings"]["seed"] = 5
        loopback_hub.replace_file(repo, manifest, json.dumps(edited).encode(), repo_type="dataset")
    _another_machine(monkeypatch, tmp_path, "other")
    with pytest.raises(StoreIntegrityError, match=r"pulled from .* failed verification .*nothing of it was kept") as e:
        pull_store(repo, tmp_path / "pulled")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "pulled").exists() or list((tmp_path / "pulled").iterdir()) == []


def test_store_commands_push_pull_and_info(loopback_hub, tmp_path, tiny_teachers, synthetic_images,
                                           feed_config_factory, monkeypatch, capsys):  # fmt: skip
    repo = f"{REPO}-cli"
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    _run(feed_config_factory, tmp_path, "one", tiny_teachers[:1], synthetic_images(16),
         teacher_store_dir=str(tmp_path / "built"))  # fmt: skip
    capsys.readouterr()
    main(["store", "push", "--repo_id", repo, "--teacher_store_dir", str(tmp_path / "built")])
    main(["store", "info", "--repo_id", repo])
    main(["store", "pull", "--repo_id", f"{repo}@main", "--teacher_store_dir", str(tmp_path / "pulled")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"pushed 1 part(s) to dataset {repo}") and out[-1].startswith("pulled 1 part(s)")
    assert json.loads(out[1])["teacher"] == "resnet8_cifar" and json.loads(out[1])["images"] == 16
    assert [p.name for p in Path(tmp_path / "pulled").iterdir()] == [p.name for p in (tmp_path / "built").iterdir()]
    with pytest.raises(SystemExit) as exit_info:
        main(["store", "pull", "--repo_id", "tester/no-such-store", "--teacher_store_dir", str(tmp_path / "x")])
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(error) == 1 and "tester/no-such-store" in error[0]


def test_teacher_store_repo_needs_teacher_store(tmp_path, feed_config_factory):
    with pytest.raises(ValueError, match="teacher_store_repo='you/store' pulls a teacher store, but teacher_store is"):
        feed_config_factory(tmp_path, teacher_store_repo="you/store")


def test_the_cli_pushes_a_runs_store_and_another_run_pulls_it_with_no_teacher_forward(
    loopback_hub, tmp_path, monkeypatch
):
    import timm
    import torch
    from recipe_helpers import tiny_argv
    from timm.models import save_for_hf

    repo = f"{REPO}-from-the-cli"
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    torch.manual_seed(1)
    save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), tmp_path / "t", safe_serialization=True)
    argv = ["--teachers", str(tmp_path / "t"), "--teacher_store", "true", "--augmentation", "false"]
    main(["parallel", *tiny_argv(tmp_path / "one", *argv, "--teacher_store_dir", str(tmp_path / "built"))])
    main(["store", "push", "--repo_id", repo, "--teacher_store_dir", str(tmp_path / "built")])
    _another_machine(monkeypatch, tmp_path, "cli")
    pulled = ["--teacher_store_dir", str(tmp_path / "pulled"), "--teacher_store_repo", repo]
    main(["parallel", *tiny_argv(tmp_path / "two", *argv, *pulled)])
    first, second = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("one", "two"))
    assert first["teacher_features"] == "store" and first["teacher_forwards"]["images"] == 64
    assert second["teacher_features"].startswith(f"hub:{repo}@") and second["teacher_forwards"]["images"] == 0
