"""The evidence grid: teachers, CE / logit KD / FEED / pFEED / sFEED students, a β sweep, seeds, report + plots.

    python recipes/feed_experiment.py recipes/configs/cifar10_cpu_experiment.yaml      # CIFAR-10, 2-core CPU
    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml \\
        recipes/feed_experiment.py recipes/configs/cifar100_experiment_gpu.yaml        # CIFAR-100, paper scale

Every run is exported under OUTPUT_DIR; the report goes to REPORT_PATH (+ PNG plots). Rerunning reuses
finished runs, so an interrupted experiment resumes. Same code as `feed-hf experiment`.
"""

import sys

from feed_hf_cli import main as feed_hf  # --help answered without importing torch
from feed_hf_cli import run_recipe


def main(argv: list[str] | None = None):
    return run_recipe("experiment", argv)


if __name__ == "__main__":
    feed_hf(["experiment", *sys.argv[1:]])  # the same as `feed-hf experiment`: a config error is one line
