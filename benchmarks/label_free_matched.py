"""Label-free FEED with few labels, at equal optimizer steps and image passes (issue 23, item 2).

    python benchmarks/label_free_matched.py                                   # CPU scale, ~1.5 h on 2 quiet cores
    python benchmarks/label_free_matched.py --budgets 1 2                     # and every arm again at twice S
    python benchmarks/label_free_matched.py --seeds 0 --labelled 100 --unlabelled 200 --teacher_images 200 \\
        --label_free_epochs 1 --labelled_epochs 1 --teacher_epochs 1 --output_dir runs/lf_smoke --report runs/lf.md

The withdrawn round-2 protocol (results/cifar10_label_free.md) gave its label-free arm 2.6x the optimizer steps of
its controls. Here every arm that is compared makes the same number of optimizer steps, and because every arm uses
the same batch size and the image counts are multiples of it, the same number of training image passes: equal steps
and equal passes at once (each run's results.json `compute` records both; the report prints them and refuses to
write a comparison whose arms differ).

Rows of the CIFAR-10 training split, disjoint by construction (`--train_split 'train[a:b]'`, feed_hf.data.split_slices):
  teachers      train[0 : T]            with labels (two ResNet-14s): they never see the students' labelled rows;
  labelled      train[T : T+L]          the only labels any student sees;
  unlabelled    train[T+L : T+L+U]      images only (label_column none), outside both sets above;
  probe         train[T+L+U : +P]       the k-NN memory bank and linear probe rows of the backbone judgement.
Arms, for each seed (same student initialisation and seed in every arm):
  label-free -> fine-tune   pFEED with labels ignored on the unlabelled rows (E_lf epochs), then CE on the labelled
                            rows from that export (E_ft epochs): S = E_lf*U/B + E_ft*L/B steps in all;
  CE, S steps               CE on the labelled rows for exactly S steps (max_steps);
  pFEED on labels, S steps  CE + FEED from the same teachers on the labelled rows for S steps;
  CE, 2S steps              the convergence check: if CE gains little from twice the steps, S trains it to convergence.
Budgets (`--budgets m ...`): the whole comparison again with every arm at m*S steps (the label-free arm with m*E_lf
and m*E_ft epochs, CE and pFEED with m*S steps, the check at 2m*S), each budget in its own report section, so a
conclusion can be checked against longer training. CE runs are shared between budgets by their step count (CE at
2S is budget 1's convergence check and budget 2's CE arm: one run).
Top-1 on the 10,000-image test split; paired differences with a paired t test (n = seeds). Judged as a backbone
too (`feed-hf evaluate --protocol knn linear`, probes fitted on the probe rows, measured on the test split): the
label-free student before its fine-tuning against the CE student of S steps (paired) and against each teacher
(reported per seed, not tested). Resumable: a rerun reuses every finished run (protocol_runs.run_once). Writes
REPORT.md/.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from protocol_runs import METRICS, judge_backbone, run_once  # a sibling script: `python benchmarks/...` finds it
from transformers import HfArgumentParser

from feed_hf.evaluation.significance import format_p
from feed_hf.runs.statistics import mean_std, paired_comparison
from feed_hf_cli import run_command

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "recipes" / "configs" / "cifar10_label_free_few_labels.yaml")
LABEL_FREE, CE, PFEED, CE_LONG = "label-free -> fine-tune", "CE, S steps", "pFEED on labels, S steps", "CE, 2S steps"
BACKBONE_LABEL_FREE, BACKBONE_CE = "label-free student (no label seen)", "CE student, S steps"
COMPARED = ((LABEL_FREE, CE), (LABEL_FREE, PFEED), (PFEED, CE), (CE_LONG, CE))


@dataclass
class ProtocolArguments:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Student seeds, paired."})
    teacher_images: int = field(default=10000, metadata={"help": "T: rows train[0:T] train the teachers."})
    labelled: int = field(default=2500, metadata={"help": "L: rows train[T:T+L] are the labelled images."})
    unlabelled: int = field(default=20000, metadata={"help": "U: rows train[T+L:T+L+U], used without labels."})
    probe_images: int = field(default=5000, metadata={"help": "P: rows after U fit the k-NN/linear probes."})
    dataset: str = field(default="../shared/data/cifar10-jpeg", metadata={"help": "CIFAR-10 (image/label columns)."})
    test_split: str = field(default="test", metadata={"help": "Where the backbone probes are measured."})
    batch_size: int = field(default=50, metadata={"help": "B, every arm; L and U must be multiples of it."})
    label_free_epochs: int = field(default=3, metadata={"help": "E_lf: label-free epochs on the unlabelled rows."})
    labelled_epochs: int = field(default=15, metadata={"help": "E_ft: fine-tuning epochs on the labelled rows."})
    teacher_epochs: int = field(default=5, metadata={"help": "Teacher epochs."})
    budgets: list[int] = field(default_factory=lambda: [1], metadata={"help": "Multiples m: every arm at m*S steps."})
    output_dir: str = field(default="runs/cifar10_label_free_matched", metadata={"help": "Where runs go."})
    report: str = field(default="results/cifar10_label_free_matched.md", metadata={"help": "Report (+ .json)."})

    def __post_init__(self) -> None:
        if not self.budgets or min(self.budgets) < 1 or len(set(self.budgets)) != len(self.budgets):
            raise ValueError(f"budgets must be distinct multiples >= 1 of S, got {self.budgets}")
        for name in ("labelled", "unlabelled"):
            if getattr(self, name) % self.batch_size:
                raise ValueError(
                    f"{name}={getattr(self, name)} is not a multiple of batch_size={self.batch_size}: the last batch "
                    "of each epoch would be smaller and equal steps would not mean equal image passes; round it"
                )

    def rows(self) -> dict[str, str]:
        t, lab, u, p = self.teacher_images, self.labelled, self.unlabelled, self.probe_images
        return {
            "teachers": f"train[:{t}]",
            "labelled": f"train[{t}:{t + lab}]",
            "unlabelled": f"train[{t + lab}:{t + lab + u}]",
            "probe": f"train[{t + lab + u}:{t + lab + u + p}]",
        }

    def matched_steps(self) -> int:
        return (self.label_free_epochs * self.unlabelled + self.labelled_epochs * self.labelled) // self.batch_size


def _argv(args: ProtocolArguments, output_dir: Path, seed: int, rows: str, **options: object) -> list[str]:
    argv = [
        CONFIG,
        "--dataset",
        args.dataset,
        "--output_dir",
        str(output_dir),
        "--seed",
        str(seed),
        "--train_split",
        rows,
        "--per_device_train_batch_size",
        str(args.batch_size),
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--overwrite_output_dir",
        "true",
    ]
    for name, value in options.items():
        argv += [f"--{name}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    return argv


def _facts(results: dict) -> dict:
    """What the report compares: top-1 on the test split, optimizer steps and image passes, as the run recorded them."""
    compute = results["compute"]
    return {
        "top1": float(results["metrics"]["eval_top1"]),
        "steps": compute["optimizer_steps"],
        "passes": compute["image_passes"],
        "wall_s": results.get("wall_time_s"),  # as the run recorded it (a reused run keeps its own)
    }


def arm_folder(root: Path, arm: str, budget: int, seed: int) -> Path:
    """Budget 1 keeps the first invocation's names (its runs are reused); budget m > 1 adds `_x{m}`."""
    return root / (f"{arm}_s{seed}" if budget == 1 else f"{arm}_x{budget}_s{seed}")


