"""Few labels + label-free FEED on CIFAR-10 (issue 13, item 9): is distilling on unlabelled images worth it?

    python benchmarks/label_free_few_labels.py                      # the CPU-scale protocol, ~25 min on 2 cores
    python benchmarks/label_free_few_labels.py --unlabelled 50000 --label_free_epochs 30 --labelled_epochs 30

Every arm runs the shipped config `recipes/configs/cifar10_label_free_few_labels.yaml` through the same command
table as `feed-hf`, on ../shared/data/cifar10-jpeg, for each seed:

1. teachers (once): `teachers` ResNet-14s trained with labels on `teacher_images` images (the "strong teachers
   from elsewhere" of the real case; they see more labels than the students);
2. **label-free FEED → fine-tune**: pFEED from the teachers on `unlabelled` images with labels ignored
   (`label_column: none`; the student is a backbone), then fine-tuned from that export (`student: local-dir:…`)
   with CE on the `labelled` images;
3. **CE**: the same student, CE on the same `labelled` images;
4. **pFEED, labelled only**: CE + FEED from the teachers on the same `labelled` images.

Arms 2-4 share the labelled images (the config's seeded `max_train_samples` subset), the seed, the schedule and the
number of epochs on labelled data; arm 2 also spends `label_free_epochs` on unlabelled images. The unlabelled set
is a seeded subset of all 50,000 training images (it may contain the labelled ones: no labels are read there).
Writes results/cifar10_label_free.{md,json,png}.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from feed_hf_cli import run_command

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "recipes" / "configs" / "cifar10_label_free_few_labels.yaml")
ARMS = ("label-free FEED → fine-tune", "CE", "pFEED, labelled only")


@dataclass
class ProtocolArguments:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds, one run per arm each."})
    labelled: int = field(default=2500, metadata={"help": "Labelled training images (every arm)."})
    unlabelled: int = field(default=20000, metadata={"help": "Images distilled without labels (arm 2)."})
    labelled_epochs: int = field(default=15, metadata={"help": "Epochs on the labelled images (every arm)."})
    label_free_epochs: int = field(default=3, metadata={"help": "Epochs of label-free FEED (arm 2)."})
    teacher_images: int = field(default=10000, metadata={"help": "Labelled images the teachers train on."})
    teacher_epochs: int = field(default=5, metadata={"help": "Teacher epochs."})
    output_dir: str = field(default="runs/cifar10_label_free", metadata={"help": "Where the runs are exported."})
    report: str = field(default="results/cifar10_label_free.md", metadata={"help": "The report (+ .json, .png)."})


def _common(output_dir: Path, seed: int, epochs: int) -> list[str]:
    return [CONFIG, "--output_dir", str(output_dir), "--seed", str(seed), "--num_train_epochs", str(epochs),
            "--eval_strategy", "no", "--save_strategy", "no", "--overwrite_output_dir", "true"]  # fmt: skip


def _top1(results: dict) -> float:
    return float(results["metrics"]["eval_top1"])


def run_protocol(args: ProtocolArguments) -> dict:
    root = Path(args.output_dir)
    teacher_argv = _common(root / "teachers", 100, args.teacher_epochs)
    teacher_argv += [
        "--max_train_samples",
        str(args.teacher_images),
        "--student",
        "resnet14_cifar",
    ]  # overrides the config
    teacher_argv += ["--teacher_seeds", "101", "102"]
    teachers = run_command("teachers", teacher_argv)
    teacher_dirs = [str(root / "teachers" / f"teacher_{i}") for i in range(len(teachers))]
    rows: dict[str, list[float]] = {arm: [] for arm in ARMS}
    minutes: dict[str, float] = dict.fromkeys(ARMS, 0.0)
    for seed in args.seeds:
        labelled = ["--max_train_samples", str(args.labelled)]
        started = time.perf_counter()
        stage_one = _common(root / f"label_free_s{seed}", seed, args.label_free_epochs)
        stage_one += ["--label_column", "none", "--max_train_samples", str(args.unlabelled)]
        stage_one += ["--max_eval_samples", "1000", "--teachers", *teacher_dirs]
        run_command("parallel", stage_one)
        fine_tune = _common(root / f"fine_tuned_s{seed}", seed, args.labelled_epochs) + labelled
        fine_tune += ["--student", f"local-dir:{root / f'label_free_s{seed}'}", "--input_size", "32"]
        rows[ARMS[0]].append(_top1(run_command("baselines", fine_tune)))
        minutes[ARMS[0]] += (time.perf_counter() - started) / 60
        started = time.perf_counter()
        rows[ARMS[1]].append(
            _top1(run_command("baselines", _common(root / f"ce_s{seed}", seed, args.labelled_epochs) + labelled))
        )
        minutes[ARMS[1]] += (time.perf_counter() - started) / 60
        started = time.perf_counter()
        pfeed = _common(root / f"pfeed_labelled_s{seed}", seed, args.labelled_epochs) + labelled
        rows[ARMS[2]].append(_top1(run_command("parallel", pfeed + ["--teachers", *teacher_dirs])))
        minutes[ARMS[2]] += (time.perf_counter() - started) / 60
    return {"arguments": asdict(args), "teachers_top1": [_top1(t) for t in teachers], "top1": rows,
            "minutes": {arm: round(m, 1) for arm, m in minutes.items()}}  # fmt: skip


def write_report(summary: dict, report: Path) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    args, rows = summary["arguments"], summary["top1"]
    ce = rows["CE"]
    lines = [
        "# Few labels + label-free FEED on CIFAR-10 (CPU scale)",
        "",
        f"Command: `python benchmarks/label_free_few_labels.py` ({json.dumps(args)}).",
        "Hardware: 2-core AMD EPYC VM, no GPU, torch 2.14.1; ResNet-8 students, ResNet-14 teachers "
        f"(top-1 {', '.join(f'{t:.2f}' for t in summary['teachers_top1'])} % after {args['teacher_epochs']} epochs "
        f"on {args['teacher_images']} labelled images). Top-1 on the 10,000-image test set.",
        "",
        "| arm | top-1 % per seed | mean ± std | vs CE, paired mean diff | minutes (all seeds) |",
        "|---|---|---|---|---|",
    ]
    for arm, values in rows.items():
        diffs = [v - c for v, c in zip(values, ce, strict=True)]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        versus = "—" if arm == "CE" else f"{statistics.mean(diffs):+.2f} ({', '.join(f'{d:+.2f}' for d in diffs)})"
        lines.append(
            f"| {arm} | {', '.join(f'{v:.2f}' for v in values)} | {statistics.mean(values):.2f} ± {spread:.2f} | "
            f"{versus} | {summary['minutes'][arm]} |"
        )
    report.write_text("\n".join(lines) + "\n")
    _plot(rows, report.with_suffix(".png"))


def _plot(rows: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.2))
    for position, values in enumerate(rows.values()):
        axes.scatter([position] * len(values), values, color="tab:blue")
        axes.hlines(statistics.mean(values), position - 0.2, position + 0.2, color="black")
    axes.set_xticks(range(len(rows)), list(rows), fontsize=8)
    axes.set_ylabel("test top-1 (%)")
    axes.set_title("CIFAR-10, few labels: one dot per seed, line = mean", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    (args,) = HfArgumentParser(ProtocolArguments).parse_args_into_dataclasses()
    summary = run_protocol(args)
    write_report(summary, ROOT / args.report)
    print((ROOT / args.report).read_text())


if __name__ == "__main__":
    main()
