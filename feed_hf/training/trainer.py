"""FeedTrainer: transformers' Trainer whose loss is parallel FEED (Eq. 1) and whose export is the student."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import torch
from huggingface_hub import CommitInfo
from torch import nn
from torch.utils.data import IterableDataset
from transformers import Trainer, enable_full_determinism, set_seed

from ..data.label_range import check_datasets
from ..data.pixel_values import check_pixel_values_once
from ..data.streams import refuse_stream_teacher_outputs
from ..data.transforms import random_crop_flip
from ..evaluation.metrics import top_k_accuracy
from ..method.features import FeatureTap
from ..method.losses import ensemble_kd_loss
from ..method.modeling import FeedStudent, bare_student, build_feed_student, student_map_shape
from ..publishing.local_checkpoints import save_linked_checkpoint
from ..publishing.portable import portable_teacher_source
from ..publishing.student_export import StudentExporter
from ..publishing.trainer_hub import CARD_KEYWORDS, HubPublisher
from ..store.cache import IndexedDataset
from ..teachers.forwards import TeacherForwardCounter
from .agglomeration import attach_summary_connectors, feed_terms, fit_teacher_balances, teacher_targets
from .checkpoints import CheckpointMarkerCallback, check_resume_compatible, run_signature
from .collators import SampleIndexCollator, check_collator_for_teacher_outputs
from .config.feed_config import FeedConfig
from .config.readouts import betas, connector_options
from .distributed import place_teachers
from .hub_callbacks import ExportPushCallback
from .label_free import (
    check_student_has_classes,
    cross_entropy_term,
    enable_label_free_evaluation,
    evaluation_loss,
    student_num_labels,
)
from .model_init import FreshStudents, probe_model_init
from .resolution import pixel_values_size, resolve_student_input_size
from .run_checks import (
    check_export_target,
    check_finite_loss,
    check_labels_fit,
    check_output_dir,
    check_teacher_maps_once,
)
from .run_setup import build_feature_cache, build_teachers, read_labels
from .students import create_student
from .trainer_arguments import check_given_optimizer, check_optimizer_holds_connectors, check_trainer_arguments
from .weight_decay import decay_parameter_names

__all__ = ["FeedTrainer", "create_student"]

logger = logging.getLogger(__name__)


class FeedTrainer(Trainer):
    """Trains a student with CE + Σ_n β_n·L_FEED_n (+ optional logit KD) from frozen teachers.

    `FeedTrainer(args=FeedConfig(student=..., teachers=[...]), train_dataset=...)` builds everything from the
    config; `FeedTrainer(model=timm_student, teachers=[module, ...], args=...)` takes modules. `trainer.model` is a
    `FeedStudent` (student + connectors, all trainable); teachers live in `trainer.teachers`, outside the optimizer
    and DDP. `save_model()` exports the bare student; checkpoints keep the connectors for `resume_from_checkpoint`.

    Logged per logging window (averaged over steps and processes): `loss/ce`, `feed/loss` (the β-weighted sum),
    `feed/loss_t{i}` (teacher i's unweighted Eq. 2), `loss/kd` when enabled, and with `feed_summary_weight`
    `feed/summary` and `feed/summary_t{i}` (training/agglomeration.py).

    Collaborators it holds: `exporter` (the export, its record and card: publishing/student_export.py), `hub`
    (card facts and pushes: publishing/trainer_hub.py) and `fresh_students` (model_init: training/model_init.py).
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
        self.class_names, labelled = read_labels(args, teachers, class_names, trainer_kwargs.get("train_dataset"))
        self.label_free = labelled is False  # no label in the train set: Σβ·FEED alone (label_free.py)
        student = self._student(model, args, trainer_kwargs)
        self._take_teachers(list(teachers) if teachers is not None else list(args.teachers), student, args)
        student = self._connect(student, args)
        self._check_run(student, labelled, args, trainer_kwargs)
        stores = self._key_rows_for_stores(args, trainer_kwargs)
        self.exporter, self.hub = StudentExporter(self), HubPublisher(self)
        super().__init__(model=student if self.fresh_students.probe is None else None, args=args, **trainer_kwargs)
        self.add_callback(CheckpointMarkerCallback(self._run_signature()))
        self.add_callback(ExportPushCallback(self.export))
        self._prepare_teachers_and_evaluation(trainer_kwargs, stores)
        self._loss_term_sums: dict[str, torch.Tensor] = {}
        self._loss_term_steps = 0

    def _student(self, model: nn.Module | None, args: FeedConfig, trainer_kwargs: dict[str, Any]) -> nn.Module:
        """The student as given, from `model_init` (a probe; re-made at each train()) or built from the config, at
        the one input size student=, model=, the teachers' probes and the export share (FeedConfig.input_size wins)."""
        probe = None
        if model is None and trainer_kwargs.get("model_init") is not None:
            model = probe = probe_model_init(trainer_kwargs["model_init"])
        self.fresh_students = FreshStudents(probe)
        if model is None:
            model = create_student(args, student_num_labels(args.num_labels, self.class_names, self.label_free))
        first_size = pixel_values_size(trainer_kwargs.get("train_dataset"))
        resolve_student_input_size(
            bare_student(model), args.input_size, first_size, "train_dataset's pixel_values", True
        )
        return model

    def _take_teachers(self, sources: list[nn.Module | str], student: nn.Module, args: FeedConfig) -> None:
        """The teachers, frozen and fed to compare at the student's map size, and one β per teacher."""
        # As given (local paths included): what the output_dir checks compare; records use teacher_sources.
        self.teacher_specs = [s for s in sources if isinstance(s, str)]
        # Recorded (feed_config.json, results.json, messages): Hub ids and folder names, never a path of this machine.
        self.teacher_sources = [portable_teacher_source(s) for s in sources]
        bare = bare_student(student)
        tap = student.feature_tap if isinstance(student, FeedStudent) else None
        tap = tap or FeatureTap(bare, args.student_feature_index, args.student_feature_module, role="student")
        self.teachers = build_teachers(args, sources, bare, tuple(student_map_shape(bare, tap)[1:]))
        self.feed_betas = betas(args, len(self.teachers)) if self.teachers else []

    def _connect(self, student: nn.Module, args: FeedConfig) -> FeedStudent:
        """The FeedStudent: the student and one fresh connector per distilled teacher (none when every β is 0)."""
        if not isinstance(student, FeedStudent):
            distilled = self.teachers if any(self.feed_betas) else []
            student = build_feed_student(
                student, distilled, args.student_feature_index, args.student_feature_module, **connector_options(args)
            )
        attach_summary_connectors(student, self.teachers, args)  # none unless feed_summary_weight > 0
        return student

    def _check_run(
        self, student: FeedStudent, labelled: bool | None, args: FeedConfig, trainer_kwargs: dict[str, Any]
    ) -> None:
        """Labels, datasets, output_dir and a given optimizer checked; channels_last and the metrics set."""
        check_labels_fit(self.class_names, bare_student(student))
        check_student_has_classes(bare_student(student), labelled)
        check_datasets(trainer_kwargs, getattr(bare_student(student), "num_classes", 0))  # not empty; labels < classes
        if args.should_save:  # the writer rank; the others never write there
            check_output_dir(args.output_dir)
        if args.channels_last:
            student.to(memory_format=torch.channels_last)
        trainer_kwargs.setdefault("compute_metrics", None if self.label_free else top_k_accuracy)  # else eval_loss
        check_given_optimizer(trainer_kwargs, student)

    def _key_rows_for_stores(self, args: FeedConfig, trainer_kwargs: dict[str, Any]) -> bool:
        """Whether teacher outputs come from a store or cache; if so, the train set's rows carry their index."""
        stores = (args.cache_teacher_features or args.teacher_store) and bool(self.teachers)
        if stores and trainer_kwargs.get("train_dataset") is not None:
            if isinstance(trainer_kwargs["train_dataset"], IterableDataset):  # stores are keyed by row index
                refuse_stream_teacher_outputs(args)
            trainer_kwargs["train_dataset"] = IndexedDataset(trainer_kwargs["train_dataset"])
        return stores

    def _prepare_teachers_and_evaluation(self, trainer_kwargs: dict[str, Any], stores: bool) -> None:
        """After Trainer.__init__: label-free evaluation, the teachers placed by accelerate, their outputs cached."""
        if self.label_free:
            enable_label_free_evaluation(self)
        self.teachers = place_teachers(self.accelerator, self.teachers)
        self.teacher_forwards = TeacherForwardCounter(self.teachers)  # results.json: teacher_forwards
        self.teacher_feature_cache = None
        if stores:  # each batch keeps its items' sample_index whatever the collator; a user's collator checked first
            self.data_collator = SampleIndexCollator(self.data_collator)
            if trainer_kwargs.get("data_collator") is not None:
                option = "teacher_store" if self.args.teacher_store else "cache_teacher_features"
                check_collator_for_teacher_outputs(self.data_collator, self.train_dataset, option)
            self.teacher_feature_cache = build_feature_cache(self)
        fit_teacher_balances(self)  # feed_balance: once, before training; nothing for "none"

    @property
    def student(self) -> nn.Module:
        """The bare student network (what is exported)."""
        return self.accelerator.unwrap_model(self.model).student

    def teacher_outputs(self, pixel_values: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each teacher's feature map (and logits when KD is on), no autograd (summaries too: `teacher_targets`)."""
        targets = teacher_targets(self, pixel_values)
        return targets.maps, targets.logits

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
        if self.teacher_feature_cache is not None:  # maps, logits and summaries read back, with the views they saw
            pixel_values, targets = self.teacher_feature_cache.replay(pixel_values, inputs["sample_index"])
        else:
            targets = teacher_targets(self, pixel_values)
            check_teacher_maps_once(self, targets.maps)  # a teacher with NaN/Inf maps stops before the first update
        teacher_maps, teacher_logits, teacher_summaries = targets
        outputs = model(pixel_values)
        loss, terms = cross_entropy_term(outputs.logits, labels, self.args.label_smoothing_factor)
        if outputs.connected_feature_maps:  # Σβ·FEED (+ summary terms), agglomeration.py
            weighted_feed, feed_log = feed_terms(self, model, outputs, teacher_maps, teacher_summaries)
            loss, terms = loss + weighted_feed, {**terms, **feed_log}
        if self.args.kd_weight > 0:
            kd = ensemble_kd_loss(outputs.logits, teacher_logits, self.args.kd_temperature)
            loss = loss + self.args.kd_weight * kd
            terms["loss/kd"] = kd
        if self.args.stop_on_nonfinite_loss:
            check_finite_loss(loss, terms, self.state.global_step + 1, self.teacher_sources)
        self._accumulate_loss_terms(terms)
        return (loss, outputs) if return_outputs else loss

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

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        # The Trainer loads a non-PreTrainedModel checkpoint with strict=False and only logs missing keys:
        # resuming with other connectors or another student would silently start half fresh. Refuse instead.
        shapes = {k: list(v.shape) for k, v in self.accelerator.unwrap_model(self.model).state_dict().items()}
        check_resume_compatible(resume_from_checkpoint, self._run_signature(), shapes, self.args.teacher_allow_pickle)
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
        self.exporter.check_export_possible(export_dir)  # the export's folders and room, before the first step
        self.exporter.log_run_summary()  # the student's input size and what each teacher is fed
        output = super().train(resume_from_checkpoint, trial, **kwargs)
        self.teacher_forwards.sum_over_processes(self.accelerator)  # every process, before the record is written
        self.exporter.export_after_training(export_dir)  # a fallback folder, named, if output_dir fails after all
        return output

    def _run_signature(self) -> dict[str, Any]:
        """What a checkpoint of this run records, so that resuming another kind of run is refused by name."""
        return run_signature(self.accelerator.unwrap_model(self.model), self.args, self.teachers)

    # -- the Trainer's methods whose work FEED's collaborators do -------------------------------------------

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """A fresh student from `model_init` (once per train(), so per trial) with fresh connectors."""
        searching = getattr(self, "hp_search_backend", None) is not None  # unset while Trainer.__init__ runs
        student = super().call_model_init(trial)
        return self.fresh_students.connect(student, self.teachers, self.feed_betas, self.args, searching)

    def _hp_search_setup(self, trial: Any) -> None:
        trial_betas = self.fresh_students.setup_trial(self, trial, super()._hp_search_setup)
        if trial_betas is not None:
            self.feed_betas = trial_betas

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """User calls export the bare student (`export`) and, with `push_to_hub`, push as `Trainer.save_model`
        does; the Trainer's own checkpoints keep the whole FeedStudent."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call=True)
        self.export(output_dir)
        if self.args.push_to_hub:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """The Trainer's checkpoint, written into the output folder's local store and linked as `checkpoint-N`
        (`feed_hf.publishing.local_checkpoints`): resumable as ever, never taken by a plain upload of the folder."""
        save_linked_checkpoint(self, lambda: super(FeedTrainer, self)._save_checkpoint(model, trial), trial)

    def export(self, output_dir: str | None = None) -> None:
        """The bare student, its record and card written to `output_dir` as a whole (`StudentExporter.export`)."""
        self.exporter.export(output_dir)

    def write_record(self, output_dir: str | None = None, failures: list[str] | None = None) -> list[str]:
        """results.json + card of the export in `output_dir` from this trainer's state; `failures` + a failed card."""
        return self.exporter.write_record(output_dir, failures)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Trainer.evaluate; after this trainer exported (and outside training), the export's record and card are
        rewritten with the metrics, so a save or push that follows carries them."""
        metrics = super().evaluate(*args, **kwargs)
        if self.exporter.exported_to is not None and not self.is_in_train:
            self.write_record(self.exporter.exported_to)
        return metrics

    def create_model_card(
        self,
        language: str | list[str] | None = None,
        license: str | None = None,  # noqa: A002 - Trainer.create_model_card's own name
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Trainer.create_model_card for FEED: the facts join the run's record and the FEED card of the export in
        `output_dir` is rendered again with them. Without an export yet, they wait for the one training writes."""
        self.hub.create_model_card({key: value for key, value in locals().items() if key in CARD_KEYWORDS})

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> CommitInfo | Future | None:
        """Export the bare student to `output_dir` (if not already there) and push it to `args.hub_model_id`.

        The repo gets `config.json` + `model.safetensors` (timm), `feed_config.json`, `results.json`, a
        processing_class's files and the FEED card; connectors only with `push_connectors`. `kwargs` are
        `create_model_card`'s (licence, tags, …): they are on the pushed card. `blocking=False` returns a
        `Future` of the commit, as the Trainer does; pushes the Trainer made during training finish first.
        """
        return self.hub.push(commit_message, blocking, token, revision, private, kwargs)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # Trainer checkpoints hold the whole FeedStudent (connectors included) in a non-timm layout: never
        # pushed. `hub_strategy="every_save"` pushes the exported student instead (feed_hf.training.hub_callbacks).
        return
