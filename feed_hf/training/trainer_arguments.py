"""The Trainer arguments FeedTrainer cannot honour as transformers does, refused by name before any work.

docs/trainer_contract.md lists every `Trainer.__init__` argument and every `TrainingArguments` field FEED changes;
the ones refused here are those whose transformers meaning would silently not hold for a FEED run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import TrainingArguments

from .config.feed_config import FeedConfig
from .distributed import check_distributed_backend
from .hub_callbacks import check_hub_strategy

__all__ = [
    "REFUSED_OPTIONS",
    "check_given_optimizer",
    "check_optimizer_holds_connectors",
    "check_trainer_arguments",
    "check_trainer_call",
    "check_training_options",
]

# TrainingArguments fields (aliases together) -> why a FEED run cannot honour them, and what to do instead.
REFUSED_OPTIONS = {
    ("activation_checkpointing", "gradient_checkpointing"): "FEED reads the student's feature map through timm's "
    "forward_features / forward_intermediates, which most timm models run without checkpointing, so memory would "
    "not be saved as asked; lower per_device_train_batch_size and raise gradient_accumulation_steps instead",
    ("neftune_noise_alpha",): "NEFTune adds noise to a language model's input embeddings; a timm student has none. "
    "Leave it unset",
    ("use_liger_kernel",): "Liger kernels replace layers of transformers language models; a timm student has none. "
    "Leave it False",
}


def check_trainer_arguments(teachers: Any, args: Any, trainer_kwargs: dict[str, Any]) -> None:
    """Everything FeedTrainer refuses of its call, its TrainingArguments, its distributed backend, hub_strategy."""
    check_trainer_call(teachers, args)
    check_training_options(args, trainer_kwargs)
    check_distributed_backend(args)
    check_hub_strategy(args)


def check_trainer_call(teachers: Any, args: Any) -> None:
    """Refuse transformers' `Trainer(model, args)` order (FeedTrainer's is `model, teachers, args`) and other args."""
    if isinstance(teachers, TrainingArguments):
        raise TypeError(
            "FeedTrainer's second positional argument is `teachers` (transformers' Trainer takes `args` there), "
            f"but it got a {type(teachers).__name__}; pass the config by keyword: FeedTrainer(model, args=config, "
            "...), or FeedTrainer(model, teachers, config, ...)"
        )
    if not isinstance(args, FeedConfig):
        plain = isinstance(args, TrainingArguments)
        hint = " (a TrainingArguments: FeedConfig takes all of its fields)" if plain else ""
        raise TypeError(f"FeedTrainer needs args=FeedConfig(...), got {type(args).__name__}{hint}")


def check_training_options(args: Any, trainer_kwargs: dict[str, Any]) -> None:
    """Refuse the TrainingArguments fields and Trainer arguments a FEED run would silently not honour."""
    for names, why in REFUSED_OPTIONS.items():
        value = next((getattr(args, name) for name in names if getattr(args, name, None)), None)
        if value:
            raise ValueError(f"{' / '.join(names)}={value!r} is not supported by FeedTrainer: {why}")
    if trainer_kwargs.get("compute_loss_func") is not None:
        raise ValueError(
            "compute_loss_func is not supported by FeedTrainer: its loss is Eq. 1 (CE + Σβ·FEED [+ KD]), computed in "
            "FeedTrainer.compute_loss; set label_smoothing_factor, feed_beta or kd_weight, or subclass FeedTrainer "
            "and override compute_loss (calling super()) to change it"
        )


def check_given_optimizer(trainer_kwargs: dict[str, Any], model: nn.Module) -> None:
    """`optimizers=(optimizer, scheduler)` checked against FeedTrainer's model (model_init: the Trainer refuses it)."""
    if trainer_kwargs.get("model_init") is None:
        optimizer = (trainer_kwargs.get("optimizers") or (None, None))[0]
        check_optimizer_holds_connectors(optimizer, model, "optimizers=(optimizer, scheduler)'s optimizer")


def check_optimizer_holds_connectors(optimizer: torch.optim.Optimizer | None, model: nn.Module, where: str) -> None:
    """Refuse an optimizer that does not hold the trainable connector parameters FeedTrainer created.

    A user's optimizer is built before FeedTrainer creates the connectors; without them FEED would pull through
    frozen random connectors. The student's own parameters are the user's choice, as in transformers.
    """
    if optimizer is None:
        return
    held = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    missing = [
        name
        for name, parameter in model.named_parameters()
        if name.startswith("connectors.") and parameter.requires_grad and id(parameter) not in held
    ]
    if not missing:
        return
    connectors = sorted({".".join(name.split(".")[:2]) for name in missing})
    count = sum(parameter.numel() for name, parameter in model.named_parameters() if name in set(missing))
    raise ValueError(
        f"{where} does not hold the parameters of the connectors FeedTrainer created ({', '.join(connectors)}: "
        f"{len(missing)} tensors, {count:,} values), so they would stay at their random initialisation. Pass "
        "optimizer_cls_and_kwargs=(torch.optim.SGD, {...}) instead (the Trainer builds it over trainer.model), "
        "or build the optimizer over trainer.model.parameters() after FeedTrainer(...) and set trainer.optimizer "
        "(and trainer.lr_scheduler) before train()"
    )
