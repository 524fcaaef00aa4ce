"""Label-free agglomeration of two teacher families into one ResNet, judged as a backbone (issue 21, item 7).

    python benchmarks/foundation_agglomeration.py                             # full size (cost below)
    python benchmarks/foundation_agglomeration.py --seeds 0 1 --teacher_images 100 --unlabelled 100 \\
        --probe_images 100 --test_split 'test[:100]' --student_epochs 1 --teacher_epochs 1 \\
        --output_dir /tmp/fa_smoke --report /tmp/fa_smoke/REPORT.md                # smoke: does it run end to end

Cost of the full-size default (3 seeds, T=10,000, U=20,000, P=5,000, E=5, 15 teacher epochs), measured on this
2-core machine at 1 thread per run (results/foundation_agglomeration.md states each run's recorded wall time):
teachers 15 min (CNN) and 28 min (ViT at 64 px); per student arm 4 min (CE), 5 (CNN alone), 12 (ViT alone),
12-15 (both teachers); each backbone evaluation under a minute. About 4 h of single-core time in all; two
`--seeds` invocations side by side share the teachers and halve the wall time (every finished run is reused).

Rows of the CIFAR-10 training split, disjoint by construction (`datasets` slices, feed_hf.data.split_slices):
  teachers      train[0 : T]            with labels: both teachers, CE;
  students      train[T : T+U]          label-free arms see the images only (label_column none); the CE arm the
                                        same images with their labels;
  probe         train[T+U : T+U+P]      the k-NN memory bank and the linear probe's training rows;
  measured on   --test_split            (default the 10,000-image test split).
Teachers, trained with labels through `feed-hf teachers` (one per family, fixed seeds, shared by every student seed):
  a CIFAR ResNet (`cnn_teacher`, default resnet14_cifar, 32 px) and a ViT (`vit_teacher`, default timm's
  vit_tiny_patch16_224 trained from scratch at `vit_input_size` 64 px: a 4x4 patch grid). A ViT with a smaller
  patch cannot be trained through the commands: a student spec takes no `?patch_size=` keyword arguments (only a
  teacher spec does), and `--input_size` resizes the image, not the patch. In the student runs the ViT sees the
  student's images resized to its own 64 px (the teachers' own resolutions, as feed-hf does for any teacher).
Student arms, for each seed (same student architecture, seed and initialisation; `max_steps` S = E*U/B in every arm,
batch B dividing U, so equal optimizer steps AND equal image passes, both read back from each run's results.json
`compute`, and the report refuses to compare arms where they differ):
  both, no balancing        label-free FEED from both teachers, `feed_balance none` (FEED as published);
  both, standardize / PHI-S the same, each teacher's map balanced (`feed_balance standardize` / `phi_s`);
  CNN alone / ViT alone     label-free FEED from that one teacher;
  CE (labels)               the supervised control: CE on the same rows WITH labels, same steps and passes.
Every run uses recipes/configs/cifar10_label_free_few_labels.yaml (its optimiser: SGD, cosine, lr 0.05) with the
arguments benchmarks/label_free_matched.py builds. Every student export and each teacher is judged as a backbone
with `feed-hf evaluate --protocol knn linear` (k-NN top-1 and a linear probe on frozen pooled features, fitted on
the probe rows, measured on the test split). Paired differences over seeds (paired t test, two-sided; MDD) for:
agglomerated vs each teacher distilled alone, balanced vs unbalanced, agglomerated vs CE; student minus each teacher
is reported per seed, not tested (the teachers do not vary with the seed). Writes the report (.md, and .json with
every run's facts) whichever way it comes out.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from label_free_matched import _argv as train_argv  # a sibling script: `python benchmarks/...` finds it
from label_free_matched import check_matched  # refuses arms (of one seed) of unequal steps or image passes
from protocol_runs import METRICS, run_once
from protocol_runs import judge_backbone as protocol_judge
from transformers import HfArgumentParser

from feed_hf.runs.statistics import mean_std, paired_comparison
from feed_hf_cli import run_command

ROOT = Path(__file__).resolve().parent.parent
BOTH, CNN_ALONE, VIT_ALONE, CE = "both, no balancing", "CNN teacher alone", "ViT teacher alone", "CE (labels)"
BALANCED = {"standardize": "both, standardize", "phi_s": "both, PHI-S"}


@dataclass
class ProtocolArguments:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Student seeds, paired."})
    teacher_images: int = field(default=10000, metadata={"help": "T: rows train[0:T] train both teachers."})
    unlabelled: int = field(default=20000, metadata={"help": "U: rows train[T:T+U], the students' images."})
    probe_images: int = field(default=5000, metadata={"help": "P: rows train[T+U:T+U+P] fit the k-NN/linear probes."})
    test_split: str = field(default="test", metadata={"help": "Where the probes are measured."})
    batch_size: int = field(default=50, metadata={"help": "B, every student arm; U must be a multiple of it."})
    student_epochs: int = field(default=5, metadata={"help": "E: every student arm makes E*U/B optimizer steps."})
    teacher_epochs: int = field(default=15, metadata={"help": "Epochs of each teacher on its T rows."})
    student: str = field(default="resnet8_cifar", metadata={"help": "The student (a ResNet at 32 px)."})
    cnn_teacher: str = field(default="resnet14_cifar", metadata={"help": "Teacher family 1 (32 px)."})
    vit_teacher: str = field(default="vit_tiny_patch16_224", metadata={"help": "Teacher family 2, a timm ViT."})
    vit_input_size: int = field(default=64, metadata={"help": "The ViT teacher's input size (patch 16: 64 -> 4x4)."})
    balances: list[str] = field(
        default_factory=lambda: ["standardize", "phi_s"], metadata={"help": "Balanced arms (feed_balance values)."}
    )
    exploratory_beta: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Per-teacher feed_beta (CNN, ViT) of one more arm, both teachers weighted; chosen after the main "
            "result, so its comparisons are reported as exploratory. Empty: no such arm."
        },
    )
    dataset: str = field(default="../shared/data/cifar10-jpeg", metadata={"help": "CIFAR-10 (image/label columns)."})
    output_dir: str = field(default="runs/foundation_agglomeration", metadata={"help": "Where runs go."})
    report: str = field(default="results/foundation_agglomeration.md", metadata={"help": "Report (+ .json)."})

    def __post_init__(self) -> None:
        if self.unlabelled % self.batch_size:
            raise ValueError(
                f"unlabelled={self.unlabelled} is not a multiple of batch_size={self.batch_size}: the last batch of "
                "each epoch would be smaller and equal steps would not mean equal image passes; round it"
            )
        if self.exploratory_beta and len(self.exploratory_beta) != 2:
            raise ValueError(f"exploratory_beta {self.exploratory_beta}: give two values, the CNN's and the ViT's")
        unknown = [name for name in self.balances if name not in BALANCED]
        if unknown:
            raise ValueError(f"balances {unknown}: expected feed_balance values among {sorted(BALANCED)}")

    def rows(self) -> dict[str, str]:
        t, u, p = self.teacher_images, self.unlabelled, self.probe_images
        return {"teachers": f"train[:{t}]", "students": f"train[{t}:{t + u}]", "probe": f"train[{t + u}:{t + u + p}]"}

    def matched_steps(self) -> int:
        return self.student_epochs * self.unlabelled // self.batch_size

    def arms(self) -> list[str]:
        weighted = [self.weighted_arm()] if self.exploratory_beta else []  # last: earlier arms keep their folders
        return [BOTH, *(BALANCED[name] for name in self.balances), CNN_ALONE, VIT_ALONE, CE, *weighted]

    def weighted_arm(self) -> str:
        cnn, vit = self.exploratory_beta
        return f"both, beta {cnn:g}/{vit:g} (exploratory)"

    def comparisons(self) -> list[tuple[str, str]]:
        """(method, reference) pairs tested, fixed before any run: no arm is picked after seeing results."""
        balanced = [BALANCED[name] for name in self.balances]
        return [
            (BOTH, CNN_ALONE),
            (BOTH, VIT_ALONE),
            *((arm, BOTH) for arm in balanced),
            (BOTH, CE),
            *((arm, CE) for arm in balanced),
            *([(self.weighted_arm(), BOTH), (self.weighted_arm(), CNN_ALONE)] if self.exploratory_beta else []),
        ]


def _train_argv(args: ProtocolArguments, output_dir: Path, seed: int, rows: str, **options: object) -> list[str]:
    """label_free_matched's arm arguments (same recipe, batch, no mid-run eval or checkpoints), on `args.dataset`."""
    return train_argv(args, output_dir, seed, rows, **options)


