"""The teacher and baseline workflows: N CE teachers, and the CE / logit-KD / single-teacher-FEED baselines."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets

from ..data.loading import DataArguments, load_image_splits
from ..training.config.feed_config import FeedConfig
from ..training.config.readouts import betas, teacher_feature_index
from ..training.sequential import SequentialArguments, run_sequential
from ..training.train_model import train_model

__all__ = [
    "BaselineArguments",
    "BaselineKind",
    "TeacherArguments",
    "baseline_config",
    "run_baseline",
    "run_parallel",
    "run_sequential_generations",
    "run_teachers",
    "teacher_architecture",
    "train_teachers",
]

BaselineKind = Literal["ce", "kd", "single_feed"]

logger = logging.getLogger(__name__)


@dataclass
class TeacherArguments:
    model: str | None = field(
        default=None,
        metadata={
            "help": "The teachers' architecture, a timm name (e.g. resnet56_cifar). Replaces --student, which still "
            "works for this command but is deprecated."
        },
    )
    teacher_seeds: list[int] = field(
        default_factory=lambda: [1, 2, 3],
        metadata={"help": "One teacher per seed (all of architecture --model), CE only."},
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
            feed_beta=[betas(args, len(args.teachers))[teacher_index]],
            teacher_feature_indices=[teacher_feature_index(args, teacher_index, len(args.teachers))],
            teacher_feature_modules=args.teacher_feature_modules[teacher_index : teacher_index + 1],
        )
    raise ValueError(f"unknown baseline {kind!r}; choose 'ce', 'kd' or 'single_feed'")


def run_teachers(data_args: DataArguments, args: FeedConfig, teacher_args: TeacherArguments) -> list[dict[str, Any]]:
    """`feed-hf teachers` / recipes/train_teachers.py: `--model NAME` teachers, one per seed."""
    architecture = teacher_architecture(args.student, teacher_args.model)
    return train_teachers(data_args, dataclasses.replace(args, student=architecture), teacher_args.teacher_seeds)


def teacher_architecture(student: str | None, model: str | None) -> str:
    """The teachers' architecture: `--model`; the older `--student` still works, with a deprecation note."""
    if model and student and model != student:
        raise ValueError(
            f"feed-hf teachers got --model {model!r} and --student {student!r}; the teachers' architecture is "
            "--model: drop --student"
        )
    if model:
        return model
    if student:
        # Kept (not refused) so configs and scripts written for earlier releases still train the same teachers.
        logger.warning(
            "feed-hf teachers: --student (config key `student`) is deprecated for the teachers' architecture; "
            "use --model %s (config key `model`)",
            student,
        )
        return student
    raise ValueError("feed-hf teachers needs the teachers' architecture: --model NAME (e.g. --model resnet56_cifar)")


def run_parallel(data_args: DataArguments, args: FeedConfig) -> dict[str, Any]:
    """`feed-hf parallel` / recipes/feed_parallel.py: one student, several frozen teachers."""
    if not args.teachers:  # a CE model under the name of a FEED run would mislead its reader and its card
        raise ValueError(
            "feed-hf parallel needs teachers (--teachers DIR [DIR ...]); to train a student without teachers run "
            "`feed-hf baselines --baseline ce`"
        )
    return train_model(data_args, args, task="pfeed")


def run_sequential_generations(
    data_args: DataArguments, args: FeedConfig, sequential_args: SequentialArguments
) -> list[dict[str, Any]]:
    """`feed-hf sequential` / recipes/feed_sequential.py."""
    return run_sequential(data_args, args, sequential_args.num_generations)


def run_baseline(data_args: DataArguments, args: FeedConfig, baseline_args: BaselineArguments) -> dict[str, Any]:
    """`feed-hf baselines` / recipes/baselines.py."""
    config = baseline_config(args, baseline_args.baseline, baseline_args.teacher_index)
    return train_model(data_args, config, task=f"baseline_{baseline_args.baseline}")
