"""`hub_strategy` for FEED: the exported student pushed at each save, and the strategies FEED refuses."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import HubStrategy, SaveStrategy

from ..publishing.hub import HubPushError, UnpushableExportError, push_export

__all__ = ["ExportPushCallback", "check_hub_strategy"]

logger = logging.getLogger(__name__)

# transformers' `checkpoint` / `all_checkpoints` put a resumable Trainer checkpoint on the Hub. FEED's holds the
# FeedStudent (student + connectors, not timm's layout) with the optimizer state: not a model anyone can load,
# and the connectors leave the machine only with push_connectors. An exported student under a `last-checkpoint/`
# name would look resumable and is not; `every_save` already keeps each save's student as its own commit.
_REFUSED = (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS)


def check_hub_strategy(args: TrainingArguments) -> None:
    """Refuse `hub_strategy` 'checkpoint' and 'all_checkpoints' with `push_to_hub`, before any repo is created."""
    if args.push_to_hub and args.hub_strategy in _REFUSED:
        raise ValueError(
            f"hub_strategy={HubStrategy(args.hub_strategy).value!r} would push a resumable Trainer checkpoint, which "
            "for FEED holds the connectors and optimizer state in FeedStudent's layout, not a loadable model; use "
            "hub_strategy='every_save' (the exported student, one commit per save: load any of them with timm "
            "'hf-hub:REPO@COMMIT') or 'end', and resume from the local checkpoints"
        )


class ExportPushCallback(TrainerCallback):
    """With `push_to_hub` and `hub_strategy='every_save'`: at each save, export the student and push it, one commit.

    `export(folder)` writes the export (`FeedTrainer.export`: every process calls it, the writer rank writes);
    the main process then pushes that folder with `feed_hf.publishing.hub.push_export` (timm files, feed_config.json,
    card; connectors only with `push_connectors`) in the background, as the Trainer pushes its saves: training
    goes on while the commit uploads. As in the Trainer, a save that comes while the previous push is still
    running is not pushed unless `hub_always_push` (then every save is pushed, one commit after another, in
    order). A failed push is logged and training goes on: the checkpoint is on disk, and the next save or
    `push_to_hub()` pushes again. Training ends only after the pushes it started are done (or failed, logged).
    `end` pushes nothing here (`push_to_hub()` after training, as before).
    """

    def __init__(self, export: Callable[[str], None]) -> None:
        self.export = export
        self.pushes: list[Future] = []

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not args.push_to_hub or args.hub_strategy != HubStrategy.EVERY_SAVE:
            return
        saved_at = _saved_at(args, state)
        if self.pushing() and not args.hub_always_push:
            logger.info("the student saved at %s is not pushed: the previous push is still running", saved_at)
            return
        with tempfile.TemporaryDirectory(prefix="feed-hf-save-push-") as staging:
            self.export(staging)  # push_export copies what it pushes before it returns
            if state.is_world_process_zero:
                push = _push_saved_student(args, saved_at, staging)
                self.pushes += [push] if push is not None else []

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.wait()

    def pushing(self) -> bool:
        return any(not push.done() for push in self.pushes)

    def wait(self) -> None:
        """Wait for the pushes started so far; a failed one is logged (training already went on without it)."""
        pushes, self.pushes = self.pushes, []
        for push in pushes:
            try:
                push.result()
            except (HubPushError, UnpushableExportError) as error:
                logger.warning("a student saved during training was not pushed (%s)", error)


def _saved_at(args: TrainingArguments, state: TrainerState) -> str:
    if args.save_strategy == SaveStrategy.EPOCH and state.epoch is not None:
        return f"epoch {int(state.epoch)}"
    return f"step {state.global_step}"


def _push_saved_student(args: TrainingArguments, saved_at: str, export_dir: str) -> Future | None:
    repo_id = args.hub_model_id or Path(args.output_dir).resolve().name
    try:
        return push_export(
            export_dir,
            repo_id,
            token=args.hub_token,
            private=args.hub_private_repo,
            revision=args.hub_revision,
            push_connectors=getattr(args, "push_connectors", False),
            commit_message=f"Training in progress, {saved_at}",
            blocking=False,
        )
    except (HubPushError, UnpushableExportError) as error:
        logger.warning("the student saved at %s was not pushed to %r (%s); training goes on", saved_at, repo_id, error)
        return None