def ce_folder(root: Path, multiple: int, seed: int) -> Path:
    """The CE run of `multiple`*S steps, whichever budget asks for it: S `ce`, 2S `ce_long`, kS `ce_x{k}`."""
    return root / ({1: f"ce_s{seed}", 2: f"ce_long_s{seed}"}.get(multiple) or f"ce_x{multiple}_s{seed}")


def _seed_arms(args: ProtocolArguments, root: Path, seed: int, teachers: list[str], budget: int = 1) -> dict:
    rows, steps = args.rows(), budget * args.matched_steps()

    def run(command: str, folder: Path, train_rows: str, **options: object) -> dict:
        return run_once(run_command, command, _argv(args, folder, seed, train_rows, **options), folder)

    stage_one = run(
        "parallel",
        arm_folder(root, "label_free", budget, seed),
        rows["unlabelled"],
        label_column="none",
        num_train_epochs=budget * args.label_free_epochs,
        max_eval_samples=1000,
        teachers=teachers,
    )
    fine_tuned = run(
        "baselines",
        arm_folder(root, "fine_tuned", budget, seed),
        rows["labelled"],
        baseline="ce",
        input_size=32,
        num_train_epochs=budget * args.labelled_epochs,
        student=f"local-dir:{arm_folder(root, 'label_free', budget, seed)}",
    )
    first, second = stage_one["compute"], fine_tuned["compute"]
    label_free = {
        **_facts(fine_tuned),
        "steps": first["optimizer_steps"] + second["optimizer_steps"],
        "passes": first["image_passes"] + second["image_passes"],
        "wall_s": (stage_one.get("wall_time_s") or 0) + (fine_tuned.get("wall_time_s") or 0),
    }
    ce = run("baselines", ce_folder(root, budget, seed), rows["labelled"], baseline="ce", max_steps=steps)
    pfeed_folder = arm_folder(root, "pfeed", budget, seed)
    pfeed = run("parallel", pfeed_folder, rows["labelled"], max_steps=steps, teachers=teachers)
    ce_long = run("baselines", ce_folder(root, 2 * budget, seed), rows["labelled"], baseline="ce", max_steps=2 * steps)
    return {LABEL_FREE: label_free, CE: _facts(ce), PFEED: _facts(pfeed), CE_LONG: _facts(ce_long)}


