"""A run's record (results.json), built from the Trainer's own state wherever training happened.

`FeedTrainer.write_record` calls `build_run_record` for the Python API, the CLI, the recipes and every sFEED
generation alike: the metrics are the last evaluation in `state.log_history`, the hyperparameters are
transformers' `TrainingSummary` extraction, the data facts are what the caller attached (`trainer.data_record`)
or what the `datasets.Dataset`s say about themselves. It also names where the run ran (`library_versions`,
`hardware_description`, `code_version`) and reads a local teacher's measured top-1 from the results.json beside
it (`recorded_teacher_top1`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import platform
import re
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from transformers.modelcard import extract_hyperparameters_from_trainer
from transformers.trainer import TRAINER_STATE_NAME

from ..teachers.forwards import teacher_feature_record
from .card.metadata import FORMAT_BUILDERS
from .card.render import write_model_card
from .export import write_export_file
from .feed_record import is_passed_in
from .files import RESULTS_NAME
from .portable import portable_data_arguments, portable_folder, portable_training_arguments
from .provenance import license_sources, resolve_license, student_source

__all__ = [
    "code_version",
    "hardware_description",
    "library_versions",
    "recorded_teacher_top1",
    "aligned_teacher_specs",
    "build_run_record",
    "dataset_facts",
    "last_eval_metrics",
    "mixed_precision",
    "trained_label_free",
    "training_compute",
    "write_run_record",
]

logger = logging.getLogger(__name__)

_HUB_DATA_FILE = re.compile(r"^hf://datasets/([^/@]+/[^/@]+)@")
# datasets' packaged builders (file formats, never a dataset's name); the installed datasets names more.


_LIBRARIES = ("feed-hf", "torch", "torchvision", "timm", "transformers", "accelerate", "datasets", "huggingface-hub")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def hardware_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    return f"CPU: {_cpu_model()}, {torch.get_num_threads()} threads"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def code_version() -> str:
    """`git describe` of the feed-hf source tree when run from a checkout, else the package version."""
    source_dir = Path(__file__).resolve().parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=source_dir, capture_output=True, text=True, timeout=5
        )
        if described.returncode == 0 and described.stdout.strip():
            return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return library_versions()["feed-hf"]


def build_run_record(trainer: Any, failures: list[str] | None = None) -> dict[str, Any]:
    """results.json of `trainer` (a FeedTrainer) as it stands: call it after `train()` and `evaluate()`."""
    args, history = trainer.args, list(trainer.state.log_history)
    metrics = last_eval_metrics(history)
    train_metrics = _last_entry_with(history, "train_runtime")
    specs = aligned_teacher_specs(trainer.teacher_sources, trainer.teacher_specs)
    feed = _with_teacher_accuracy(trainer.exporter.feed_record(), specs)
    student = student_source(trainer.student)
    card = dict(trainer.hub.card_facts or {})
    declared, declared_by = (
        (card["license"], "push_to_hub/create_model_card")
        if card.get("license")
        else (
            args.model_license,
            "model_license",
        )
    )
    record = {
        "task": trainer.run_task or _task(feed),
        "label_free": trained_label_free(trainer, history),
        "metrics": metrics,
        "train_metrics": train_metrics,
        "num_parameters": sum(p.numel() for p in trainer.student.parameters()),
        "seed": args.seed,
        "compute": training_compute(trainer),
        "world_size": args.world_size,
        "mixed_precision": mixed_precision(trainer),
        "wall_time_s": _wall_time(trainer.run_started, train_metrics, metrics),
        "hardware": hardware_description(),
        "versions": library_versions(),
        "code_version": code_version(),
        "hyperparameters": training_hyperparameters(trainer),
        "data": dataset_facts(trainer),
        "config": portable_training_arguments(args.to_dict()),
        "feed": feed,
        **teacher_feature_record(trainer),  # teacher_features, teacher_feature_sources, teacher_forwards
        "license": resolve_license(declared, declared_by, license_sources(feed, student, specs)),
        "base_model": student["base_model"],
        "student_source": student,
        "card": card,
        "baseline_top1": trainer.card_baseline_top1,
        "log_history": history,
    }
    if failures:
        record["failures"] = list(failures)
    return record


def aligned_teacher_specs(teacher_sources: list[str], teacher_specs: list[str]) -> list[str | None]:
    """The specs as given, one per teacher: None where the teacher is a module passed in."""
    given = iter(teacher_specs)
    return [None if is_passed_in(source) else next(given, None) for source in teacher_sources]


def trained_label_free(trainer: Any, history: list[dict[str, Any]]) -> bool:
    """Whether the student learnt without labels (Σβ·FEED alone): a backbone without classes, the label-free
    evaluation (`label_free.enable_label_free_evaluation`), or training logs with FEED terms and no CE."""
    if getattr(trainer, "label_free", False) or getattr(trainer.student, "num_classes", None) == 0:
        return True  # FeedTrainer found no labels in the train set, or the student has no classes
    if getattr(trainer, "label_names", None) == []:  # label_free.enable_label_free_evaluation
        return True
    training_logs = [entry for entry in history if "loss" in entry and "eval_loss" not in entry]
    return any("feed/loss" in e for e in training_logs) and not any("loss/ce" in e for e in training_logs)


def last_eval_metrics(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last evaluation the Trainer logged (`eval_*` keys and its epoch); {} when it never evaluated."""
    entry = next((e for e in reversed(log_history) if any(k.startswith("eval_") for k in e)), None)
    return {k: v for k, v in (entry or {}).items() if k.startswith("eval_") or k == "epoch"}


