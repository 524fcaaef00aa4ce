"""Which parameters `weight_decay` applies to: the Trainer's set, or all of them as the FEED reference code does."""

from __future__ import annotations

from torch import nn
from transformers import Trainer

__all__ = ["decay_parameter_names"]


def decay_parameter_names(trainer: Trainer, model: nn.Module) -> list[str]:
    """`Trainer.get_decay_parameter_names` for a trainer whose args may set `weight_decay_on_all_parameters`.

    True: every parameter of `model` (biases, BatchNorm γ and β, the connectors), as
    `torch.optim.SGD(model.parameters(), weight_decay=...)` in the Factor Transfer / FEED code. False (or args
    without the field): the Trainer's set, which leaves out biases (BatchNorm β among them) and LayerNorm weights.
    """
    if getattr(trainer.args, "weight_decay_on_all_parameters", False):
        return [name for name, _ in model.named_parameters()]
    return Trainer.get_decay_parameter_names(trainer, model)