def train_teachers(args: ProtocolArguments, root: Path) -> dict[str, dict]:
    """One teacher per family, CE on the teacher rows; {family: {"dir", "top1" (own classifier on the test split)}}."""
    teachers = {}
    for family, model, size, seed in (
        ("CNN", args.cnn_teacher, 32, 101),
        ("ViT", args.vit_teacher, args.vit_input_size, 102),
    ):
        folder = root / f"teacher_{family.lower()}"
        (result,) = run_once(
            run_command,
            "teachers",
            _train_argv(
                args,
                folder,
                seed,
                args.rows()["teachers"],
                eval_split=args.test_split,
                model=model,
                student=model,  # the recipe's student key would otherwise contradict --model
                input_size=size,
                num_train_epochs=args.teacher_epochs,
                teacher_seeds=[seed],
            ),
            folder,
        )
        teachers[family] = {
            "dir": str(folder / "teacher_0"),
            "top1": float(result["metrics"]["eval_top1"]),
            "seconds": result.get("wall_time_s"),  # as the run recorded it (a reused run keeps its own)
        }
    return teachers


def _student_run(args: ProtocolArguments, folder: Path, seed: int, arm: str, teachers: dict[str, dict]) -> dict:
    """One student arm through the CLI's own command; its results.json's compute, and its wall time."""
    common = {"max_steps": args.matched_steps(), "do_eval": "false", "student": args.student, "input_size": 32}
    rows = args.rows()["students"]
    if arm == CE:
        argv = _train_argv(args, folder, seed, rows, baseline="ce", **common)
        result = run_once(run_command, "baselines", argv, folder)
    else:
        chosen = {CNN_ALONE: ["CNN"], VIT_ALONE: ["ViT"]}.get(arm, ["CNN", "ViT"])
        balance = next((name for name, label in BALANCED.items() if label == arm), "none")
        weights = (
            {"feed_beta": list(args.exploratory_beta)} if args.exploratory_beta and arm == args.weighted_arm() else {}
        )
        result = run_once(
            run_command,
            "parallel",
            _train_argv(
                args,
                folder,
                seed,
                rows,
                label_column="none",
                teachers=[teachers[family]["dir"] for family in chosen],
                feed_balance=balance,
                **weights,
                **common,
            ),
            folder,
        )
    compute = result["compute"]
    seconds = result.get("wall_time_s")  # as the run recorded it (a reused run keeps its own)
    return {"steps": compute["optimizer_steps"], "passes": compute["image_passes"], "seconds": seconds}


