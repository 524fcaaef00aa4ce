"""Train one model from a dataset, end to end: one code path and one record for the Python API, CLI and recipes.

`train_model` loads the data, builds the student and its transforms, attaches the data facts to a `FeedTrainer`
(which exports the student and writes its record when training ends, and rewrites the record when it evaluates),
and evaluates: `results.json` and the model card come from the Trainer's state, as from the Python API. Anything
after the export that fails is recorded as unknown and makes the run fail (`RunIncompleteError`), without costing
the model.
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
from transformers import set_seed

from ..data.loading import EMBEDDED_DATASETS, DataArguments, load_image_splits
from ..data.pixel_values import run_class_names, to_pixel_values
from ..data.streams import check_streaming_steps, refuse_stream_teacher_outputs
from ..publishing.files import RESULTS_NAME
from ..publishing.portable import write_local_sources
from ..publishing.run_record import build_run_record
from .checkpoints import last_complete_checkpoint
from .config.checks import check_run_flags
from .config.feed_config import FeedConfig
from .label_free import check_label_free_setup
from .resolution import image_split_size, resolve_student_input_size
from .students import create_student
from .trainer import FeedTrainer

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

    Writes the exported student, its `README.md` model card and `results.json` (resolved config, versions, seed,
    metrics, wall time, log history): the trainer's own record (`FeedTrainer.write_record`), with the data facts
    attached here. Returns what results.json holds.
    """
    started = time.perf_counter()
    check_run_flags(args)  # do_train=False / do_predict=True refused; do_eval=False honoured below
    splits = splits if splits is not None else load_image_splits(data_args, seed=args.seed)
    trainer = build_trainer(data_args, args, splits)
    trainer.data_record = _data_record(data_args, splits)
    trainer.run_task, trainer.run_started, trainer.card_baseline_top1 = task, started, baseline_top1
    trainer.train(resume_from_checkpoint=_resume_checkpoint(args))  # ends with the export and its record
    failures: list[str] = []
    if args.do_eval:
        _optional_step("evaluation", trainer.evaluate, failures)
    else:
        logger.info("do_eval=False: no evaluation after training; the record carries no eval metrics")
    failures = trainer.write_record(failures=failures)  # the final record: metrics, or what failed
    if args.should_save:
        write_local_sources(args.output_dir, list(args.teachers), dataclasses.asdict(data_args))  # never pushed
    if failures:
        raise RunIncompleteError(
            f"training finished and the student is exported to {args.output_dir}, but {'; '.join(failures)}. "
            "What could not be measured is recorded as unknown in results.json; fix the cause and re-evaluate "
            "the export (nothing needs retraining)."
        )
    results = build_run_record(trainer)  # what results.json holds (every rank gets it)
    if args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Upload {task} trained with feed-hf")
    return results


def _data_record(data_args: DataArguments, splits: datasets.DatasetDict) -> dict[str, Any]:
    """The data facts of the record: the arguments (portable when recorded), sizes, the eval split's name."""
    dataset = data_args.dataset
    is_hub = dataset not in EMBEDDED_DATASETS and not Path(dataset).exists() and dataset.count("/") == 1
    train_split, eval_split = splits["train"].split, splits["eval"].split
    carved = eval_split is None or str(eval_split) == str(train_split)
    return {
        **dataclasses.asdict(data_args),
        "dataset_id": dataset if is_hub else None,
        "eval_split": data_args.eval_split
        or (f"held-out part of {data_args.train_split}" if carved else str(eval_split)),
        "num_train": len(splits["train"]) if isinstance(splits["train"], datasets.Dataset) else None,  # a stream
        "num_eval": len(splits["eval"]) if isinstance(splits["eval"], datasets.Dataset) else None,
        "skipped_images": getattr(splits, "skipped_images", {}),  # undecodable_images="skip"
    }


def build_trainer(
    data_args: DataArguments, args: FeedConfig, splits: datasets.DatasetDict | datasets.IterableDatasetDict
) -> FeedTrainer:
    """A FeedTrainer for `args.student` on `splits` (`image` and, unless label-free, `label`), with the student's
    own transforms (`pixel_values.to_pixel_values`).

    Without labels, the student has `num_labels` classes, or none (timm `num_classes=0`: a backbone) when unset,
    and the loss is Σβ·FEED alone. Streamed splits need `max_steps` and cannot use the teacher caches.
    """
    train = splits["train"]
    streamed = isinstance(train, datasets.IterableDataset)
    if streamed:
        check_streaming_steps(args.max_steps)
        refuse_stream_teacher_outputs(args)
    class_names = run_class_names(train, args.num_labels, data_args.class_names)
    check_label_free_setup(class_names, list(args.teachers), args.kd_weight)
    set_seed(args.seed)
    student = create_student(args, len(class_names) if class_names else 0)
    # Decided once, before the transforms are built: FeedTrainer then finds its pixel_values at this size.
    data_size = None if streamed else image_split_size(train)
    resolve_student_input_size(student, args.input_size, data_size, "the train split's images", False)
    # batch_augmentation crops and flips inside the training step: the loader stays deterministic
    augment = data_args.augmentation and args.batch_augmentation == "none"
    as_pixels = functools.partial(to_pixel_values, student=student, decide_input_size=False)
    return FeedTrainer(  # a train split without labels: FeedTrainer itself trains and evaluates label-free
        model=student,
        args=args,
        train_dataset=as_pixels(train, training=augment, horizontal_flip=data_args.horizontal_flip),
        eval_dataset=as_pixels(splits["eval"], training=False),
        class_names=class_names,
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
