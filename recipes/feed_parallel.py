"""Parallel FEED: one student learns the final feature maps of several frozen teachers at once.

    python recipes/feed_parallel.py recipes/configs/cifar10_cpu_pfeed.yaml
    python recipes/feed_parallel.py recipes/configs/cifar100_pfeed_resnet56x3_to_resnet20.yaml --feed_beta 200
    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml \\
        recipes/feed_parallel.py recipes/configs/cifar10_cpu_pfeed.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu_bf16.yaml \\
        recipes/feed_parallel.py recipes/configs/imagenet_pfeed_resnet34x2_to_resnet18.yaml

The student is exported to OUTPUT_DIR (timm format + feed_config.json + README.md + results.json).
"""

from feed_hf import FeedConfig
from feed_hf.arguments import parse_arguments
from feed_hf.cli import report_user_errors
from feed_hf.data import DataArguments
from feed_hf.jobs import train_model


def main(argv: list[str] | None = None) -> dict:
    data_args, args = parse_arguments((DataArguments, FeedConfig), argv)
    return train_model(data_args, args, task="pfeed")


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
