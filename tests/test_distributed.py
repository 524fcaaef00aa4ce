import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from recipe_helpers import RECIPES, load_recipe, tiny_argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_launch(recipe: str, argv: list[str], num_processes: int = 2) -> subprocess.CompletedProcess:
    """`accelerate launch` with the shipped 2-process CPU config (gloo), as a user would run it."""
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(RECIPES / "accelerate_configs" / "cpu_2proc.yaml"),
        "--num_processes",
        str(num_processes),
        "--main_process_port",
        str(free_port()),
        str(RECIPES / f"{recipe}.py"),
        *argv,
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


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
