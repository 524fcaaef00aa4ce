"""Across nodes (issue 22, item 4): one store folder every process sees, or the run is refused on every process,
never a silent per-node mismatch. Two processes on this machine (gloo on localhost) pose as two nodes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import free_port
from test_distributed import launch_env

WORKER = str(Path(__file__).resolve().parent / "store_nodes_worker.py")


def _two_nodes(cases: list[tuple[str, str]]) -> list[list[str]]:
    """Per case, the outcomes of rank 0 and rank 1."""
    port, argv = str(free_port()), json.dumps(cases)
    processes = [
        subprocess.Popen([sys.executable, WORKER, str(rank), port, argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=launch_env())
        for rank in (0, 1)
    ]  # fmt: skip
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return [list(case) for case in zip(*outcomes, strict=True)]


def test_a_shared_folder_passes_a_folder_per_node_or_other_parts_per_node_are_refused_everywhere(tmp_path):
    shared, per_node, other_data = _two_nodes([
        (str(tmp_path / "shared"), "aaa,bbb"),
        (str(tmp_path / "node{rank}"), "aaa,bbb"),
        (str(tmp_path / "fresh"), "aaa,bbb{rank}"),
    ])  # fmt: skip
    assert shared == ["ok", "ok"] and list((tmp_path / "shared").iterdir()) == []  # no marker left
    for outcome in per_node:  # both processes stop, with the same one line
        assert outcome.startswith("StoreNotSharedError: teacher_store_dir is not one folder shared by every process")
        assert "does not see the markers of rank(s) [1]" in outcome and "\n" not in outcome
    for outcome in other_data:
        assert outcome.startswith("StoreNotSharedError: the processes of this run want different teacher stores")
    assert not (tmp_path / "fresh").exists()  # refused before any marker or part was written


def _launch_two_machines(tmp_path: Path, name: str, store: str) -> list[subprocess.CompletedProcess]:
    """`accelerate launch --num_machines 2 --machine_rank R` for R = 0, 1 on localhost: one process per 'node'."""
    port, reports = str(free_port()), tmp_path / name / "reports"
    reports.mkdir(parents=True)
    worker = str(Path(__file__).resolve().parent / "teacher_store_worker.py")
    launches = [
        subprocess.Popen([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
                          "--machine_rank", str(rank), "--num_processes", "2", "--main_process_ip", "127.0.0.1",
                          "--main_process_port", port, worker, str(tmp_path / name / f"out{rank}"),
                          store.format(rank=rank), str(reports)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=launch_env())
        for rank in (0, 1)
    ]  # fmt: skip
    outputs = [launch.communicate(timeout=600) for launch in launches]  # reads both pipes: no launch blocks on one
    return [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(launches, outputs, strict=True)]


@pytest.mark.slow  # four accelerate launches: about a minute on this machine
def test_two_machine_ranks_with_a_folder_each_are_refused_and_with_one_shared_folder_build_one_store(tmp_path):
    for done in _launch_two_machines(tmp_path, "apart", str(tmp_path / "node{rank}")):
        assert done.returncode != 0 and "StoreNotSharedError: teacher_store_dir is not one folder" in done.stderr
    assert not list((tmp_path / "apart" / "reports").iterdir())  # no run trained
    for done in _launch_two_machines(tmp_path, "shared", str(tmp_path / "shared")):
        assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(path.read_text()) for path in sorted((tmp_path / "shared" / "reports").glob("*.json"))]
    for report in reports:  # 30 images, 15 per node, 3 views, per teacher: each node built its own shard once
        assert report["world_size"] == 2 and sorted(report["built"].values()) == [15 * 3, 15 * 3]
    assert reports[0]["map_sums"] == reports[1]["map_sums"]  # both nodes read the same whole store
