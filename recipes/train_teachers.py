"""Train N same-architecture teachers (cross-entropy, one per seed); each is exported like a student.

    python recipes/train_teachers.py recipes/configs/cifar10_cpu_teachers.yaml
    python recipes/train_teachers.py recipes/configs/cifar100_teachers_resnet56.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu_bf16.yaml \\
        recipes/train_teachers.py recipes/configs/cifar100_teachers_resnet56.yaml

Teacher i lands in OUTPUT_DIR/teacher_i (config.json + model.safetensors + README.md + results.json),
ready to be named in `teachers:` of a FEED config. Any option can follow the config: `--teacher_seeds 4 5`.
"""

from feed_hf import FeedConfig
from feed_hf.arguments import parse_arguments
from feed_hf.cli import report_user_errors
from feed_hf.data import DataArguments
from feed_hf.jobs import TeacherArguments, train_teachers


def main(argv: list[str] | None = None) -> list[dict]:
    data_args, args, teacher_args = parse_arguments((DataArguments, FeedConfig, TeacherArguments), argv)
    return train_teachers(data_args, args, teacher_args.teacher_seeds)


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
