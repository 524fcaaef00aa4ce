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
from .config.checks import check_feed_config
from .config.readouts import betas, connector_options
from .resolution import set_student_input_size

__all__ = ["ModelInitMixin", "probe_model_init"]


def probe_model_init(model_init: Callable[..., nn.Module]) -> nn.Module:
    """One student from `model_init` (no trial), as the Trainer calls it: FeedTrainer probes its feature map."""
    return model_init() if number_of_arguments(model_init) == 0 else model_init(None)


class ModelInitMixin:
    """Trainer overrides behind `FeedTrainer(model_init=...)` and `hyperparameter_search`.

    The Trainer calls `call_model_init` at every `train()` (so once per trial), after seeding from `args.seed`;
    the student model_init returns is wrapped in a FeedStudent with freshly initialised connectors. Teachers are
    built once, in `__init__`. The trial's values (`learning_rate`, `feed_beta`, …) reach `args` after the model
    is made (`_hp_search_setup`); β is then re-read from them, so during a search every teacher gets a connector
    whatever β the previous trial left in `args`.
    """

    args: Any
    teachers: nn.ModuleList
    feed_betas: list[float]
    hp_space: Callable[[Any], dict[str, Any]]
    _model_init_probe: nn.Module | None = None  # FeedTrainer.__init__'s student from model_init (sizes, teachers)
    _model_init_input_size: tuple[int, int] | None = None

    def call_model_init(self, trial: Any = None) -> nn.Module:
        student = super().call_model_init(trial)  # type: ignore[misc]
        if isinstance(student, FeedStudent):  # the caller built its own connectors
            return student
        if (size := self._resolved_input_size()) is not None:
            set_student_input_size(student, size)
        searching = getattr(self, "hp_search_backend", None) is not None  # unset while Trainer.__init__ runs
        distilled = self.teachers if searching or any(self.feed_betas) else []
        args = self.args
        feed_student = build_feed_student(
            student, distilled, args.student_feature_index, args.student_feature_module, **connector_options(args)
        )
        return feed_student.to(memory_format=torch.channels_last) if args.channels_last else feed_student

    def _resolved_input_size(self) -> tuple[int, int] | None:
        # The H×W FeedTrainer.__init__ resolved on its probe (input_size, data, cfg): every trial's student gets it.
        if self._model_init_probe is not None:
            self._model_init_input_size = tuple(resolve_model_data_config(self._model_init_probe)["input_size"][1:])
            self._model_init_probe = None  # only its size is kept
        return self._model_init_input_size

    def _hp_search_setup(self, trial: Any) -> None:
        if trial is None or getattr(self, "hp_search_backend", None) is None:
            return super()._hp_search_setup(trial)  # type: ignore[misc]
        # feed_beta is a list (one β per teacher); a search space suggests one number: it is read as [number].
        hp_space = self.hp_space
        self.hp_space = lambda optuna_trial: _beta_as_list(hp_space(optuna_trial))
        try:
            super()._hp_search_setup(_beta_as_list(trial) if isinstance(trial, dict) else trial)  # type: ignore[misc]
        finally:
            self.hp_space = hp_space
        check_feed_config(self.args)  # the trial's values, checked as FeedConfig checks the user's
        self.feed_betas = betas(self.args, len(self.teachers)) if self.teachers else []


def _beta_as_list(params: dict[str, Any]) -> dict[str, Any]:
    beta = params.get("feed_beta")
    return {**params, "feed_beta": [float(beta)]} if isinstance(beta, Real) else params
