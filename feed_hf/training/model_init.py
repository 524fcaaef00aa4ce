"""FeedTrainer's `model_init`: a fresh student and fresh connectors per `train()`, so per search trial."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

import torch
from timm.data import resolve_model_data_config
from torch import nn
from transformers.trainer_utils import number_of_arguments

from ..method.modeling import FeedStudent, build_feed_student
from .agglomeration import attach_summary_connectors
from .config.checks import check_feed_config
from .config.readouts import betas, connector_options
from .resolution import set_student_input_size

__all__ = ["FreshStudents", "probe_model_init"]


def probe_model_init(model_init: Callable[..., nn.Module]) -> nn.Module:
    """One student from `model_init` (no trial), as the Trainer calls it: FeedTrainer probes its feature map."""
    return model_init() if number_of_arguments(model_init) == 0 else model_init(None)


class FreshStudents:
    """What `FeedTrainer(model_init=...)` and `hyperparameter_search` need: a fresh FeedStudent per `train()`.

    The Trainer calls `call_model_init` at every `train()` (so once per trial), after seeding from `args.seed`;
    `connect` wraps the student model_init returns in a FeedStudent with freshly initialised connectors, at the
    input size FeedTrainer.__init__ resolved on its probe. Teachers are built once, in `__init__`. The trial's
    values (`learning_rate`, `feed_beta`, …) reach `args` after the model is made (`setup_trial`); β is then re-read
    from them, so during a search every teacher gets a connector whatever β the previous trial left in `args`.
    """

    def __init__(self, probe: nn.Module | None = None) -> None:
        self.probe = probe  # FeedTrainer.__init__'s student from model_init (sizes, teachers); None once read
        self._input_size: tuple[int, int] | None = None

    def connect(
        self, student: nn.Module, teachers: nn.ModuleList, feed_betas: list[float], args: Any, searching: bool
    ) -> nn.Module:
        """`student` (from model_init) at the resolved input size, with a fresh connector per distilled teacher."""
        if isinstance(student, FeedStudent):  # the caller built its own connectors
            return student
        if (size := self.input_size()) is not None:
            set_student_input_size(student, size)
        distilled = teachers if searching or any(feed_betas) else []
        feed_student = build_feed_student(
            student, distilled, args.student_feature_index, args.student_feature_module, **connector_options(args)
        )
        attach_summary_connectors(feed_student, teachers, args)  # none unless feed_summary_weight > 0
        return feed_student.to(memory_format=torch.channels_last) if args.channels_last else feed_student

    def input_size(self) -> tuple[int, int] | None:
        """The H×W FeedTrainer.__init__ resolved on its probe (input_size, data, cfg): every trial's student gets it."""
        if self.probe is not None:
            self._input_size = tuple(resolve_model_data_config(self.probe)["input_size"][1:])
            self.probe = None  # only its size is kept
        return self._input_size

    @staticmethod
    def setup_trial(trainer: Any, trial: Any, trainer_setup: Callable[[Any], None]) -> list[float] | None:
        """Trainer._hp_search_setup (`trainer_setup`) with `feed_beta` suggested as one number read as [number];
        returns the trial's β per teacher (None outside a search: nothing changed)."""
        if trial is None or getattr(trainer, "hp_search_backend", None) is None:
            trainer_setup(trial)
            return None
        hp_space = trainer.hp_space
        trainer.hp_space = lambda optuna_trial: _beta_as_list(hp_space(optuna_trial))
        try:
            trainer_setup(_beta_as_list(trial) if isinstance(trial, dict) else trial)
        finally:
            trainer.hp_space = hp_space
        check_feed_config(trainer.args)  # the trial's values, checked as FeedConfig checks the user's
        return betas(trainer.args, len(trainer.teachers)) if trainer.teachers else []


def _beta_as_list(params: dict[str, Any]) -> dict[str, Any]:
    beta = params.get("feed_beta")
    return {**params, "feed_beta": [float(beta)]} if isinstance(beta, Real) else params