def judge(args: ProtocolArguments, model_dir: Path | str, seed: int) -> dict[str, float]:
    """k-NN and linear-probe top-1 of `model_dir` (protocol_runs.judge_backbone on this protocol's rows)."""
    return judge_backbone(run_command, args.dataset, args.rows()["probe"], args.test_split, str(model_dir), seed)


def _backbones(args: ProtocolArguments, root: Path, seed: int, budget: int = 1) -> dict[str, dict]:
    """The label-free student before fine-tuning (no label seen) and the CE student of S steps, as backbones."""
    return {
        BACKBONE_LABEL_FREE: judge(args, arm_folder(root, "label_free", budget, seed), seed),
        BACKBONE_CE: judge(args, ce_folder(root, budget, seed), seed),
    }


def run_protocol(args: ProtocolArguments) -> dict:
    started, root = time.perf_counter(), Path(args.output_dir)
    teacher_argv = _argv(
        args,
        root / "teachers",
        100,
        args.rows()["teachers"],
        num_train_epochs=args.teacher_epochs,
        student="resnet14_cifar",
        teacher_seeds=[101, 102],
    )
    teachers = run_once(run_command, "teachers", teacher_argv, root / "teachers")
    teacher_dirs = [str(root / "teachers" / f"teacher_{i}") for i in range(len(teachers))]
    budgets = {}
    for budget in args.budgets:
        budgets[budget] = {
            "matched_steps": budget * args.matched_steps(),
            "per_seed": {seed: _seed_arms(args, root, seed, teacher_dirs, budget) for seed in args.seeds},
            "backbones": {seed: _backbones(args, root, seed, budget) for seed in args.seeds},
        }
    return {
        "arguments": asdict(args),
        "rows": args.rows(),
        "teachers_top1": [round(float(t["metrics"]["eval_top1"]), 2) for t in teachers],
        "teacher_backbones": {Path(folder).name: judge(args, folder, 0) for folder in teacher_dirs},
        "budgets": budgets,
        "hardware": teachers[0].get("hardware", "not recorded"),
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }


def check_matched(per_seed: dict[int, dict[str, dict]]) -> None:
    """Refuse to compare arms whose steps or image passes differ (except the 2S convergence check, by design)."""
    for seed, arms in per_seed.items():
        for key in ("steps", "passes"):
            values = {arm: facts[key] for arm, facts in arms.items() if arm != CE_LONG}
            if len(set(values.values())) != 1:
                raise ValueError(f"seed {seed}: arms made different {key} {values}; not like with like")


def write_report(summary: dict, report: Path) -> None:
    """REPORT.md and .json: the shared facts, then one section per budget (arms, paired comparisons, backbones)."""
    budgets = {int(budget): facts for budget, facts in summary["budgets"].items()}
    lines = [
        "# Label-free FEED with few labels, at equal steps and image passes (CIFAR-10, CPU scale)",
        "",
        f"Command: `python benchmarks/label_free_matched.py` with {json.dumps(summary['arguments'])}.",
        f"Hardware: {summary['hardware']}; {summary['minutes']} min in the invocation that wrote this report (a "
        f"rerun reuses finished runs). Rows: {json.dumps(summary['rows'])}.",
        f"Teachers' top-1: {summary['teachers_top1']}.",
    ]
    recorded = {}
    for budget, facts in budgets.items():
        per_seed = {int(seed): arms for seed, arms in facts["per_seed"].items()}
        check_matched(per_seed)
        section, comparisons = budget_section(budget, per_seed)
        judged = {"backbones": facts.get("backbones"), "teacher_backbones": summary["teacher_backbones"]}
        lines += section + backbone_section(judged)
        recorded[budget] = {
            **facts,
            "comparisons": comparisons,
            "backbone_comparisons": backbone_comparisons(judged) if facts.get("backbones") else {},
        }
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".json").write_text(json.dumps({**summary, "budgets": recorded}, indent=2))
    report.write_text("\n".join(lines) + "\n")


def _minutes(per_seed: dict[int, dict[str, dict]]) -> str:
    seconds = [facts.get("wall_s") for arms in per_seed.values() for facts in arms.values()]
    return "not recorded" if None in seconds else f"{sum(seconds) / 60:.1f}"


