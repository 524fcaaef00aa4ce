"""FEED under accelerate: the teachers placed by `prepare_model` in evaluation mode, and the backends refused.

Every rank holds a full copy of each frozen teacher, placed as TRL places its teacher:
`accelerator.prepare_model(teacher, evaluation_mode=True)` (the accelerator's device, its mixed-precision autocast;
never DDP: a teacher has nothing to synchronise). `teacher_dtype` still decides the precision the teacher computes
in (its own autocast region is the inner one), and `compile_teachers`, not `torch_compile`, decides whether it is
compiled. The student and its connectors are the Trainer's model, under DDP on several processes.

FSDP, DeepSpeed, Megatron-LM and `parallelism_config` (tensor/context parallelism) would shard the student and
connectors in a layout FeedTrainer does not handle (its checkpoints, export and the teachers' replication assume
whole modules): they are refused by name before anything is built, whether asked for by `TrainingArguments` or by
an accelerate config (`accelerate launch --config_file`).
"""

from __future__ import annotations

import os
from typing import Any

from accelerate.utils import is_compiled_module
from torch import nn

__all__ = ["check_distributed_backend", "place_teachers"]

_ACCELERATE_FLAGS = {  # what `accelerate launch` sets from an accelerate config
    "ACCELERATE_USE_FSDP": "FSDP",
    "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
    "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM",
}


def check_distributed_backend(args: Any) -> None:
    """Refuse FSDP, DeepSpeed, Megatron-LM and parallelism_config, from TrainingArguments or accelerate's launcher."""
    asked = []
    if getattr(args, "fsdp", None):
        asked.append(f"fsdp={args.fsdp!r}")
    if getattr(args, "deepspeed", None):
        asked.append(f"deepspeed={args.deepspeed!r}")
    if getattr(args, "parallelism_config", None) is not None:
        asked.append("parallelism_config")
    asked += [
        f"{backend} (accelerate config, {flag}=true)"
        for flag, backend in _ACCELERATE_FLAGS.items()
        if os.environ.get(flag, "false").lower() in ("1", "true", "yes")
    ]
    if asked:
        raise ValueError(
            f"{', '.join(asked)}: FeedTrainer supports one process or DDP (frozen teachers replicated on every rank, "
            "student and connectors under DistributedDataParallel), not sharded or parallelised backends; launch "
            "with a DDP accelerate config (e.g. recipes/accelerate_configs/multi_gpu_bf16.yaml) and drop "
            "--fsdp/--deepspeed"
        )


def place_teachers(accelerator: Any, teachers: nn.ModuleList) -> nn.ModuleList:
    """Each teacher through `accelerator.prepare_model(teacher, evaluation_mode=True)`, never compiled by it."""
    placed = []
    for teacher in teachers:
        prepared = accelerator.prepare_model(teacher, evaluation_mode=True)
        # torch_compile compiles the student; compile_teachers decides for the teachers (hook taps cannot compile).
        placed.append(prepared._orig_mod if is_compiled_module(prepared) else prepared)
    return nn.ModuleList(placed).eval()
