"""`feed-hf demo`: the whole FEED story offline in a few minutes on a dataset that ships with scikit-learn.

Trains 2 teachers (different seeds), a CE baseline and a parallel-FEED student of a smaller
architecture, prints test accuracy (each teacher, the teachers' logit ensemble, baseline, pFEED)
and leaves every model exported with its card and results.json under `--output_dir`.
Example: feed-hf demo --dataset ../shared/data/cifar10-jpeg --max_train_samples 5000 --output_dir runs/demo_cifar10
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.loading import DataArguments, load_image_splits
from ..publishing.run_record import hardware_description
from ..training.config.feed_config import FeedConfig
from ..training.train_model import train_model
from .evaluation import ensemble_top1
from .jobs import baseline_config, train_teachers

__all__ = ["DemoArguments", "numerics", "run_demo"]


@dataclass
class DemoArguments:
    dataset: str = field(
        default="digits",
        metadata={"help": "'digits' (offline, ships with scikit-learn) or any `feed-hf parallel` source."},
    )
    output_dir: str = field(default="runs/demo", metadata={"help": "Where the teachers and students are exported."})
    teacher: str = field(default="resnet20_cifar", metadata={"help": "timm architecture of the 2 teachers."})
    student: str = field(default="resnet8_cifar", metadata={"help": "timm architecture of baseline and pFEED student."})
    input_size: int | None = field(
        default=None, metadata={"help": "Input resolution. Default: 16 for digits (8×8 images), the model's own else."}
    )
    num_train_epochs: float = field(
        default=8, metadata={"help": "Epochs of every model (8 keeps the demo under 3 minutes on 2 CPU cores)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Seeded subset of train (fast runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Seeded subset of the eval split."})
    feed_beta: float = field(
        default=50.0,
        metadata={
            "help": "β of the pFEED student (mean reduction). 50: the β the CIFAR-10 CPU experiment's validation "
            "sweep chose for small students (the paper's 500 is for its 300-epoch CIFAR-100 runs)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the students and the data split; teachers use seed+1, +2."})


def _training_config(demo: DemoArguments, output_dir: Path) -> FeedConfig:
    return FeedConfig(
        output_dir=str(output_dir),
        overwrite_output_dir=True,  # the demo's own folder: a second `make demo` replaces the first one's models
        student=demo.student,
        input_size=demo.input_size or (16 if demo.dataset == "digits" else None),
        num_train_epochs=demo.num_train_epochs,
        per_device_train_batch_size=64,
        per_device_eval_batch_size=256,
        optim="sgd",
        optim_args="momentum=0.9,nesterov=True",
        learning_rate=0.05,
        weight_decay=5e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        feed_beta=[demo.feed_beta],
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=demo.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def run_demo(demo: DemoArguments) -> dict[str, Any]:
    """Teachers → ensemble → CE baseline → pFEED; returns (and writes) the accuracy table."""
    started = time.perf_counter()
    output_dir = Path(demo.output_dir)
    data_args = DataArguments(
        dataset=demo.dataset,
        horizontal_flip=demo.dataset != "digits",  # a mirrored digit is another symbol
        max_train_samples=demo.max_train_samples,
        max_eval_samples=demo.max_eval_samples,
    )
    splits = load_image_splits(data_args, seed=demo.seed)
    base = _training_config(demo, output_dir)
    print(f"[1/4] training 2 × {demo.teacher} teachers on {len(splits['train'])} images ({demo.dataset})")
    teacher_args = dataclasses.replace(base, student=demo.teacher)
    teachers = train_teachers(data_args, teacher_args, seeds=[demo.seed + 1, demo.seed + 2], splits=splits)
    teacher_dirs = [str(output_dir / f"teacher_{i}") for i in range(len(teachers))]
    print("[2/4] evaluating the teachers' logit ensemble")
    ensemble = ensemble_top1(teacher_dirs, splits["eval"])
    print(f"[3/4] training the CE baseline ({demo.student})")
    baseline = train_model(
        data_args,
        baseline_config(dataclasses.replace(base, output_dir=str(output_dir / "baseline_ce")), "ce"),
        splits,
        task="baseline_ce",
    )
    print(f"[4/4] training the parallel-FEED student ({demo.student} ← 2 × {demo.teacher}, β = {demo.feed_beta})")
    feed_args = dataclasses.replace(base, output_dir=str(output_dir / "student_pfeed"), teachers=teacher_dirs)
    pfeed = train_model(data_args, feed_args, splits, task="pfeed", baseline_top1=baseline["metrics"]["eval_top1"])

    rows = [(f"teacher {i} ({demo.teacher})", t["metrics"]["eval_top1"]) for i, t in enumerate(teachers)]
    rows += [
        ("teachers' logit ensemble", ensemble),
        (f"CE baseline ({demo.student})", baseline["metrics"]["eval_top1"]),
        (f"pFEED student ({demo.student})", pfeed["metrics"]["eval_top1"]),
    ]
    table = _markdown_table(rows, len(splits["eval"]))
    summary = {
        "rows": dict(rows),
        "num_eval": len(splits["eval"]),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "demo": dataclasses.asdict(demo),
        "student_export": str(output_dir / "student_pfeed"),
        "numerics": numerics(),
    }
    (output_dir / "demo_results.json").write_text(json.dumps(summary, indent=2))
    (output_dir / "demo_results.md").write_text(table)
    print("\n" + table)
    print(_numerics_line(summary["numerics"]))
    print(
        f"pFEED student (with model card) exported to {output_dir / 'student_pfeed'}; total {summary['wall_time_s']} s"
    )
    return summary


def numerics() -> dict[str, Any]:
    """What decides the demo's last digits besides the seed: CPU, kernel instruction set and thread count.

    Same seed and data order, but torch's vectorised kernels (`ATEN_CPU_CAPABILITY`), oneDNN's convolutions
    and MKL's GEMMs sum in an order that depends on the instruction set and the thread count, so the figures
    of two machines agree only when these agree (measured: README, "What the demo prints").
    """
    return {
        "hardware": hardware_description(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "num_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _numerics_line(facts: dict[str, Any]) -> str:
    return (
        f"numerics: {facts['hardware']}, {facts['cpu_capability']} kernels, torch {facts['torch']}; "
        "another instruction set or thread count moves these figures by a few images"
    )


def _markdown_table(rows: list[tuple[str, float]], num_eval: int) -> str:
    lines = [f"| model | test top-1 (%, n = {num_eval}) |", "|---|---|"]
    lines += [f"| {name} | {accuracy:.2f} |" for name, accuracy in rows]
    return "\n".join(lines) + "\n"