def judge_backbone(args: ProtocolArguments, model_dir: str, seed: int) -> dict[str, float]:
    """k-NN and linear-probe top-1 of `model_dir` (protocol_runs.judge_backbone on this study's rows)."""
    return protocol_judge(run_command, args.dataset, args.rows()["probe"], args.test_split, model_dir, seed)


def run_protocol(args: ProtocolArguments) -> dict:
    started, root = time.perf_counter(), Path(args.output_dir)
    teachers = train_teachers(args, root)
    for teacher in teachers.values():
        teacher.update(judge_backbone(args, teacher["dir"], 0))
    per_seed: dict[int, dict[str, dict]] = {}
    for seed in args.seeds:
        per_seed[seed] = {}
        for index, arm in enumerate(args.arms()):
            folder = root / f"s{seed}_arm{index}"
            facts = _student_run(args, folder, seed, arm, teachers)
            per_seed[seed][arm] = {**facts, **judge_backbone(args, str(folder), seed)}
    return {
        "arguments": asdict(args),
        "rows": args.rows(),
        "matched_steps": args.matched_steps(),
        "teachers": teachers,
        "per_seed": per_seed,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }


def comparisons(summary: dict) -> dict[str, dict]:
    """Paired tests per metric, and student minus each teacher per seed (reported, not tested)."""
    per_seed = {int(seed): arms for seed, arms in summary["per_seed"].items()}
    check_matched(per_seed)
    arms = list(next(iter(per_seed.values())))
    pairs = ProtocolArguments.comparisons(ProtocolArguments(**summary["arguments"]))
    result: dict[str, dict] = {}
    for metric in METRICS:
        values = {arm: {seed: per_seed[seed][arm][metric] for seed in per_seed} for arm in arms}
        tested = {f"{a} - {b}": paired_comparison(values[a], values[b]) for a, b in pairs}
        versus_teachers = {
            f"{arm} - {family} teacher": [values[arm][s] - teacher[metric] for s in sorted(per_seed)]
            for arm in arms
            for family, teacher in summary["teachers"].items()
        }
        result[metric] = {"values": values, "tested": tested, "versus_teachers": versus_teachers}
    return result


