"""A store-reusing run against live teachers through the CLI, data decoding included (issue 22's held-out figure).

    python benchmarks/store_cli_speedup.py                      # 3 teachers, 1,024 images x 2 epochs, 2 repeats
    python benchmarks/store_cli_speedup.py --teacher_store_dtype pca_int8

What `feed-hf parallel` does, timed by the Trainer's `train_runtime` (the image decoding and the transforms of the
loader included, unlike benchmarks/teacher_store_epoch.py, which feeds decoded tensors): three `resnet56_cifar`
teachers (made by `feed-hf teachers` with one step each: their cost does not depend on what they learned), a
`resnet20_cifar` student, `batch_augmentation=crop_flip`, batch 128, the first `num_images` CIFAR-10 training images
(../shared/data/cifar10-jpeg). The store is built once by a first run (its time reported apart); then `repeats`
rounds each run live teachers and a run that reuses the store, interleaved so load changes hit both arms.
Speed-up = median live `train_runtime` / median store `train_runtime`. Writes a JSON beside the runs.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from feed_hf_cli import run_command

CIFAR = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg")


@dataclass
class SpeedupArguments:
    num_images: int = field(default=1024, metadata={"help": "Training images."})
    epochs: int = field(default=2, metadata={"help": "Epochs per timed run."})
    views: int = field(default=2, metadata={"help": "Views K in the store."})
    repeats: int = field(default=2, metadata={"help": "Interleaved live/store rounds."})
    teacher_store_dtype: str = field(default="bfloat16", metadata={"help": "The store's storage."})
    output_dir: str = field(default="runs/benchmarks/store_cli_speedup", metadata={"help": "Runs and JSON."})


def _common(args: SpeedupArguments, output_dir: Path) -> list[str]:
    return ["--dataset", CIFAR, "--max_train_samples", str(args.num_images), "--max_eval_samples", "128",
            "--output_dir", str(output_dir), "--overwrite_output_dir", "true", "--per_device_train_batch_size",
            "128", "--eval_strategy", "no", "--save_strategy", "no", "--do_eval", "false", "--report_to", "none",
            "--disable_tqdm", "true", "--dataloader_num_workers", "0"]  # fmt: skip


def _runtime(args: SpeedupArguments, root: Path, name: str, teachers: list[str], store: bool) -> float:
    argv = [*_common(args, root / name), "--student", "resnet20_cifar", "--teachers", *teachers]
    argv += ["--num_train_epochs", str(args.epochs), "--batch_augmentation", "crop_flip", "--feed_beta", "100"]
    if store:
        argv += ["--teacher_store", "true", "--teacher_store_dir", str(root / "store"), "--teacher_store_views",
                 str(args.views), "--teacher_store_dtype", args.teacher_store_dtype]  # fmt: skip
    return float(run_command("parallel", argv)["train_metrics"]["train_runtime"])


def main() -> None:
    (args,) = HfArgumentParser(SpeedupArguments).parse_args_into_dataclasses()
    root = Path(args.output_dir)
    teacher_argv = [*_common(args, root / "teachers"), "--model", "resnet56_cifar", "--teacher_seeds", "1", "2", "3"]
    run_command("teachers", [*teacher_argv, "--max_steps", "1"])
    teachers = [str(root / "teachers" / f"teacher_{index}") for index in range(3)]
    build = _runtime(args, root, "build", teachers, store=True)  # builds the store, then trains on it
    live, stored = [], []
    for repeat in range(args.repeats):
        live.append(_runtime(args, root, f"live_{repeat}", teachers, store=False))
        stored.append(_runtime(args, root, f"store_{repeat}", teachers, store=True))
    summary = {"arguments": asdict(args), "build_run_s": build, "live_s": live, "store_s": stored,
               "speedup": statistics.median(live) / statistics.median(stored)}  # fmt: skip
    (root / "store_cli_speedup.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
