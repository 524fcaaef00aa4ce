"""The teacher store under `accelerate launch` with 2 CPU processes: each rank computes only its shard."""

import json
import subprocess
from pathlib import Path

import pytest
from test_distributed import launch_command, launch_env


def _launch(tmp_path: Path, name: str, store: Path, *repo: str) -> list[dict]:
    reports = tmp_path / name / "reports"
    reports.mkdir(parents=True)
    worker = str(Path(__file__).resolve().parent / "teacher_store_worker.py")
    command = launch_command(worker, [str(tmp_path / name / "out"), str(store), str(reports), *repo], 2)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=launch_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(path.read_text()) for path in sorted(reports.glob("rank*.json"))]


@pytest.mark.slow  # two accelerate launches of 2 processes: about a minute on this machine
def test_two_ranks_build_one_store_once_and_a_second_run_makes_no_teacher_forward(tmp_path):
    store = tmp_path / "store"
    first = _launch(tmp_path, "first", store)
    assert [report["world_size"] for report in first] == [2, 2]
    for report in first:  # 30 images, 15 per rank, 3 views each, per teacher; training adds none
        assert sorted(report["built"].values()) == [15 * 3, 15 * 3]
        assert report["after_training"] == report["built"]
        assert report["shards"] == ["shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors"]
    assert first[0]["map_sums"] == first[1]["map_sums"]  # both ranks read the whole store, the same rows
    second = _launch(tmp_path, "second", store)
    assert all(report["built"] == {} and report["after_training"] == {} for report in second)
    assert second[0]["map_sums"] == first[0]["map_sums"]


@pytest.mark.slow  # one accelerate launch of 2 processes: about half a minute on this machine
def test_two_ranks_pull_a_pushed_store_and_make_no_teacher_forward(loopback_hub, tmp_path, monkeypatch):
    from conftest import HUB_TOKEN

    from feed_hf.store.hub import push_store

    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)  # the launched processes inherit it, and HF_ENDPOINT
    built = _launch(tmp_path, "built", tmp_path / "built")
    sha, _ = push_store(tmp_path / "built", "tester/ddp-store")
    pulled = _launch(tmp_path, "pulled", tmp_path / "pulled", "tester/ddp-store")
    for report in pulled:  # rank 0 pulled, both ranks read the pulled parts; no teacher forward anywhere
        assert report["built"] == {} and report["after_training"] == {}
        assert report["map_sums"] == built[0]["map_sums"]
    assert pulled[0]["sources"] == [f"hub:tester/ddp-store@{sha}"] * 2
