"""What FeedTrainer leaves behind: the bare student exported as a whole, its record, and its push to the Hub.

A mixin of `FeedTrainer` (it uses the trainer's args, student, teachers and accelerator): `save_model` and
`push_to_hub` are the Trainer's documented methods, `export` and `write_record` FEED's own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo

from .checks import check_export_target
from .export import export_student, has_export
from .hub import push_export
from .portable import portable_feed_config
from .record import feed_settings_record
from .run_record import write_run_record

__all__ = ["StudentExportMixin"]

logger = logging.getLogger(__name__)


class StudentExportMixin:
    """`save_model`/`export`/`push_to_hub` of the bare student and the run's record, for `FeedTrainer`."""

    _exported_to: str | None = None

    def feed_config(self) -> dict[str, Any]:
        """What `feed_config.json` records: the FEED settings and each teacher as resolved (portable)."""
        return feed_settings_record(self.args, self.student, self.feed_betas, self.teachers, self.teacher_sources)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # Trainer checkpoints hold the whole FeedStudent (connectors included) in a non-timm layout: never
        # pushed. `hub_strategy="every_save"` pushes the exported student instead (feed_hf.hub_callbacks).
        return

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> CommitInfo | None:
        """Export the bare student to `output_dir` (if not already there) and push it to `args.hub_model_id`.

        The repo gets `config.json` + `model.safetensors` (timm), `feed_config.json`, `results.json`
        and a model card; connectors only with `push_connectors`.
        """
        output_dir = Path(self.args.output_dir)
        if not has_export(output_dir):
            self.export(str(output_dir))
        if not self.is_world_process_zero():
            return None
        return push_export(
            output_dir,
            self.args.hub_model_id or output_dir.resolve().name,
            token=token if token is not None else self.args.hub_token,
            private=private if private is not None else self.args.hub_private_repo,
            revision=revision if revision is not None else self.args.hub_revision,
            push_connectors=self.args.push_connectors,
            commit_message=commit_message or "Upload FEED student (feed-hf)",
        )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """User calls export the bare student (`export`); the Trainer's own checkpoints keep the whole FeedStudent."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call=True)
        self.export(output_dir)

    def export(self, output_dir: str | None = None) -> None:
        """Write the bare student (timm format), its FEED record and its connectors to `output_dir`, as a whole,
        then the run's record (results.json) and model card from the Trainer's state (`write_record`).

        Never into a teacher's folder. A teacher fact that cannot be read degrades to "unknown" (logged): the
        student is exported whatever the record holds.
        """
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            check_export_target(output_dir, self.teacher_specs, overwrite=True, resuming=False)
            connectors = self.accelerator.unwrap_model(self.model).connectors
            export_student(self.student, output_dir, self.feed_record(), self.class_names, connectors)
            self._exported_to = str(output_dir)
            self.write_record(output_dir)
        self.accelerator.wait_for_everyone()

    def write_record(self, output_dir: str | None = None, failures: list[str] | None = None) -> list[str]:
        """results.json + card of the export in `output_dir` from this trainer's state; `failures` + a failed card."""
        if not self.args.should_save:
            return list(failures or [])
        return write_run_record(self, str(output_dir or self.args.output_dir), failures)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Trainer.evaluate; after this trainer exported (and outside training), the export's record and card are
        rewritten with the metrics, so a save or push that follows carries them."""
        metrics = super().evaluate(*args, **kwargs)
        if self._exported_to is not None and not self.is_in_train:
            self.write_record(self._exported_to)
        return metrics

    def feed_record(self) -> dict[str, Any]:
        """`feed_config()`, or the settings alone (portable, with the error named) when a teacher fact fails."""
        try:
            return self.feed_config()
        except Exception as error:  # the record is optional; the model is not
            logger.warning("the FEED record of this export is incomplete (%s: %s)", type(error).__name__, error)
            settings = portable_feed_config(self.args.feed_settings())
            return {**settings, "record_error": f"{type(error).__name__}: {error}"}
