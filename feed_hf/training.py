"""Train one model from a dataset, end to end: one code path and one record for the Python API, CLI and recipes.

`train_model` loads the data, builds the student and its transforms, trains with `FeedTrainer` (which exports the
student when training ends), evaluates, and writes the record beside the export: `results.json` and the model
card, both built from the Trainer's state. Anything after the export that fails is recorded as unknown and makes
the run fail (`RunIncompleteError`), without costing the model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from timm.data import resolve_model_data_config
from transformers import set_seed

from .checkpoints import last_complete_checkpoint
from .config import FeedConfig
from .data import DataArguments, load_image_splits
from .export import write_export_file
from .files import RESULTS_NAME
from .model_card import write_model_card
from .portable import portable_data_arguments, portable_training_arguments, write_local_sources
from .record import code_version, hardware_description, library_versions, recorded_teacher_top1
from .trainer import FeedTrainer, create_student
from .transforms import build_transform, with_pixel_values

__all__ = ["RunIncompleteError", "build_trainer", "read_results", "train_model"]

logger = logging.getLogger(__name__)


def train_model(
    data_args: DataArguments,
    args: FeedConfig,
    splits: datasets.DatasetDict | None = None,
    task: str = "pfeed",
    baseline_top1: float | None = None,
) -> dict[str, Any]:
    """Train one student (a teacher when `args.teachers` is empty), evaluate, export to `args.output_dir`.

    Writes the exported student, its `README.md` model card and `results.json` (resolved config,
    versions, seed, metrics, wall time, log history). Returns what results.json holds.
    """
    started = time.perf_counter()
    splits = splits if splits is not None else load_image_splits(data_args, seed=args.seed)
    trainer = build_trainer(data_args, args, splits)
    train_output = trainer.train(resume_from_checkpoint=_resume_checkpoint(args))  # ends with the export
    failures: list[str] = []
    metrics = _optional_step("evaluation", trainer.evaluate, failures) or {}
    results = {
        "task": task,
        "metrics": metrics,
        "train_metrics": train_output.metrics,
        **_run_facts(trainer, started),
        # Portable when recorded: a Hub id or a folder's name, never a path of this machine nor a token.
        "data": {
            **portable_data_arguments(dataclasses.asdict(data_args)),
            "num_train": len(splits["train"]),
            "num_eval": len(splits["eval"]),
            "skipped_images": getattr(splits, "skipped_images", {}),  # undecodable_images="skip"
        },
        "config": portable_training_arguments(args.to_dict()),
        "feed": _with_teacher_accuracy(trainer.feed_record(), args.teachers),
        "log_history": trainer.state.log_history,
    }
    _write_record(data_args, args, results, failures, baseline_top1)
    if args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Upload {task} trained with feed-hf")
    return results


def build_trainer(data_args: DataArguments, args: FeedConfig, splits: datasets.DatasetDict) -> FeedTrainer:
    """A FeedTrainer for `args.student` on `splits` (`image`/`label`), with the student's own transforms."""
    class_names = splits["train"].features["label"].names
    set_seed(args.seed)
    student = create_student(args, len(class_names))
    data_config = resolve_model_data_config(student)
    in_chans = data_config["input_size"][0]
    # batch_augmentation crops and flips inside the training step: the loader stays deterministic
    augment = data_args.augmentation and args.batch_augmentation == "none"
    train_transform = build_transform(data_config, augment, data_args.horizontal_flip)
    return FeedTrainer(
        model=student,
        args=args,
        train_dataset=with_pixel_values(splits["train"], train_transform, in_chans),
        eval_dataset=with_pixel_values(splits["eval"], build_transform(data_config, False), in_chans),
        class_names=class_names,
    )


def _run_facts(trainer: FeedTrainer, started: float) -> dict[str, Any]:
    return {
        "num_parameters": sum(p.numel() for p in trainer.student.parameters()),
        "seed": trainer.args.seed,
        "world_size": trainer.args.world_size,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "hardware": hardware_description(),
        "versions": library_versions(),
        "code_version": code_version(),
    }


def _write_record(
    data_args: DataArguments, args: FeedConfig, results: dict, failures: list[str], baseline_top1: float | None
) -> None:
    """Card, local sources and results.json beside the export; then fail the run if a step after the export did."""
    if args.should_save:
        card = functools.partial(write_model_card, args.output_dir, results, baseline_top1=baseline_top1)
        _optional_step("model card", card, failures)
    if failures:
        results["failures"] = failures
    if args.should_save:
        write_local_sources(args.output_dir, list(args.teachers), dataclasses.asdict(data_args))  # never pushed
        write_export_file(args.output_dir, RESULTS_NAME, json.dumps(results, indent=2, default=str))
    if failures:
        raise RunIncompleteError(
            f"training finished and the student is exported to {args.output_dir}, but {'; '.join(failures)}. "
            "What could not be measured is recorded as unknown in results.json; fix the cause and re-evaluate "
            "the export (nothing needs retraining)."
        )


class RunIncompleteError(RuntimeError):
    """Training finished and the model is exported, but an optional step after it failed."""


def _optional_step(name: str, step: Callable[[], Any], failures: list[str]) -> Any:
    """Run a step that comes after the export; its failure is recorded and logged, never fatal to the export."""
    try:
        return step()
    except Exception as error:  # any failure here must not cost the exported model
        failures.append(f"the {name} failed ({type(error).__name__}: {error})")
        logger.warning("%s after training failed: %s: %s", name, type(error).__name__, error)
        return None


def _with_teacher_accuracy(feed: dict[str, Any], teacher_specs: list[str]) -> dict[str, Any]:
    """The record with each local teacher's measured top-1 (from its own results.json), for the card."""
    for described, spec in zip(feed.get("resolved_teachers", []), teacher_specs, strict=False):
        described["top1"] = recorded_teacher_top1(spec)
    return feed


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """A finished run's results.json, or None when the run has not finished (or finished with failures)."""
    path = Path(run_dir) / RESULTS_NAME
    results = json.loads(path.read_text()) if path.is_file() else None
    return None if results is None or results.get("failures") else results


def _resume_checkpoint(args: FeedConfig) -> str | None:
    requested = args.resume_from_checkpoint
    if requested in (None, "", "False", "false"):
        return None
    if requested in ("True", "true", "last"):
        return last_complete_checkpoint(args.output_dir)  # a folder cut short by a kill is skipped
    return requested
