"""Baselines for a FEED config: CE only, logit KD from the teacher ensemble, FEED from a single teacher.

    python recipes/baselines.py recipes/configs/cifar10_cpu_small.yaml --baseline ce --output_dir runs/cpu/ce
    python recipes/baselines.py recipes/configs/cifar10_cpu_small.yaml --baseline kd --kd_weight 1.0 \\
        --teachers runs/cifar10_cpu_small/teachers/teacher_0 --output_dir runs/cpu/kd
    python recipes/baselines.py recipes/configs/cifar10_cpu_small.yaml --baseline single_feed --teacher_index 0 \\
        --teachers runs/cifar10_cpu_small/teachers/teacher_0 --output_dir runs/cpu/feed_t0

Run with the FEED config itself so every baseline shares its data, student and schedule.
Same code as `feed-hf baselines`.
"""

import sys

from feed_hf_cli import main as feed_hf  # --help answered without importing torch
from feed_hf_cli import run_recipe


def main(argv: list[str] | None = None):
    return run_recipe("baselines", argv)


if __name__ == "__main__":
    feed_hf(["baselines", *sys.argv[1:]])  # the same as `feed-hf baselines`: a config error is one line
