"""Parallel FEED: one student learns the final feature maps of several frozen teachers at once.

    python recipes/feed_parallel.py recipes/configs/cifar10_cpu_small.yaml \\
        --teachers runs/cifar10_cpu_small/teachers/teacher_0 runs/cifar10_cpu_small/teachers/teacher_1
    python recipes/feed_parallel.py recipes/configs/cifar100_pfeed_resnet56x3_to_resnet20.yaml --feed_beta 200
    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml \\
        recipes/feed_parallel.py recipes/configs/cifar10_cpu_small.yaml --teachers ...
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu_bf16.yaml \\
        recipes/feed_parallel.py recipes/configs/imagenet_pfeed_resnet34x2_to_resnet18.yaml

The student is exported to OUTPUT_DIR (timm format + feed_config.json + README.md + results.json).
Same code as `feed-hf parallel`.
"""

import sys

from feed_hf_cli import main as feed_hf  # --help answered without importing torch
from feed_hf_cli import run_recipe


def main(argv: list[str] | None = None):
    return run_recipe("parallel", argv)


if __name__ == "__main__":
    feed_hf(["parallel", *sys.argv[1:]])  # the same as `feed-hf parallel`: a config error is one line
