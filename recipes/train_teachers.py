"""Train N same-architecture teachers (cross-entropy, one per seed); each is exported like a student.

    python recipes/train_teachers.py recipes/configs/cifar10_cpu_small.yaml --student resnet14_cifar \\
        --teacher_seeds 1 2 --output_dir runs/cifar10_cpu_small/teachers
    python recipes/train_teachers.py recipes/configs/cifar100_teachers_resnet56.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu_bf16.yaml \\
        recipes/train_teachers.py recipes/configs/cifar100_teachers_resnet56.yaml

Teacher i lands in OUTPUT_DIR/teacher_i (config.json + model.safetensors + README.md + results.json),
ready to be named in `teachers:` of a FEED config. Same code as `feed-hf teachers`.
"""

import sys

from feed_hf_cli import main as feed_hf  # --help answered without importing torch
from feed_hf_cli import run_recipe


def main(argv: list[str] | None = None):
    return run_recipe("teachers", argv)


if __name__ == "__main__":
    feed_hf(["teachers", *sys.argv[1:]])  # the same as `feed-hf teachers`: a config error is one line
