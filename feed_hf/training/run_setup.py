"""The pieces FeedTrainer.__init__ builds a FEED run from: the run's labels, the frozen teachers at the student's
compared size, and the store or cache of their outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accelerate.utils import gather_object
from timm.data import resolve_model_data_config
from torch import nn

from ..store.cache import TeacherFeatureCache, open_store_for
from ..store.parts import ComposedStore
from ..teachers.frozen import FrozenTeacher, check_kd_classes, load_teacher_model
from .config.readouts import (
    teacher_autocast_dtype,
    teacher_feature_index,
    teacher_feature_module,
    teacher_input_size,
    uses_summaries,
)
from .label_free import check_label_free_setup, dataset_has_labels

__all__ = ["build_feature_cache", "build_teachers", "read_labels"]


def read_labels(
    args: Any, teachers: Sequence[Any] | None, class_names: Sequence[str] | None, train_dataset: Any
) -> tuple[list[str] | None, bool | None]:
    """The run's class names and whether its train set has labels (None: unknown); a label-free run is checked."""
    names = list(class_names) if class_names else _class_names(train_dataset)
    labelled = True if names else dataset_has_labels(train_dataset)
    if labelled is False:  # no label in the train set: Σβ·FEED alone (label_free.py)
        check_label_free_setup(None, list(teachers if teachers is not None else args.teachers), args.kd_weight)
    return names, labelled


def build_teachers(
    args: Any, sources: list[nn.Module | str], student: nn.Module, student_map_size: tuple[int, int]
) -> nn.ModuleList:
    """Each teacher (a module, or a source loaded by name) frozen, fed as the config says, in eval mode."""
    student_data_config = resolve_model_data_config(student)
    frozen = []
    for index, source in enumerate(sources):
        module = source
        if not isinstance(source, nn.Module):  # memory checked at the run's batch size and dtype, before weights load
            dtype = teacher_autocast_dtype(args)
            module = load_teacher_model(
                source, args.teacher_allow_pickle, args.per_device_train_batch_size, args.device, dtype
            )
        feature_module = teacher_feature_module(args, index, len(sources))
        frozen.append(
            FrozenTeacher(
                module,
                student_data_config,
                feature_index=teacher_feature_index(args, index, len(sources)),
                feature_module=feature_module,
                name=f"teacher {index} ({source if isinstance(source, str) else type(source).__name__})",
                autocast_dtype=teacher_autocast_dtype(args),
                channels_last=args.channels_last,
                compile=args.compile_teachers,
                student_map_size=student_map_size,
                input_size=teacher_input_size(args, index, len(sources)),
            )
        )
    check_kd_classes(frozen, getattr(student, "num_classes", None), args.kd_weight)
    return nn.ModuleList(frozen).eval()


def build_feature_cache(trainer: Any) -> TeacherFeatureCache | ComposedStore:
    """The teachers' outputs per training row: the persistent store, or the in-memory cache of this run."""
    args = trainer.args
    if args.teacher_store:  # every rank builds its block, then maps the whole store
        barrier = trainer.accelerator.wait_for_everyone
        return open_store_for(
            args, trainer.teachers, trainer.train_dataset, barrier, gather_object, with_summaries=uses_summaries(args)
        )
    return TeacherFeatureCache.build(  # sharded like the store: each rank its block, then gathered
        trainer.teachers,
        trainer.train_dataset,
        args.per_device_eval_batch_size,
        args.device,
        with_logits=args.kd_weight > 0,
        with_summaries=uses_summaries(args),
        rank=args.process_index,
        world_size=args.world_size,
        gather=trainer.accelerator.gather,
    )


def _class_names(dataset: Any) -> list[str] | None:
    features = getattr(dataset, "features", None) or {}
    for column in ("labels", "label"):
        names = getattr(features.get(column), "names", None)
        if names:
            return list(names)
    return None