def training_compute(trainer: Any) -> dict[str, Any]:
    """Optimizer steps and training image passes (what equal-compute comparisons are matched on).

    Image passes are the fractional epochs the Trainer completed times the training images when the train set has
    a length (exact at epoch ends, survives resume), else steps x the total train batch size (streams)."""
    state, train = trainer.state, getattr(trainer.train_dataset, "dataset", trainer.train_dataset)
    if train is not None and hasattr(train, "__len__") and state.epoch is not None:
        passes, method = round(state.epoch * len(train)), "epochs x train images"
    else:
        batch = trainer.args.train_batch_size * trainer.args.gradient_accumulation_steps * trainer.args.world_size
        passes, method = state.global_step * batch, "steps x total train batch size"
    return {"optimizer_steps": state.global_step, "image_passes": passes, "image_passes_from": method}


def mixed_precision(trainer: Any) -> str:
    """The precision training ran in, as the accelerator applied it ("no", "fp16", "bf16", "fp8"): an accelerate
    config or ACCELERATE_MIXED_PRECISION sets it as well as `bf16`/`fp16`."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None:
        return str(accelerator.mixed_precision)
    return "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "no"


def training_hyperparameters(trainer: Any) -> dict[str, Any]:
    """transformers' TrainingSummary hyperparameters, with the precision that ran and one-line values (a card's
    table)."""
    hyperparameters = extract_hyperparameters_from_trainer(trainer)
    optim = trainer.args.optim  # transformers writes the enum's repr ("OptimizerNames.SGD"); the card wants "sgd"
    if isinstance(hyperparameters.get("optimizer"), str) and hasattr(optim, "value"):
        hyperparameters["optimizer"] = hyperparameters["optimizer"].replace(str(optim), optim.value)
    precision = mixed_precision(trainer)  # transformers reads args.fp16 only
    hyperparameters.pop("mixed_precision_training", None)
    if precision != "no":
        hyperparameters["mixed_precision_training"] = f"Native AMP ({precision})"
    return {k: " ".join(v.split()) if isinstance(v, str) else v for k, v in hyperparameters.items()}


def dataset_facts(trainer: Any) -> dict[str, Any]:
    """What the card says about the data: derived from `datasets.Dataset`s, then the caller's `data_record`,
    then the `dataset_id` / `dataset_name` options, each overriding the one before."""
    given = portable_data_arguments(dict(trainer.data_record or {}))
    facts = {**_derived_facts(trainer.train_dataset, "train"), **_derived_facts(trainer.eval_dataset, "eval"), **given}
    options = {"dataset_id": trainer.args.dataset_id, "dataset_name": trainer.args.dataset_name}
    options = {key: value for key, value in options.items() if value}
    if options.get("dataset_id") not in (None, facts.get("dataset_id")) and "dataset_config_name" not in given:
        facts.pop("dataset_config_name", None)  # the derived config belongs to another dataset than the one named
    return {**facts, **options}


def _derived_facts(dataset: Any, role: str) -> dict[str, Any]:
    dataset = getattr(dataset, "dataset", dataset)  # IndexedDataset (cache_teacher_features) wraps the Dataset
    facts: dict[str, Any] = {}
    if dataset is not None and hasattr(dataset, "__len__"):
        facts[f"num_{role}"] = len(dataset)
    info, split = getattr(dataset, "info", None), getattr(dataset, "split", None)
    if split is not None:
        facts[f"{role}_split"] = str(split)
    if info is None or role != "train":
        return facts
    hub_ids = {m.group(1) for url in (info.download_checksums or {}) if (m := _HUB_DATA_FILE.match(str(url)))}
    # A packaged builder's name ("parquet", "imagefolder", "csv") names a file format, not the data; a config
    # named "default" is the one a dataset without configs has (the Hub needs none).
    named = {
        "dataset_id": hub_ids.pop() if len(hub_ids) == 1 else None,
        "dataset_name": next((n for n in (info.dataset_name, info.builder_name) if n and n not in _builders()), None),
        "dataset_config_name": info.config_name if info.config_name != "default" else None,
    }
    return {**facts, **{k: v for k, v in named.items() if v}}


def _builders() -> set[str]:
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES  # a Dataset was given: datasets is there

    return FORMAT_BUILDERS | set(_PACKAGED_DATASETS_MODULES)


def _with_teacher_accuracy(feed: dict[str, Any], teacher_specs: list[str | None]) -> dict[str, Any]:
    """The FEED record with each local teacher's measured top-1 (from its own results.json), for the card."""
    for described, spec in zip(feed.get("resolved_teachers") or [], teacher_specs, strict=False):
        if spec is not None:  # a module passed in has no results.json to read
            described["top1"] = recorded_teacher_top1(spec)
    return feed


