"""Train N same-architecture teachers (cross-entropy, one per seed); each is exported like a student.

    python recipes/train_teachers.py recipes/configs/cifar10_cpu_small.yaml --student resnet14_cifar \\
        --teacher_seeds 1 2 --output_dir runs/cifar10_cpu_small/teachers
    python recipes/train_teachers.py recipes/configs/cifar100_teachers_resnet56.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu_bf16.yaml \\
        recipes/train_teachers.py recipes/configs/cifar100_teachers_resnet56.yaml

Teacher i lands in OUTPUT_DIR/teacher_i (config.json + model.safetensors + README.md + results.json),
ready to be named in `teachers:` of a FEED config. Same code as `feed-hf teachers`.
"""

from feed_hf.runs.commands import report_user_errors, run_command


def main(argv: list[str] | None = None):
    return run_command("teachers", argv)


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
