"""A run's record (results.json), built from the Trainer's own state wherever training happened.

`FeedTrainer.write_record` calls `build_run_record` for the Python API, the CLI, the recipes and every sFEED
generation alike: the metrics are the last evaluation in `state.log_history`, the hyperparameters are
transformers' `TrainingSummary` extraction, the data facts are what the caller attached (`trainer.data_record`)
or what the `datasets.Dataset`s say about themselves.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from transformers.modelcard import extract_hyperparameters_from_trainer

from .card_metadata import resolve_license
from .export import write_export_file
from .files import RESULTS_NAME
from .model_card import write_model_card
from .portable import portable_data_arguments, portable_training_arguments
from .record import code_version, hardware_description, library_versions, recorded_teacher_top1

__all__ = [
    "build_run_record",
    "dataset_facts",
    "last_eval_metrics",
    "mixed_precision",
    "training_compute",
    "write_run_record",
]

logger = logging.getLogger(__name__)

_HUB_DATA_FILE = re.compile(r"^hf://datasets/([^/@]+/[^/@]+)@")


def build_run_record(trainer: Any, failures: list[str] | None = None) -> dict[str, Any]:
    """results.json of `trainer` (a FeedTrainer) as it stands: call it after `train()` and `evaluate()`."""
    args, history = trainer.args, list(trainer.state.log_history)
    metrics = last_eval_metrics(history)
    train_metrics = _last_entry_with(history, "train_runtime")
    feed = _with_teacher_accuracy(trainer.feed_record(), trainer.teacher_specs)
    record = {
        "task": trainer.run_task or _task(feed),
        "metrics": metrics,
        "train_metrics": train_metrics,
        "num_parameters": sum(p.numel() for p in trainer.student.parameters()),
        "seed": args.seed,
        "compute": training_compute(trainer),
        "world_size": args.world_size,
        "mixed_precision": mixed_precision(args),
        "wall_time_s": _wall_time(trainer.run_started, train_metrics, metrics),
        "hardware": hardware_description(),
        "versions": library_versions(),
        "code_version": code_version(),
        "hyperparameters": training_hyperparameters(trainer),
        "data": dataset_facts(trainer),
        "config": portable_training_arguments(args.to_dict()),
        "feed": feed,
        "license": resolve_license(args.model_license, feed),
        "base_model": _student_base_model(args),
        "baseline_top1": trainer.card_baseline_top1,
        "log_history": history,
    }
    if failures:
        record["failures"] = list(failures)
    return record


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


def mixed_precision(args: Any) -> str:
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "no"


def training_hyperparameters(trainer: Any) -> dict[str, Any]:
    """transformers' TrainingSummary hyperparameters, with bf16 too and one-line values (a card's table)."""
    hyperparameters = extract_hyperparameters_from_trainer(trainer)
    optim = trainer.args.optim  # transformers writes the enum's repr ("OptimizerNames.SGD"); the card wants "sgd"
    if isinstance(hyperparameters.get("optimizer"), str) and hasattr(optim, "value"):
        hyperparameters["optimizer"] = hyperparameters["optimizer"].replace(str(optim), optim.value)
    if trainer.args.bf16:
        hyperparameters["mixed_precision_training"] = "Native AMP (bf16)"
    return {k: " ".join(v.split()) if isinstance(v, str) else v for k, v in hyperparameters.items()}


def dataset_facts(trainer: Any) -> dict[str, Any]:
    """What the card says about the data: derived from `datasets.Dataset`s, then the caller's `data_record`,
    then the `dataset_id` / `dataset_name` options, each overriding the one before."""
    facts = {
        **_derived_facts(trainer.train_dataset, "train"),
        **_derived_facts(trainer.eval_dataset, "eval"),
        **portable_data_arguments(dict(trainer.data_record or {})),
    }
    options = {"dataset_id": trainer.args.dataset_id, "dataset_name": trainer.args.dataset_name}
    return {**facts, **{k: v for k, v in options.items() if v}}


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
    named = {
        "dataset_id": hub_ids.pop() if len(hub_ids) == 1 else None,
        "dataset_name": info.dataset_name or info.builder_name,
        "dataset_config_name": info.config_name,
    }
    return {**facts, **{k: v for k, v in named.items() if v}}


def _with_teacher_accuracy(feed: dict[str, Any], teacher_specs: list[str]) -> dict[str, Any]:
    """The FEED record with each local teacher's measured top-1 (from its own results.json), for the card."""
    resolved = feed.get("resolved_teachers") or []
    if len(resolved) == len(teacher_specs):  # specs given as modules have no results.json to read
        for described, spec in zip(resolved, teacher_specs, strict=True):
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


def _student_base_model(args: Any) -> str | None:
    """The Hub id@revision the student started from, for `base_model`; None for a fresh initialisation."""
    try:
        from .students import student_base_model  # provided with pretrained students (issue 12, item 6)
    except ImportError:
        return None
    return student_base_model(args)


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
        trainer.save_state()
        for split, metrics in (("train", record["train_metrics"]), ("eval", record["metrics"])):
            if metrics:
                trainer.save_metrics(split, metrics)
    return failures
