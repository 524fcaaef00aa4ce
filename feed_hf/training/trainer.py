"""FeedTrainer: transformers' Trainer whose loss is parallel FEED (Eq. 1) and whose export is the student."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from timm.data import resolve_model_data_config
from torch import nn
from torch.utils.data import IterableDataset
from transformers import Trainer, enable_full_determinism, set_seed

from ..data.label_range import check_datasets
from ..data.pixel_values import check_pixel_values_once
from ..data.streams import refuse_stream_teacher_outputs
from ..data.transforms import random_crop_flip
from ..evaluation.metrics import top_k_accuracy
from ..method.features import FeatureTap
from ..method.losses import ensemble_kd_loss, feed_loss
from ..method.modeling import FeedStudent, build_feed_student, student_map_shape
from ..publishing.portable import portable_teacher_source
from ..publishing.student_export import StudentExportMixin
from ..store.cache import IndexedDataset, TeacherFeatureCache, open_store_for
from ..store.reader import TeacherStore
from ..teachers.frozen import FrozenTeacher, check_kd_classes, load_teacher_model
from .checkpoints import CheckpointMarkerCallback, check_resume_compatible
from .collators import SampleIndexCollator, check_collator_for_teacher_outputs
from .config.feed_config import FeedConfig
from .config.readouts import (
    betas,
    connector_options,
    teacher_autocast_dtype,
    teacher_feature_index,
    teacher_feature_module,
    teacher_input_size,
)
from .distributed import place_teachers
from .hub_callbacks import ExportPushCallback
from .label_free import (
    check_label_free_setup,
    check_student_has_classes,
    cross_entropy_term,
    dataset_has_labels,
    enable_label_free_evaluation,
    evaluation_loss,
    student_num_labels,
)
from .model_init import ModelInitMixin, probe_model_init
from .resolution import pixel_values_size, resolve_student_input_size
from .run_checks import check_export_target, check_labels_fit, check_output_dir, check_teacher_maps_once
from .students import create_student
from .trainer_arguments import check_given_optimizer, check_optimizer_holds_connectors, check_trainer_arguments
from .weight_decay import decay_parameter_names

__all__ = ["FeedTrainer", "create_student"]

logger = logging.getLogger(__name__)


class FeedTrainer(ModelInitMixin, StudentExportMixin, Trainer):
    """Trains a student with CE + Σ_n β_n·L_FEED_n (+ optional logit KD) from frozen teachers.

    `FeedTrainer(args=FeedConfig(student=..., teachers=[...]), train_dataset=...)` builds everything
    from the config; `FeedTrainer(model=timm_student, teachers=[module, ...], args=...)` takes
    modules. `trainer.model` is a `FeedStudent` (student + connectors, all trainable); teachers live
    in `trainer.teachers`, outside the optimizer and DDP. `save_model()` exports the bare student;
    checkpoints keep the connectors so `resume_from_checkpoint` restores them.

    Logged per logging window (averaged over steps and processes): `loss/ce`, `feed/loss` (the
    β-weighted sum), `feed/loss_t{i}` (teacher i's unweighted Eq. 2) and `loss/kd` when enabled.
    """

    # compute_loss returns a per-batch mean: the Trainer divides by gradient-accumulation steps.
    loss_is_scaled_for_ga = False
    get_decay_parameter_names = decay_parameter_names  # the Trainer's hook: weight_decay_on_all_parameters
    # What a caller may attach to the run's record (feed_hf.publishing.run_record): data facts (else derived from
    # datasets.Dataset inputs), task name, the clock wall time counts from, a CE baseline's top-1 for the card.
    data_record: dict[str, Any] | None = None
    run_task: str | None = None
    run_started: float | None = None
    card_baseline_top1: float | None = None

    def __init__(
        self,
        model: nn.Module | None = None,
        teachers: Sequence[nn.Module | str] | None = None,
        args: FeedConfig | None = None,
        class_names: Sequence[str] | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        check_trainer_arguments(teachers, args, trainer_kwargs)  # refused by name before any work (hub_strategy too)
        # As Trainer does before it builds a model: the student and connectors built below start from args.seed.
        enable_full_determinism(args.seed) if args.full_determinism else set_seed(args.seed)
        labelled = self._read_labels(args, teachers, class_names, trainer_kwargs.get("train_dataset"))
        if model is None and trainer_kwargs.get("model_init") is not None:  # probed here; re-made at each train()
            model = self._model_init_probe = probe_model_init(trainer_kwargs["model_init"])
        if model is None:
            model = create_student(args, student_num_labels(args.num_labels, self.class_names, self.label_free))
        student = model
        bare_student = student.student if isinstance(student, FeedStudent) else student
        # One resolution for student=, model=, the teachers' probes and the export (FeedConfig.input_size wins).
        first_size = pixel_values_size(trainer_kwargs.get("train_dataset"))
        resolve_student_input_size(bare_student, args.input_size, first_size, "train_dataset's pixel_values", True)
        sources = list(teachers) if teachers is not None else list(args.teachers)
        # As given (local paths included): what the output_dir checks compare; records use teacher_sources.
        self.teacher_specs = [s for s in sources if isinstance(s, str)]
        # Recorded (feed_config.json, results.json, messages): Hub ids and folder names, never a path of this machine.
        self.teacher_sources = [portable_teacher_source(s) for s in sources]
        tap = student.feature_tap if isinstance(student, FeedStudent) else None
        tap = tap or FeatureTap(bare_student, args.student_feature_index, args.student_feature_module, role="student")
        student_map_size = tuple(student_map_shape(bare_student, tap)[1:])
        self.teachers = self._build_teachers(args, sources, bare_student, student_map_size)
        self.feed_betas = betas(args, len(self.teachers)) if self.teachers else []
        if not isinstance(student, FeedStudent):
            distilled = self.teachers if any(self.feed_betas) else []
            student = build_feed_student(
                student, distilled, args.student_feature_index, args.student_feature_module, **connector_options(args)
            )
        check_labels_fit(self.class_names, student.student if isinstance(student, FeedStudent) else student)
        check_student_has_classes(student.student if isinstance(student, FeedStudent) else student, labelled)
        check_datasets(trainer_kwargs, getattr(bare_student, "num_classes", 0))  # not empty; labels < classes
        if args.should_save:  # the writer rank; the others never write there
            check_output_dir(args.output_dir)
        if args.channels_last:
            student.to(memory_format=torch.channels_last)
        trainer_kwargs.setdefault("compute_metrics", None if self.label_free else top_k_accuracy)  # else eval_loss
        check_given_optimizer(trainer_kwargs, student)
        stores = (args.cache_teacher_features or args.teacher_store) and bool(self.teachers)
        if stores and trainer_kwargs.get("train_dataset") is not None:
            if isinstance(trainer_kwargs["train_dataset"], IterableDataset):  # stores are keyed by row index
                refuse_stream_teacher_outputs(args)
            trainer_kwargs["train_dataset"] = IndexedDataset(trainer_kwargs["train_dataset"])
        super().__init__(model=student if self._model_init_probe is None else None, args=args, **trainer_kwargs)
        self.add_callback(CheckpointMarkerCallback(self.run_signature()))
        self.add_callback(ExportPushCallback(self.export))
        self._prepare_teachers_and_evaluation(trainer_kwargs, stores)
        self._loss_term_sums: dict[str, torch.Tensor] = {}
        self._loss_term_steps = 0

    def _read_labels(
        self, args: FeedConfig, teachers: Sequence[Any] | None, class_names: Sequence[str] | None, train_dataset: Any
    ) -> bool | None:
        """The run's class names and whether its train set has labels (None: unknown); label-free runs checked."""
        self.class_names = list(class_names) if class_names else _class_names(train_dataset)
        labelled = True if self.class_names else dataset_has_labels(train_dataset)
        self.label_free = labelled is False  # no label in the train set: Σβ·FEED alone (label_free.py)
        if self.label_free:
            check_label_free_setup(None, list(teachers if teachers is not None else args.teachers), args.kd_weight)
        return labelled

    def _prepare_teachers_and_evaluation(self, trainer_kwargs: dict[str, Any], stores: bool) -> None:
        """After Trainer.__init__: label-free evaluation, the teachers placed by accelerate, their outputs cached."""
        if self.label_free:
            enable_label_free_evaluation(self)
        self.teachers = place_teachers(self.accelerator, self.teachers)
        self.teacher_feature_cache = None
        if stores:  # each batch keeps its items' sample_index whatever the collator; a user's collator checked first
            self.data_collator = SampleIndexCollator(self.data_collator)
            if trainer_kwargs.get("data_collator") is not None:
                option = "teacher_store" if self.args.teacher_store else "cache_teacher_features"
                check_collator_for_teacher_outputs(self.data_collator, self.train_dataset, option)
            self.teacher_feature_cache = self._build_feature_cache()

    @staticmethod
    def _build_teachers(
        args: FeedConfig, sources: list[nn.Module | str], student: nn.Module, student_map_size: tuple[int, int]
    ) -> nn.ModuleList:
        student_data_config = resolve_model_data_config(student)
        frozen = []
        for index, source in enumerate(sources):
            module = source if isinstance(source, nn.Module) else load_teacher_model(source, args.teacher_allow_pickle)
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

    @property
    def student(self) -> nn.Module:
        """The bare student network (what is exported)."""
        return self.accelerator.unwrap_model(self.model).student

    def _build_feature_cache(self) -> TeacherFeatureCache | TeacherStore:
        if self.args.teacher_store:  # every rank builds its block, then maps the whole store
            return open_store_for(self.args, self.teachers, self.train_dataset, self.accelerator.wait_for_everyone)
        return TeacherFeatureCache.build(  # sharded like the store: each rank its block, then gathered
            self.teachers,
            self.train_dataset,
            self.args.per_device_eval_batch_size,
            self.args.device,
            with_logits=self.args.kd_weight > 0,
            rank=self.args.process_index,
            world_size=self.args.world_size,
            gather=self.accelerator.gather,
        )

    def teacher_outputs(self, pixel_values: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each teacher's feature map (and logits when KD is on), one teacher after another, no autograd."""
        with_logits = self.args.kd_weight > 0
        outputs = [teacher(pixel_values, with_logits=with_logits) for teacher in self.teachers]
        return [feature_map for feature_map, _ in outputs], [logits for _, logits in outputs if logits is not None]

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        pixel_values, labels = inputs["pixel_values"], inputs.get("labels")  # no labels: label-free FEED
        if self.args.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        if not model.training:  # evaluation: the student alone, no teachers (label-free: its FEED distances)
            loss, outputs = evaluation_loss(self, model, pixel_values, labels)
            return (loss, outputs) if return_outputs else loss
        check_pixel_values_once(self, pixel_values)  # first batch only: warns on another normalisation
        replays = self.teacher_feature_cache is not None and self.args.teacher_store  # the store's own crops
        if self.args.batch_augmentation != "none" and not replays:
            pixel_values = random_crop_flip(
                pixel_values, self.args.batch_augmentation_padding, flip=self.args.batch_augmentation == "crop_flip"
            )
        if self.teacher_feature_cache is not None:
            pixel_values, teacher_maps, teacher_logits = self.teacher_feature_cache.replay(
                pixel_values, inputs["sample_index"]
            )
        else:
            teacher_maps, teacher_logits = self.teacher_outputs(pixel_values)
            check_teacher_maps_once(self, teacher_maps)  # a teacher with NaN/Inf maps stops before the first update
        outputs = model(pixel_values)
        loss, terms = cross_entropy_term(outputs.logits, labels, self.args.label_smoothing_factor)
        if outputs.connected_feature_maps:
            weighted_feed, per_teacher = feed_loss(
                outputs.connected_feature_maps,
                teacher_maps,
                self.feed_betas,
                self.args.feed_p,
                self.args.feed_reduction,
            )
            loss = loss + weighted_feed
            terms["feed/loss"] = weighted_feed
            terms.update({f"feed/loss_t{index}": distance for index, distance in enumerate(per_teacher)})
        if self.args.kd_weight > 0:
            kd = ensemble_kd_loss(outputs.logits, teacher_logits, self.args.kd_temperature)
            loss = loss + self.args.kd_weight * kd
            terms["loss/kd"] = kd
        if self.args.stop_on_nonfinite_loss:
            self._stop_if_nonfinite(loss, terms)
        self._accumulate_loss_terms(terms)
        return (loss, outputs) if return_outputs else loss

    def _stop_if_nonfinite(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        # One host sync per step (the Trainer's own logging_nan_inf_filter already makes one): raising
        # here, before backward and the optimizer step, keeps NaN weights out of every checkpoint.
        values = torch.stack([loss.detach().float(), *(t.detach().float() for t in terms.values())])
        if bool(torch.isfinite(values).all()):
            return
        bad = [
            _describe_term(name, self.teacher_sources)
            for name, value in zip(terms, values[1:].tolist(), strict=True)
            if not math.isfinite(value)
        ]
        raise FloatingPointError(
            f"non-finite loss at step {self.state.global_step + 1}: {', '.join(bad) or 'loss'}; training stopped "
            "before this step's update, so no checkpoint holds its weights. Lower learning_rate or feed_beta, "
            "or check the data and the named teacher's checkpoint."
        )

    def _accumulate_loss_terms(self, terms: dict[str, torch.Tensor]) -> None:
        # Detached device tensors, summed on device: no host sync until a logging step.
        for name, value in terms.items():
            self._loss_term_sums[name] = self._loss_term_sums.get(name, 0) + value.detach()
        self._loss_term_steps += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._loss_term_steps:
            names = list(self._loss_term_sums)
            means = torch.stack([self._loss_term_sums[name] for name in names]) / self._loss_term_steps
            means = self.accelerator.reduce(means, reduction="mean")
            logs.update(dict(zip(names, means.tolist(), strict=True)))
            self._loss_term_sums, self._loss_term_steps = {}, 0
        super().log(logs, start_time)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer (or the one set on `trainer.optimizer`), refused if it misses the connectors."""
        optimizer = super().create_optimizer(model)
        check_optimizer_holds_connectors(optimizer, self.model if model is None else model, "trainer.optimizer")
        return optimizer

    def _set_signature_columns_if_needed(self) -> None:
        # remove_unused_columns=True keeps forward's arguments; sample_index (the teacher outputs' key) is kept too.
        super()._set_signature_columns_if_needed()
        if "sample_index" not in self._signature_columns:
            self._signature_columns.append("sample_index")

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """`lr_decay_epochs` (CIFAR's ×0.1 at epochs 150 and 225) as a MultiStepLR; else the Trainer's schedule."""
        if not self.args.lr_decay_epochs:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            steps_per_epoch = num_training_steps / self.args.num_train_epochs
            milestones = [round(epoch * steps_per_epoch) for epoch in self.args.lr_decay_epochs]
            self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
                optimizer if optimizer is not None else self.optimizer, milestones, gamma=self.args.lr_decay_rate
            )
        return self.lr_scheduler

    def run_signature(self) -> dict[str, Any]:
        """What a checkpoint of this run records, so that resuming another kind of run is refused by name."""
        feed_student = self.accelerator.unwrap_model(self.model) if hasattr(self, "accelerator") else self.model
        return {
            "student": feed_student.student.pretrained_cfg.get("architecture", type(feed_student.student).__name__),
            "num_classes": getattr(feed_student.student, "num_classes", None),
            "student_feature": [self.args.student_feature_index, self.args.student_feature_module],
            "connector": connector_options(self.args),
            "teachers": [teacher.name for teacher in self.teachers],
            "teacher_feature_shapes": [list(teacher.feature_shape) for teacher in self.teachers],
        }

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        # The Trainer loads a non-PreTrainedModel checkpoint with strict=False and only logs missing keys:
        # resuming with other connectors or another student would silently start half fresh. Refuse instead.
        shapes = {k: list(v.shape) for k, v in self.accelerator.unwrap_model(self.model).state_dict().items()}
        check_resume_compatible(resume_from_checkpoint, self.run_signature(), shapes, self.args.teacher_allow_pickle)
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None, **kwargs: Any) -> Any:
        """Trainer.train, then the student's export to `output_dir`: a finished training always leaves a model.

        Refused before any step when `output_dir` is a teacher's folder, or holds an export and neither
        `overwrite_output_dir` nor `resume_from_checkpoint` is set. A `hyperparameter_search` trial exports
        its student to the trial's folder, `output_dir/run-<id>` (the Trainer's, where its checkpoints go).
        """
        export_dir = self._get_output_dir(trial)
        if self.args.should_save:
            resuming = resume_from_checkpoint not in (None, False, "", "False", "false")
            check_export_target(export_dir, self.teacher_specs, self.args.overwrite_output_dir, resuming)
        self.check_export_possible(export_dir)  # the export's folders and room, before the first step
        self.log_run_summary()  # the student's input size and what each teacher is fed
        output = super().train(resume_from_checkpoint, trial, **kwargs)
        self.export_after_training(export_dir)  # a fallback folder, named, if output_dir fails after all
        return output


def _class_names(dataset: Any) -> list[str] | None:
    features = getattr(dataset, "features", None) or {}
    for column in ("labels", "label"):
        names = getattr(features.get(column), "names", None)
        if names:
            return list(names)
    return None


def _describe_term(name: str, teacher_sources: list[str]) -> str:
    if name.startswith("feed/loss_t"):
        index = int(name.removeprefix("feed/loss_t"))
        return f"{name} (teacher {index}: {teacher_sources[index]})"
    return name
