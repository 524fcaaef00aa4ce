"""The evidence grid: teachers, CE / logit KD / FEED / pFEED / sFEED students, a β sweep, seeds, report + plots.

    python recipes/feed_experiment.py recipes/configs/cifar10_cpu_experiment.yaml      # CIFAR-10, 2-core CPU
    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml \\
        recipes/feed_experiment.py recipes/configs/cifar100_experiment_gpu.yaml        # CIFAR-100, paper scale

Every run is exported under OUTPUT_DIR; the report goes to REPORT_PATH (+ PNG plots). Rerunning reuses
finished runs, so an interrupted experiment resumes. Same code as `feed-hf experiment`.
"""

from feed_hf.runs.commands import report_user_errors, run_command


def main(argv: list[str] | None = None):
    return run_command("experiment", argv)


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
