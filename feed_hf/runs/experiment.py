"""A seeded grid of FEED runs: teachers, a β sweep, paired students (CE, logit KD, FEED, pFEED), sFEED.

For each student seed, CE, logit KD, FEED-single and pFEED with all teachers start from the same student
initialisation and see the same batches (the Trainer's sampler and the augmentation follow `seed`), so their
differences are paired (feed_hf/runs/statistics.py). Every run is a `train_model` call exported under
`output_dir`; a run whose results.json exists is reused, so an interrupted experiment resumes where it stopped.
The β sweep is scored on a validation split carved from train images the runs never train on; the seeded runs
report the test split.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import yaml

from ..data.loading import DataArguments, load_image_splits
from ..training.config.feed_config import FeedConfig
from ..training.config.readouts import betas
from ..training.sequential import run_sequential
from ..training.train_model import read_results, train_model
from .evaluation import ensemble_top1
from .jobs import baseline_config
from .preregistered_tests import analysis_plan, preregistered_tests
from .statistics import mean_std, paired_comparisons

__all__ = [
    "ExperimentArguments",
    "check_seeds",
    "grid_splits",
    "method_overrides",
    "paired_method_config",
    "parse_investigation",
    "run_experiment",
]


@dataclass
class ExperimentArguments:
    teacher: str = field(default="resnet8_cifar", metadata={"help": "Architecture of the same-architecture teachers."})
    teacher_seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "One teacher per seed."})
    large_teacher: str | None = field(default="resnet20_cifar", metadata={"help": "A larger extra teacher."})
    large_teacher_seed: int = field(default=4, metadata={"help": "Seed of the larger teacher."})
    student_seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata={
            "help": "Paired seeds of CE, logit KD, FEED-single and pFEED with all teachers (same init and data)."
        },
    )
    secondary_seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata={"help": "Seeds of pFEED-2 and larger-teacher FEED (empty: not run)."},
    )
    allow_seed_overlap: bool = field(
        default=False,
        metadata={
            "help": "Let a student seed equal a teacher seed (round 1 did: that student then shares the teacher's "
            "initialisation and data order). False: the grid refuses such seeds before training."
        },
    )
    beta_sweep: list[float] = field(
        default_factory=lambda: [50.0, 200.0, 500.0], metadata={"help": "β values tried for pFEED (3 teachers)."}
    )
    beta_sweep_seeds: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Seeds of the β sweep's pFEED runs, scored on the validation split; β is the one with the best "
            "mean over them. Must differ from the student and teacher seeds, so the paired test seeds never choose "
            "β. Empty: the first student seed (rounds 1 and 2)."
        },
    )
    beta_investigation: list[float] = field(
        default_factory=list,
        metadata={
            "help": "More β values run on the validation split after the grid, reported but NOT used to pick β "
            "(an investigation, e.g. below the sweep's best)."
        },
    )
    investigations: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Variations of pFEED (all teachers, the chosen β, the sweep's seed) run on the validation split "
            "after the grid, reported but NOT used to choose anything: 'NAME key=value [key=value ...]' with "
            "FeedConfig fields, e.g. 'bn_connector connector_norm=batchnorm2d'."
        },
    )
    validation_samples: int = field(
        default=2000, metadata={"help": "Train images held out (never trained on) to pick β."}
    )
    sfeed_generations: int = field(default=3, metadata={"help": "Generations of the sequential-FEED run (0: none)."})
    kd_baseline_weight: float = field(
        default=1.0, metadata={"help": "KD weight of the logit-KD baseline (FeedConfig.kd_weight stays 0 elsewhere)."}
    )
    primary_comparison: str = field(
        default="pfeed_3 - ce",
        metadata={
            "help": "The pre-registered primary test, 'method - reference' (one-sided: method > reference, paired "
            "t); every other paired comparison is secondary and Holm-corrected. Fix it before the grid runs."
        },
    )
    report_path: str = field(default="results/cifar10_cpu.md", metadata={"help": "Markdown report to write."})


def run_experiment(data_args: DataArguments, base: FeedConfig, experiment: ExperimentArguments) -> dict[str, Any]:
    """Run (or reuse) every run of the grid, then write the report and its plots."""
    started = time.perf_counter()
    root = Path(base.output_dir)
    check_seeds(experiment)  # fail fast, before any training
    analysis_plan(experiment.primary_comparison)  # an unknown primary comparison fails before any training too
    investigations = dict(parse_investigation(spec, base) for spec in experiment.investigations)
    train_split, validation, test = grid_splits(data_args, base.seed, experiment.validation_samples)
    grid = _Grid(data_args, base, experiment, root, datasets.DatasetDict(train=train_split, eval=test))
    teacher_dirs, large_dir = _train_grid_teachers(grid, root, experiment)
    sweep_splits = datasets.DatasetDict(train=train_split, eval=validation)

    def validation_top1(beta: float, output_dir: Path | None = None, seed: int | None = None, **overrides) -> float:
        run_dir = grid.run(
            output_dir or root / "beta_sweep" / f"beta_{beta:g}",
            "pfeed",
            splits=sweep_splits,
            teachers=teacher_dirs,
            feed_beta=[beta],
            seed=experiment.student_seeds[0] if seed is None else seed,
            **overrides,
        )
        return read_results(run_dir)["metrics"]["eval_top1"]

    sweep_top1 = _beta_sweep(validation_top1, experiment, root)
    best_beta = max(sweep_top1, key=sweep_top1.get)
    runs = grid.seeded_runs(method_overrides(teacher_dirs, large_dir, best_beta))
    generations = []
    if experiment.sfeed_generations:
        sfeed_args = dataclasses.replace(
            base, output_dir=str(root / "sfeed"), feed_beta=[best_beta], seed=experiment.student_seeds[0]
        )
        generations = run_sequential(data_args, sfeed_args, experiment.sfeed_generations, splits=grid.test_splits)
    ensembles = {f"ensemble of {n} teachers": ensemble_top1(teacher_dirs[:n], test) for n in (2, len(teacher_dirs))}
    summary = _summarise(root, teacher_dirs, large_dir, ensembles, sweep_top1, best_beta, runs, generations)
    summary["beta_investigation_validation_top1"] = {
        beta: validation_top1(beta) for beta in experiment.beta_investigation
    }
    summary["investigations"] = {
        name: {
            "overrides": overrides,
            "validation_top1": validation_top1(best_beta, root / "investigations" / name, **overrides),
        }
        for name, overrides in investigations.items()
    }
    summary["paired"] = paired_comparisons(summary["methods"])
    summary["preregistered"] = preregistered_tests(summary["paired"], analysis_plan(experiment.primary_comparison))
    summary["beta_sweep_seeds"] = experiment.beta_sweep_seeds
    summary["wall_time_s"] = round(time.perf_counter() - started, 1)
    (root / "experiment_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    from .experiment_report import write_report

    write_report(summary, data_args, base, experiment, Path(experiment.report_path))
    return summary


def _beta_sweep(validation_top1, experiment: ExperimentArguments, root: Path) -> dict[float, float]:
    """Validation top-1 of each swept β: the mean over the sweep's own seeds (never a test seed) when given."""

    def mean_top1(beta: float) -> float:
        if not experiment.beta_sweep_seeds:
            return validation_top1(beta)
        return statistics.mean(
            validation_top1(beta, root / "beta_sweep" / f"seed_{seed}" / f"beta_{beta:g}", seed)
            for seed in experiment.beta_sweep_seeds
        )

    return {beta: mean_top1(beta) for beta in experiment.beta_sweep}


