"""Training jobs shared by the recipes, the CLI and the demo: one model trained, evaluated, exported, recorded."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
from timm.data import resolve_model_data_config
from transformers import set_seed

from .checkpoints import last_complete_checkpoint
from .config import FeedConfig
from .data import DataArguments, load_image_splits
from .model_card import write_model_card
from .provenance import code_version, hardware_description, library_versions
from .trainer import FeedTrainer, create_student
from .transforms import build_transform, with_pixel_values

__all__ = [
    "RESULTS_NAME",
    "BaselineArguments",
    "BaselineKind",
    "TeacherArguments",
    "baseline_config",
    "read_results",
    "train_model",
    "train_teachers",
]

RESULTS_NAME = "results.json"
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
    train_output = trainer.train(resume_from_checkpoint=_resume_checkpoint(args))
    metrics = trainer.evaluate()
    trainer.save_model()
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
        "data": {**dataclasses.asdict(data_args), "num_train": len(splits["train"]), "num_eval": len(splits["eval"])},
        "config": args.to_dict(),
        "feed": trainer.feed_config(),
        "log_history": trainer.state.log_history,
    }
    if args.should_save:
        write_model_card(args.output_dir, results, baseline_top1=baseline_top1)
        _write_json(Path(args.output_dir) / RESULTS_NAME, results)
    if args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Upload {task} trained with feed-hf")
    return results


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
    """A finished run's results.json, or None when the run has not finished."""
    path = Path(run_dir) / RESULTS_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _resume_checkpoint(args: FeedConfig) -> str | None:
    requested = args.resume_from_checkpoint
    if requested in (None, "", "False", "false"):
        return None
    if requested in ("True", "true", "last"):
        return last_complete_checkpoint(args.output_dir)  # a folder cut short by a kill is skipped
    return requested


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    # Written last and atomically: its presence marks a finished run (sequential FEED relies on it).
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(payload, indent=2, default=str))
    staging.replace(path)