def write_report(summary: dict, report: Path) -> None:
    compared = comparisons(summary)  # refuses arms of unequal compute before anything is written
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".json").write_text(json.dumps({**summary, "comparisons": compared}, indent=2))
    first = next(iter(summary["per_seed"].values()))
    facts = next(iter(first.values()))
    teachers = ", ".join(
        f"{family} `{Path(t['dir']).parent.name}`: own top-1 {t['top1']:.2f}, k-NN {t['knn']:.2f}, linear "
        f"{t['linear']:.2f}"
        for family, t in summary["teachers"].items()
    )
    lines = [
        "# Label-free agglomeration of a CNN and a ViT teacher into a ResNet, judged as a backbone (CIFAR-10)",
        "",
        f"Command: `python benchmarks/foundation_agglomeration.py` with {json.dumps(summary['arguments'])}.",
        f"Rows: {json.dumps(summary['rows'])}.",
        _wall_time_line(summary),
        f"Every student arm: {facts['steps']} optimizer steps, {facts['passes']} image passes. Teachers: {teachers}.",
        "Tests, named before any run (the script's docstring): paired t over seeds, two-sided, of the two-teacher arm "
        "vs each teacher distilled alone, each balanced arm vs the unbalanced one, and each two-teacher arm vs CE; "
        "an arm marked exploratory was added after the main result and its tests are exploratory.",
    ]
    for metric in METRICS:
        lines += _metric_section(metric, compared[metric])
    report.write_text("\n".join(lines) + "\n")


def _wall_time_line(summary: dict) -> str:
    """Wall time as each run recorded it, per arm (median over seeds) and in all: what the study cost to run."""
    arms = {arm for facts in summary["per_seed"].values() for arm in facts}
    minutes = {
        arm: [facts[arm]["seconds"] / 60 for facts in summary["per_seed"].values() if facts[arm].get("seconds")]
        for arm in sorted(arms)
    }
    teachers = [t["seconds"] / 60 for t in summary["teachers"].values() if t.get("seconds")]
    total = sum(teachers) + sum(sum(values) for values in minutes.values())
    per_arm = ", ".join(f"{arm} {statistics.median(values):.1f}" for arm, values in minutes.items() if values)
    return (
        f"Wall time as each run recorded it (training only; 1 thread per run, runs sharing 2 cores, a run paused "
        f"for other work counts its pause): teachers {' + '.join(f'{m:.1f}' for m in teachers)} min; student arms, "
        f"median over seeds in min: {per_arm}; {total / 60:.1f} h in all. The invocation that wrote this report: "
        f"{summary['minutes']} min (it reuses finished runs)."
    )


def _metric_section(metric: str, compared: dict) -> list[str]:
    lines = ["", f"## {metric} top-1 % on the test split", "", "| arm | per seed | mean ± std |", "|---|---|---|"]
    for arm, values in compared["values"].items():
        spread = mean_std(list(values.values()))
        per = ", ".join(f"{values[s]:.2f}" for s in sorted(values))
        lines.append(f"| {arm} | {per} | {spread['mean']:.2f} ± {spread['std']:.2f} |")
    lines += ["", "| comparison | mean difference | per seed | paired t p (two-sided) | MDD |", "|---|---|---|---|---|"]
    for name, c in compared["tested"].items():
        p = "—" if c["p"] is None else f"{c['p']:.3f}"
        mdd = "—" if c["mdd"] is None else f"{c['mdd']:.2f}"
        diffs = ", ".join(f"{d:+.2f}" for d in c["differences"])
        lines.append(f"| {name} | {c['mean_difference']:+.2f} | {diffs} | {p} | {mdd} |")
    lines += ["", "Student minus teacher (reported, not tested: one teacher per family):", ""]
    for name, diffs in compared["versus_teachers"].items():
        lines.append(f"- {name}: {', '.join(f'{d:+.2f}' for d in diffs)}")
    return lines


def main() -> None:
    (args,) = HfArgumentParser(ProtocolArguments).parse_args_into_dataclasses()
    summary = run_protocol(args)
    report = Path(args.report) if Path(args.report).is_absolute() else ROOT / args.report
    write_report(summary, report)
    print(report.read_text())


if __name__ == "__main__":
    main()
