import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
from recipe_helpers import RECIPES, load_recipe, tiny_argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(script: str, argv: list[str], num_processes: int = 2) -> list[str]:
    """`accelerate launch` with the shipped 2-process CPU config (gloo), as a user would run it."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(RECIPES / "accelerate_configs" / "cpu_2proc.yaml"),
        "--num_processes",
        str(num_processes),
        "--main_process_port",
        str(free_port()),
        script,
        *argv,
    ]


def launch_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), OMP_NUM_THREADS="1")


def accelerate_launch(recipe: str, argv: list[str], num_processes: int = 2) -> subprocess.CompletedProcess:
    command = launch_command(str(RECIPES / f"{recipe}.py"), argv, num_processes)
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=launch_env())


def test_feed_parallel_under_accelerate_launch_with_two_cpu_processes(tmp_path):
    teachers = load_recipe("train_teachers").main(tiny_argv(tmp_path / "t", "--teacher_seeds", "1"))
    argv = tiny_argv(tmp_path / "pfeed", "--teachers", str(tmp_path / "t" / "teacher_0"))
    argv[argv.index("--use_cpu") + 1] = "false"  # the library must find the CPU world of 2 by itself
    result = accelerate_launch("feed_parallel", argv)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "pfeed" / "results.json").read_text())
    # 64 images, 32 per process and step: one optimizer step per epoch with 2 ranks (2 with one).
    assert results["train_metrics"]["train_steps_per_second"] > 0 and results["log_history"][-1]["step"] == 1
    assert teachers[0]["log_history"][-1]["step"] == 2
    assert results["world_size"] == 2 and teachers[0]["world_size"] == 1


@pytest.mark.parametrize(
    ("recipe", "extra", "exported"),
    [
        ("train_teachers", ["--teacher_seeds", "1", "2"], ["teacher_0", "teacher_1"]),
        ("baselines", ["--baseline", "kd", "--kd_weight", "1.0", "--teachers", "TEACHER"], ["."]),
        ("feed_sequential", ["--num_generations", "2"], ["generation_1", "generation_2"]),
    ],
)
def test_other_recipes_under_accelerate_launch_with_two_cpu_processes(tmp_path, recipe, extra, exported):
    if "TEACHER" in extra:
        load_recipe("train_teachers").main(tiny_argv(tmp_path / "t", "--teacher_seeds", "1"))
        extra = [str(tmp_path / "t" / "teacher_0") if a == "TEACHER" else a for a in extra]
    argv = tiny_argv(tmp_path / "run", *extra)
    argv[argv.index("--use_cpu") + 1] = "false"
    result = accelerate_launch(recipe, argv)
    assert result.returncode == 0, result.stderr[-3000:]
    for folder in exported:  # every model exported once, by rank 0, loadable, trained on both ranks
        recorded = json.loads((tmp_path / "run" / folder / "results.json").read_text())
        assert recorded["world_size"] == 2
        assert safetensors.torch.load_file(tmp_path / "run" / folder / "model.safetensors")


def _run_worker(tmp_path, name: str, num_processes: int, batchnorm: str = "batch-statistics") -> dict:
    output, reports = tmp_path / name / "out", tmp_path / name / "reports"
    reports.mkdir(parents=True)
    worker = str(Path(__file__).resolve().parent / "ddp_worker.py")
    per_device = str(32 // num_processes)  # same global batch: 32
    arguments = [str(output), per_device, str(reports), batchnorm]
    if num_processes == 1:
        command = [sys.executable, worker, *arguments]
    else:
        command = launch_command(worker, arguments, num_processes)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=launch_env())
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(p.read_text()) for p in sorted(reports.glob("rank*.json"))]
    weights = safetensors.torch.load_file(output / "checkpoint-6" / "model.safetensors")
    initial = safetensors.torch.load_file(reports / "initial.safetensors")
    return {"ranks": ranks, "stderr": done.stderr, "weights": weights, "initial": initial}


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    single, ddp = _run_worker(tmp_path, "single", 1), _run_worker(tmp_path, "ddp", 2)
    assert [r["world_size"] for r in ddp["ranks"]] == [2, 2]
    assert ddp["ranks"][0]["wrapped"] == "DistributedDataParallel" and single["ranks"][0]["wrapped"] == "FeedStudent"
    for rank in ddp["ranks"]:  # teachers stay plain frozen modules: never wrapped, never trained
        assert "DistributedDataParallel" not in rank["teacher_types"] and not rank["teachers_have_grad"]
    assert "find_unused_parameters" not in ddp["stderr"] and "unused parameters" not in ddp["stderr"]

    # metrics are gathered: the logged term is the mean of the two ranks' own values
    rank0, rank1 = ddp["ranks"]
    for step, logged in enumerate(rank0["logged"]):
        expected = (rank0["local_terms"][step]["feed/loss_t1"] + rank1["local_terms"][step]["feed/loss_t1"]) / 2
        assert logged["feed/loss_t1"] == pytest.approx(expected, rel=1e-5)

    # Same samples per global step; BatchNorm computes its statistics per rank (16 images) under DDP and over
    # all 32 in one process, which moves the curve by up to a few percent after a few steps.
    single_curve = [e["loss"] for e in single["ranks"][0]["logged"]]
    ddp_curve = [e["loss"] for e in rank0["logged"]]
    assert all(a == pytest.approx(b, rel=0.03) for a, b in zip(single_curve, ddp_curve, strict=True))

    # only rank 0 writes files
    # (the Trainer creates checkpoint folders with makedirs(exist_ok=True) on every rank: folders, not files)
    assert [w for w in rank1["writes"] if not w.startswith("os.mkdir")] == []
    assert any(w.endswith("trainer_state.json") for w in rank0["writes"])


def test_ddp_equals_one_process_exactly_when_batchnorm_statistics_are_taken_out(tmp_path):
    single = _run_worker(tmp_path, "single", 1, "frozen-batchnorm")
    ddp = _run_worker(tmp_path, "ddp", 2, "frozen-batchnorm")
    single_curve = [e["loss"] for e in single["ranks"][0]["logged"]]
    ddp_curve = [e["loss"] for e in ddp["ranks"][0]["logged"]]
    assert all(a == pytest.approx(b, rel=1e-5) for a, b in zip(single_curve, ddp_curve, strict=True))
    # Student and connectors: the two runs sum the same gradients in another order (one 32-image reduction
    # against two 16-image ones plus an all-reduce), so they differ by rounding that 6 momentum steps carry
    # forward. That difference scales with how far training moved each tensor, not with the tensor's size:
    # an element-wise rtol fails on weights that start near zero. Compare each tensor's difference with its
    # update instead.
    for name, tensor in single["weights"].items():
        if tensor.is_floating_point() and name in single["initial"]:
            update = (tensor - single["initial"][name]).norm()
            difference = (ddp["weights"][name] - tensor).norm()
            assert difference <= 1e-2 * update + 1e-7, (name, float(difference), float(update))
