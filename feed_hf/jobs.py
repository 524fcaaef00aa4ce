"""Training jobs shared by the recipes, the CLI and the demo: one model trained, evaluated, exported, recorded."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
from .provenance import code_version, hardware_description, library_versions
from .trainer import FeedTrainer, create_student
from .transforms import build_transform, with_pixel_values

__all__ = [
    "RESULTS_NAME",
    "BaselineArguments",
    "BaselineKind",
    "RunIncompleteError",
    "TeacherArguments",
    "baseline_config",
    "read_results",
    "train_model",
    "train_teachers",
]

logger = logging.getLogger(__name__)
BaselineKind = Literal["ce", "kd", "single_feed"]


@dataclass
class TeacherArguments:
    teacher_seeds: list[int] = field(
        default_factory=lambda: [1, 2, 3],
        metadata={"help": "One teacher per seed (same architecture: FeedConfig.student), CE only."},
    )


@dataclass
class BaselineArguments:
    baseline: BaselineKind = field(
        default="ce",
        metadata={
            "help": "'ce': CE only; 'kd': logit KD from the teachers' averaged logits (needs kd_weight > 0); "
            "'single_feed': FEED from teachers[teacher_index] alone."
        },
    )
    teacher_index: int = field(default=0, metadata={"help": "The teacher of the 'single_feed' baseline."})


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
    class_names = splits["train"].features["label"].names
    set_seed(args.seed)
    student = create_student(args, len(class_names))
    data_config = resolve_model_data_config(student)
    in_chans = data_config["input_size"][0]
    trainer = FeedTrainer(
        model=student,
        args=args,
        train_dataset=with_pixel_values(
            splits["train"],
            # batch_augmentation crops and flips inside the training step: the loader stays deterministic
            build_transform(
                data_config, data_args.augmentation and args.batch_augmentation == "none", data_args.horizontal_flip
            ),
            in_chans,
        ),
        eval_dataset=with_pixel_values(splits["eval"], build_transform(data_config, False), in_chans),
        class_names=class_names,
    )
    train_output = trainer.train(resume_from_checkpoint=_resume_checkpoint(args))  # ends with the export
    failures: list[str] = []
    metrics = _optional_step("evaluation", trainer.evaluate, failures) or {}
    results = {
        "task": task,
        "metrics": metrics,
        "train_metrics": train_output.metrics,
        "num_parameters": sum(p.numel() for p in trainer.student.parameters()),
        "seed": args.seed,
        "world_size": args.world_size,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "hardware": hardware_description(),
        "versions": library_versions(),
        "code_version": code_version(),
        # Portable when recorded: a Hub id or a folder's name, never a path of this machine nor a token.
        "data": {
            **portable_data_arguments(dataclasses.asdict(data_args)),
            "num_train": len(splits["train"]),
            "num_eval": len(splits["eval"]),
            "skipped_images": getattr(splits, "skipped_images", {}),  # undecodable_images="skip"
        },
        "config": portable_training_arguments(args.to_dict()),
        "feed": trainer.feed_record(),
        "log_history": trainer.state.log_history,
    }
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
    if args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Upload {task} trained with feed-hf")
    return results


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


def train_teachers(
    data_args: DataArguments, args: FeedConfig, seeds: list[int], splits: datasets.DatasetDict | None = None
) -> list[dict[str, Any]]:
    """N same-architecture teachers, CE only, one per seed, exported to `output_dir/teacher_{i}`."""
    splits = splits if splits is not None else load_image_splits(data_args, seed=args.seed)
    results = []
    for index, seed in enumerate(seeds):
        teacher_args = dataclasses.replace(
            args,
            output_dir=str(Path(args.output_dir) / f"teacher_{index}"),
            seed=seed,
            teachers=[],
            hub_model_id=f"{args.hub_model_id}-teacher-{index}" if args.hub_model_id else None,
        )
        results.append(train_model(data_args, teacher_args, splits, task="teacher"))
    return results


def baseline_config(args: FeedConfig, kind: BaselineKind, teacher_index: int = 0) -> FeedConfig:
    """The FeedConfig of a baseline: CE only, logit KD from the teacher ensemble, or FEED from one teacher."""
    if kind == "ce":
        return dataclasses.replace(args, teachers=[], kd_weight=0.0)
    if not args.teachers:
        raise ValueError(f"baseline {kind!r} needs teachers; set --teachers")
    if kind == "kd":
        if args.kd_weight <= 0:
            raise ValueError("baseline 'kd' needs kd_weight > 0 (e.g. --kd_weight 1.0 --kd_temperature 4)")
        return dataclasses.replace(args, feed_beta=[0.0])
    if kind == "single_feed":
        if not 0 <= teacher_index < len(args.teachers):
            raise ValueError(f"teacher_index {teacher_index} is out of range for {len(args.teachers)} teachers")
        return dataclasses.replace(
            args,
            teachers=[args.teachers[teacher_index]],
            feed_beta=[args.betas(len(args.teachers))[teacher_index]],
            teacher_feature_indices=[args.teacher_feature_index(teacher_index, len(args.teachers))],
            teacher_feature_modules=args.teacher_feature_modules[teacher_index : teacher_index + 1],
        )
    raise ValueError(f"unknown baseline {kind!r}; choose 'ce', 'kd' or 'single_feed'")


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
