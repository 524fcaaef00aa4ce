"""Baselines for a FEED config: CE only, logit KD from the teacher ensemble, FEED from a single teacher.

    python recipes/baselines.py recipes/configs/cifar10_cpu_pfeed.yaml --baseline ce --output_dir runs/cpu/ce
    python recipes/baselines.py recipes/configs/cifar10_cpu_pfeed.yaml --baseline kd --kd_weight 1.0 \\
        --output_dir runs/cpu/kd
    python recipes/baselines.py recipes/configs/cifar10_cpu_pfeed.yaml --baseline single_feed --teacher_index 0 \\
        --output_dir runs/cpu/feed_t0

Run with the FEED config itself so every baseline shares its data, student and schedule.
"""

from feed_hf import FeedConfig
from feed_hf.arguments import parse_arguments
from feed_hf.cli import report_user_errors
from feed_hf.data import DataArguments
from feed_hf.jobs import BaselineArguments, baseline_config, train_model


def main(argv: list[str] | None = None) -> dict:
    data_args, args, baseline_args = parse_arguments((DataArguments, FeedConfig, BaselineArguments), argv)
    config = baseline_config(args, baseline_args.baseline, baseline_args.teacher_index)
    return train_model(data_args, config, task=f"baseline_{baseline_args.baseline}")


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
