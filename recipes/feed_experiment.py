"""The evidence grid: teachers, CE / logit KD / FEED / pFEED / sFEED students, a β sweep, seeds, report + plots.

    python recipes/feed_experiment.py recipes/configs/cifar10_cpu_experiment.yaml      # CIFAR-10, 2-core CPU
    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml \
        recipes/feed_experiment.py recipes/configs/cifar100_experiment_gpu.yaml        # CIFAR-100, paper scale

Every run is exported under OUTPUT_DIR; the report goes to REPORT_PATH (+ PNG plots). Rerunning reuses
finished runs, so an interrupted experiment resumes.
"""

from feed_hf import FeedConfig
from feed_hf.arguments import parse_arguments
from feed_hf.cli import report_user_errors
from feed_hf.data import DataArguments
from feed_hf.experiment import ExperimentArguments, run_experiment


def main(argv: list[str] | None = None) -> dict:
    data_args, args, experiment = parse_arguments((DataArguments, FeedConfig, ExperimentArguments), argv)
    return run_experiment(data_args, args, experiment)


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