def _train_grid_teachers(grid: _Grid, root: Path, experiment: ExperimentArguments) -> tuple[list[str], str | None]:
    """The same-architecture teachers (one per teacher seed) and the optional larger one."""
    teacher_dirs = [
        grid.run(root / "teachers" / f"teacher_{i}", "teacher", student=experiment.teacher, seed=seed, teachers=[])
        for i, seed in enumerate(experiment.teacher_seeds)
    ]
    large_dir = None
    if experiment.large_teacher:
        large_dir = grid.run(
            root / "teachers" / "large",
            "teacher",
            student=experiment.large_teacher,
            seed=experiment.large_teacher_seed,
            teachers=[],
        )
    return teacher_dirs, large_dir


@dataclass
class _Grid:
    """Runs of one experiment: same data and base config, each reused when already finished."""

    data_args: DataArguments
    base: FeedConfig
    experiment: ExperimentArguments
    root: Path
    test_splits: datasets.DatasetDict

    def run(self, output_dir: Path, task: str, splits: datasets.DatasetDict | None = None, **overrides) -> str:
        config = dataclasses.replace(self.base, **overrides)
        return _run_config(self.data_args, config, output_dir, splits or self.test_splits, task)

    def seeded_runs(self, methods: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
        """Seed by seed, every method of that seed: an interrupted grid leaves whole pairs, not one method's seeds."""
        wanted = {name: self._seeds_of(name) for name in methods}
        runs: dict[str, list[str]] = {name: [] for name in methods if wanted[name]}
        for seed in sorted(set(self.experiment.student_seeds) | set(self.experiment.secondary_seeds)):
            for name, overrides in methods.items():
                if seed in wanted[name]:
                    config = paired_method_config(self.base, overrides, self.experiment)
                    output_dir = self.root / name / f"seed_{seed}"
                    runs[name].append(_run_config(self.data_args, config, output_dir, self.test_splits, name, seed))
        return runs

    def _seeds_of(self, method: str) -> list[int]:
        paired = method in PAIRED_METHODS
        return self.experiment.student_seeds if paired else self.experiment.secondary_seeds


# The paired comparison: every student seed runs each of these from the same initialisation and data order.
PAIRED_METHODS = ("ce", "kd_ensemble", "feed_single", "pfeed_3")


def check_seeds(experiment: ExperimentArguments) -> None:
    """Student seeds unique, and disjoint from teacher seeds unless `allow_seed_overlap` (a ValueError otherwise)."""
    students = [*experiment.student_seeds, *experiment.secondary_seeds]
    if not experiment.student_seeds or len(set(experiment.student_seeds)) < len(experiment.student_seeds):
        raise ValueError(
            f"student_seeds={experiment.student_seeds} (experiment arguments) must be non-empty and distinct; "
            "give each paired seed once, e.g. --student_seeds 0 1 2 3 4."
        )
    teachers = [*experiment.teacher_seeds, *([experiment.large_teacher_seed] if experiment.large_teacher else [])]
    choosing = sorted(set(experiment.beta_sweep_seeds) & set(students + teachers))
    if choosing:
        raise ValueError(
            f"beta_sweep_seeds {choosing} are also student or teacher seeds: β would be chosen on the seeds it is "
            "tested on. Give the sweep its own seeds (e.g. --beta_sweep_seeds 20 21)."
        )
    shared = sorted(set(students) & set(teachers))
    if shared and not experiment.allow_seed_overlap:
        raise ValueError(
            f"seeds {shared} are both student seeds and teacher seeds (teacher_seeds={experiment.teacher_seeds}, "
            "large_teacher_seed): such a student shares a teacher's initialisation and data order. Give the "
            "teachers other seeds (e.g. 101 102 103), or set allow_seed_overlap: true to repeat round 1."
        )


def grid_splits(data_args: DataArguments, seed: int, validation_samples: int):
    """Train subset, a validation split from the rest of train (never trained on), and the eval split."""
    full = load_image_splits(dataclasses.replace(data_args, max_train_samples=None), seed=seed)
    shuffled = full["train"].shuffle(seed=seed)
    train_size = data_args.max_train_samples or len(shuffled) - validation_samples
    if train_size + validation_samples > len(shuffled):
        raise ValueError(
            f"max_train_samples={train_size} + validation_samples={validation_samples} exceed the "
            f"{len(shuffled)} train images"
        )
    train = shuffled.select(range(train_size)).flatten_indices()
    validation = shuffled.select(range(train_size, train_size + validation_samples)).flatten_indices()
    return train, validation, full["eval"]


def method_overrides(teacher_dirs: list[str], large_dir: str | None, beta: float) -> dict[str, dict[str, Any]]:
    """Each student method of the grid as FeedConfig overrides ('kind': a baseline of `jobs.baseline_config`)."""
    methods: dict[str, dict[str, Any]] = {
        "ce": {"kind": "ce", "teachers": teacher_dirs},
        "kd_ensemble": {"kind": "kd", "teachers": teacher_dirs},
        "feed_single": {"kind": "single_feed", "teachers": teacher_dirs, "feed_beta": [beta]},
        "pfeed_2": {"teachers": teacher_dirs[:2], "feed_beta": [beta]},
        "pfeed_3": {"teachers": teacher_dirs, "feed_beta": [beta]},
    }
    if large_dir:
        methods["feed_large"] = {"kind": "single_feed", "teachers": [large_dir], "feed_beta": [beta]}
    return methods


def paired_method_config(base: FeedConfig, overrides: dict[str, Any], experiment: ExperimentArguments) -> FeedConfig:
    """The FeedConfig of one method: `base` (seed, data order, optimiser) with only the method's own changes."""
    overrides = dict(overrides)
    kind = overrides.pop("kind", None)
    config = dataclasses.replace(base, **overrides)
    if kind == "kd":
        config = dataclasses.replace(config, kd_weight=experiment.kd_baseline_weight)
    return baseline_config(config, kind) if kind else config


def _run_config(data_args, config: FeedConfig, output_dir: Path, splits, task: str, seed: int | None = None) -> str:
    config = dataclasses.replace(config, output_dir=str(output_dir), seed=config.seed if seed is None else seed)
    finished = read_results(output_dir)
    if finished is None:  # the grid's own folder: an unfinished run in it is redone, not kept
        train_model(data_args, dataclasses.replace(config, overwrite_output_dir=True), splits, task=task)
    else:
        _check_reusable(finished, config, output_dir)
    return str(output_dir)


def _check_reusable(finished: dict[str, Any], config: FeedConfig, output_dir: Path) -> None:
    """A finished run is reused only if it was made with what the grid asks for now."""
    recorded = finished["feed"]
    wanted = {"seed": config.seed, "teachers": len(config.teachers), "kd_weight": config.kd_weight}
    made = {"seed": finished["seed"], "teachers": len(recorded["teachers"]), "kd_weight": recorded["kd_weight"]}
    if config.teachers and any(config.feed_beta):
        wanted["feed_beta"] = betas(config, len(config.teachers))
        made["feed_beta"] = recorded["feed_beta"]
    for key in _METHOD_SETTINGS:  # e.g. an investigation's connector or feature stage
        asked = getattr(config, key)
        recorded_value = finished["config"].get(key, asked)
        if asked != recorded_value:
            wanted[key], made[key] = asked, recorded_value
    if wanted != made:
        raise ValueError(
            f"{output_dir} holds a finished run made with {made}, but the grid now asks for {wanted} (did the β "
            "sweep pick another β, or an investigation change?). Move that folder away, or give the experiment "
            "another output_dir."
        )


# FeedConfig fields that change what a run trains, beyond seed, teachers, β and KD weight.
_METHOD_SETTINGS = (
    "student",
    "max_grad_norm",
    "weight_decay",
    "weight_decay_on_all_parameters",
    "num_train_epochs",
    "feed_p",
    "feed_reduction",
    "student_feature_index",
    "teacher_feature_indices",
    "connector_num_layers",
    "connector_mid_channels",
    "connector_norm",
    "connector_activation",
)


def parse_investigation(spec: str, base: FeedConfig) -> tuple[str, dict[str, Any]]:
    """'NAME key=value ...' -> (NAME, {key: value}); values are YAML ('[-2]' is a list), checked by FeedConfig."""
    name, *assignments = spec.split()
    known = {f.name for f in dataclasses.fields(FeedConfig)}
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or key not in known:
            raise ValueError(
                f"investigation {spec!r}: {assignment!r} is not 'key=value' with a FeedConfig field "
                "(e.g. 'bn_connector connector_norm=batchnorm2d'); fix the entry in `investigations`."
            )
        overrides[key] = yaml.safe_load(value)
    if not overrides or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(
            f"investigation {spec!r} needs a name (letters, digits, _ or -) and at least one key=value, "
            "e.g. 'stage_2 student_feature_index=-2 teacher_feature_indices=[-2]'."
        )
    dataclasses.replace(base, **overrides)  # FeedConfig's own checks, before hours of training
    return name, overrides


def _summarise(root, teacher_dirs, large_dir, ensembles, sweep_top1, best_beta, runs, generations) -> dict[str, Any]:
    def top1(path) -> float:
        return read_results(path)["metrics"]["eval_top1"]

    def minutes(paths) -> float:
        return round(sum(read_results(p)["wall_time_s"] for p in paths) / 60, 1)

    return {
        "root": str(root),
        "teachers": {Path(p).name: top1(p) for p in teacher_dirs + ([large_dir] if large_dir else [])},
        "ensembles": ensembles,
        "beta_sweep_validation_top1": sweep_top1,
        "best_beta": best_beta,
        "methods": {
            name: {
                **mean_std([top1(p) for p in paths]),
                "seeds": [read_results(p)["seed"] for p in paths],
                "optimizer_steps": [read_results(p).get("compute", {}).get("optimizer_steps") for p in paths],
                "image_passes": [read_results(p).get("compute", {}).get("image_passes") for p in paths],
                "runs": paths,
                "minutes": minutes(paths),
            }
            for name, paths in runs.items()
        },
        "sfeed": generations,
    }