def _task(feed: dict[str, Any]) -> str:
    if not feed.get("resolved_teachers"):
        return "ce"
    return "pfeed" if any(beta > 0 for beta in feed.get("feed_beta") or [0.0]) else "kd"


def _last_entry_with(log_history: list[dict[str, Any]], key: str) -> dict[str, Any]:
    entry = next((e for e in reversed(log_history) if key in e), {})
    return {k: v for k, v in entry.items() if k != "step"}


def _wall_time(started: float | None, train_metrics: dict[str, Any], metrics: dict[str, Any]) -> float:
    """From `started` (the caller's clock) when given, else the Trainer's own training + evaluation runtimes."""
    if started is not None:
        return round(time.perf_counter() - started, 1)
    return round(train_metrics.get("train_runtime", 0.0) + metrics.get("eval_runtime", 0.0), 1)


def write_run_record(trainer: Any, output_dir: str, failures: list[str] | None = None) -> list[str]:
    """results.json and README.md into the export in `output_dir`; `trainer_state.json` and `*_results.json`
    (the Trainer's own `save_state`/`save_metrics`) too when it is `args.output_dir`. A card that cannot be
    rendered is logged and recorded as a failure, never fatal: returns `failures` plus that one."""
    failures = list(failures or [])
    record = build_run_record(trainer, failures)
    try:
        write_model_card(output_dir, record)
    except Exception as error:  # the card is optional; the exported model is not
        failures.append(f"the model card failed ({type(error).__name__}: {error})")
        logger.warning("the model card of %s failed: %s: %s", output_dir, type(error).__name__, error)
        record["failures"] = failures
    write_export_file(output_dir, RESULTS_NAME, json.dumps(record, indent=2, default=str))
    if Path(output_dir).resolve() == Path(trainer.args.output_dir).resolve():
        _save_portable_state(trainer, Path(output_dir))
        for split, metrics in (("train", record["train_metrics"]), ("eval", record["metrics"])):
            if metrics:
                trainer.save_metrics(split, metrics)
    return failures


def _save_portable_state(trainer: Any, output_dir: Path) -> None:
    """`Trainer.save_state()`'s trainer_state.json, naming its best checkpoint by folder name: the file sits at
    the top of the output folder, where a plain upload takes it (the checkpoints' own copies keep the path)."""
    if not trainer.is_world_process_zero():
        return
    state = copy.copy(trainer.state)
    state.best_model_checkpoint = portable_folder(state.best_model_checkpoint)
    state.save_to_json(str(output_dir / TRAINER_STATE_NAME))


def recorded_teacher_top1(spec: str) -> float | None:
    """A local teacher's measured top-1, from the results.json feed-hf wrote beside its export (or beside the
    NAME=CHECKPOINT file). An optional fact: unreadable or malformed, it is logged and recorded as unknown."""
    if spec.startswith("hf-hub:"):
        return None
    location = spec.removeprefix("local-dir:")
    _, separator, checkpoint = location.partition("=")
    folder = Path(checkpoint).parent if separator and not Path(location).is_dir() else Path(location)
    results_file = folder / RESULTS_NAME
    if not results_file.is_file():
        return None
    try:
        recorded = json.loads(results_file.read_text(encoding="utf-8"))
        top1 = (recorded.get("metrics") or {}).get("eval_top1")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as error:
        top1, reason = "?", f"{type(error).__name__}: {error}"
    else:
        reason = f"its eval_top1 is {top1!r}, not a number"
    if top1 is None:  # a teacher that was never evaluated
        return None
    if isinstance(top1, (int, float)) and not isinstance(top1, bool) and math.isfinite(top1):
        return float(top1)
    logger.warning("teacher top-1 recorded as unknown: %s is malformed (%s)", results_file, reason)
    return None