def budget_section(budget: int, per_seed: dict[int, dict[str, dict]]) -> tuple[list[str], dict[str, dict]]:
    """One budget's arms (top-1 per seed) and paired comparisons, as report lines and as the JSON's values."""
    top1 = {arm: {seed: arms[arm]["top1"] for seed, arms in per_seed.items()} for arm in next(iter(per_seed.values()))}
    comparisons = {f"{a} - {b}": paired_comparison(top1[a], top1[b]) for a, b in COMPARED}
    first = next(iter(per_seed.values()))
    lines = [
        "",
        f"## Budget {budget}: S = {first[CE]['steps']} optimizer steps",
        "",
        f"Every compared arm: {first[CE]['steps']} optimizer steps, {first[CE]['passes']} image passes "
        f"(the convergence check: {first[CE_LONG]['steps']} steps). Training wall time of this budget's runs, as "
        f"each recorded it: {_minutes(per_seed)} min.",
        "",
        "| arm | top-1 % per seed | mean ± std |",
        "|---|---|---|",
    ]
    for arm, values in top1.items():
        spread = mean_std(list(values.values()))
        per = ", ".join(f"{values[s]:.2f}" for s in sorted(values))
        lines.append(f"| {arm} | {per} | {spread['mean']:.2f} ± {spread['std']:.2f} |")
    lines += ["", "| comparison | mean difference | per seed | paired t p (two-sided) | MDD |", "|---|---|---|---|---|"]
    for name, c in comparisons.items():
        p = format_p(c["p"])
        mdd = "—" if c["mdd"] is None else f"{c['mdd']:.2f}"
        diffs = ", ".join(f"{d:+.2f}" for d in c["differences"])
        lines.append(f"| {name} | {c['mean_difference']:+.2f} | {diffs} | {p} | {mdd} |")
    return lines, comparisons


def backbone_comparisons(summary: dict) -> dict[str, dict]:
    """Per metric: the label-free student minus the CE student as backbones (paired over seeds), and each minus each
    teacher per seed (reported, not tested: the teachers do not vary with the seed)."""
    backbones = {int(seed): arms for seed, arms in summary.get("backbones", {}).items()}
    result = {}
    for metric in METRICS:
        values = {
            arm: {seed: backbones[seed][arm][metric] for seed in backbones}
            for arm in (BACKBONE_LABEL_FREE, BACKBONE_CE)
        }
        result[metric] = {
            "values": values,
            "tested": paired_comparison(values[BACKBONE_LABEL_FREE], values[BACKBONE_CE]),
            "versus_teachers": {
                f"{arm} - {name}": [values[arm][seed] - teacher[metric] for seed in sorted(backbones)]
                for arm in values
                for name, teacher in summary["teacher_backbones"].items()
            },
        }
    return result


def backbone_section(summary: dict) -> list[str]:
    if not summary.get("backbones"):
        return []
    lines = ["", "### Judged as a backbone (probes fitted on the probe rows, top-1 % on the test split)", ""]
    teachers = ", ".join(
        f"{name}: k-NN {t['knn']:.2f}, linear {t['linear']:.2f}" for name, t in summary["teacher_backbones"].items()
    )
    lines += [f"Teachers: {teachers}.", "", "| backbone | metric | per seed | mean ± std |", "|---|---|---|---|"]
    compared = backbone_comparisons(summary)
    for metric, c in compared.items():
        for arm, values in c["values"].items():
            spread = mean_std(list(values.values()))
            per = ", ".join(f"{values[s]:.2f}" for s in sorted(values))
            lines.append(f"| {arm} | {metric} | {per} | {spread['mean']:.2f} ± {spread['std']:.2f} |")
    lines += [
        "",
        "| comparison | metric | mean difference | per seed | paired t p (two-sided) | MDD |",
        "|---|---|---|---|---|---|",
    ]
    for metric, c in compared.items():
        t = c["tested"]
        p = format_p(t["p"])
        mdd = "—" if t["mdd"] is None else f"{t['mdd']:.2f}"
        diffs = ", ".join(f"{d:+.2f}" for d in t["differences"])
        name = f"{BACKBONE_LABEL_FREE} - {BACKBONE_CE}"
        lines.append(f"| {name} | {metric} | {t['mean_difference']:+.2f} | {diffs} | {p} | {mdd} |")
    lines += ["", "Backbone minus teacher (reported, not tested):", ""]
    for metric, c in compared.items():
        for name, diffs in c["versus_teachers"].items():
            lines.append(f"- {metric}, {name}: {', '.join(f'{d:+.2f}' for d in diffs)}")
    return lines


def main() -> None:
    (args,) = HfArgumentParser(ProtocolArguments).parse_args_into_dataclasses()
    summary = run_protocol(args)
    report = Path(args.report) if Path(args.report).is_absolute() else ROOT / args.report
    write_report(summary, report)
    print(report.read_text())


if __name__ == "__main__":
    main()
