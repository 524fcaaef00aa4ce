"""Trainer checkpoints kept out of what a plain upload of the output folder takes.

A FEED checkpoint holds the connectors, the optimizer state and `training_args.bin` (the arguments pickled, a
`hub_token` and this machine's paths included): nothing to publish. `FeedTrainer` writes each one into the output
folder's local store, `OUTPUT_DIR/.cache/huggingface/feed-hf/checkpoints/checkpoint-N` (huggingface_hub's
`upload_folder` and `hf upload` never take `.cache/huggingface/`), and links it as `OUTPUT_DIR/checkpoint-N`, where
`resume_from_checkpoint`, `get_last_checkpoint`, `save_total_limit` and `load_best_model_at_end` look (an upload
does not descend into a linked folder). transformers' rotation removes checkpoints with `shutil.rmtree`, which
refuses links: `remove_rotated_checkpoints` applies its choice to linked ones.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints

from .export_store import link
from .files import LOCAL_DIR

__all__ = [
    "save_linked_checkpoint",
    "CHECKPOINTS_DIR",
    "link_local_checkpoint",
    "remove_checkpoint",
    "remove_rotated_checkpoints",
    "remove_unkept_checkpoints",
]

CHECKPOINTS_DIR = f"{LOCAL_DIR}/checkpoints"


def link_local_checkpoint(run_dir: str | os.PathLike, name: str) -> None:
    """Make `run_dir/name` a link to a folder of the local store, before the Trainer writes the checkpoint there.
    A real folder of that name (a checkpoint of an older feed-hf) is left as it is."""
    run_dir = Path(run_dir)
    target = run_dir / CHECKPOINTS_DIR / name
    if (run_dir / name).exists() and not (run_dir / name).is_symlink():
        return
    try:
        target.mkdir(parents=True, exist_ok=True)
        link(run_dir / name, f"{CHECKPOINTS_DIR}/{name}")
    except (OSError, NotImplementedError):  # no links here: the Trainer writes a plain folder, as before
        return


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Remove a checkpoint, linked (the link and its folder) or plain."""
    path = Path(path)
    if path.is_symlink():
        target = path.resolve()
        path.unlink()
        shutil.rmtree(target, ignore_errors=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def remove_rotated_checkpoints(run_dir: str | os.PathLike, save_total_limit: int | None, best: str | None) -> None:
    """transformers' `rotate_checkpoints` rule (keep the newest, the best, and at most `save_total_limit`; oldest
    first by modification time), applied to the linked checkpoints it could not remove."""
    if save_total_limit is None or save_total_limit <= 0:
        return
    checkpoints = sort_checkpoints(str(run_dir), PREFIX_CHECKPOINT_DIR, use_mtime=True)
    protected = {checkpoints[-1], *([str(Path(best))] if best else [])} if checkpoints else set()
    remaining, keep = len(checkpoints), max(save_total_limit, len(protected))
    for checkpoint in checkpoints:
        if remaining <= keep:
            break
        if checkpoint not in protected:
            remove_checkpoint(checkpoint)
            remaining -= 1


def remove_unkept_checkpoints(run_dir: str | os.PathLike, best: str | None) -> None:
    """transformers' end-of-training rule for `save_total_limit=1` with a best checkpoint: only the best stays."""
    for checkpoint in sort_checkpoints(str(run_dir), PREFIX_CHECKPOINT_DIR):
        if best and Path(checkpoint).is_symlink() and not os.path.samefile(checkpoint, best):
            remove_checkpoint(checkpoint)


def save_linked_checkpoint(trainer: Any, save: Callable[[], None], trial: Any) -> None:
    """`save()` (the Trainer's `_save_checkpoint`) into the output folder's local store, linked as `checkpoint-N`;
    then the Trainer's rotation (`save_total_limit`) applied to the linked checkpoints."""
    run_dir = trainer._get_output_dir(trial)
    args = trainer.args
    if args.should_save:
        link_local_checkpoint(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")
    trainer.accelerator.wait_for_everyone()  # every process writes through the link
    save()
    if args.should_save:
        remove_rotated_checkpoints(run_dir, args.save_total_limit, trainer.state.best_model_checkpoint)
