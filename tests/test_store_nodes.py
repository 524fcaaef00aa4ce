"""Across nodes (issue 22, item 4): one store folder every process sees, or the run is refused on every process,
never a silent per-node mismatch. Two processes on this machine (gloo on localhost) pose as two nodes."""

import json
import subprocess
import sys
from pathlib import Path

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
