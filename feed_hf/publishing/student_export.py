"""What FeedTrainer leaves behind: the bare student exported as a whole, with its record and card.

`StudentExporter` is a collaborator the trainer holds (`trainer.exporter`): FeedTrainer's `save_model`, `export`,
`write_record` and `evaluate` hand their work to it. What the export needs is checked before the first training
step (`check_export_possible`); an export that still fails after training is written to a fallback folder, named
in the error (`export_after_training`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from ..training.config.readouts import feed_settings
from ..training.run_checks import check_export_target
from .export import ExportError, check_processing_class, export_student
from .export_store import check_export_location
from .feed_record import feed_settings_record, run_summary
from .local_checkpoints import remove_unkept_checkpoints
from .portable import portable_feed_config
from .run_record import write_run_record

__all__ = ["StudentExporter"]

logger = logging.getLogger(__name__)


class StudentExporter:
    """The export of a FeedTrainer's bare student and the run's record (results.json, card).

    It reads of its trainer: `args`, `model` (the FeedStudent: connectors), `student`, `teachers`, `feed_betas`,
    `teacher_sources`, `teacher_specs`, `class_names`, `processing_class`, `accelerator` and, for the record,
    `state` and the datasets.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.exported_to: str | None = None  # the folder of the last complete export (its record follows)

    def feed_config(self) -> dict[str, Any]:
        """What `feed_config.json` records: the FEED settings and each teacher as resolved (portable)."""
        t = self.trainer
        return feed_settings_record(t.args, t.student, t.feed_betas, t.teachers, t.teacher_sources)

    def log_run_summary(self) -> None:
        """Log, before the first step, the student's input size and why, and what each teacher is fed (recorded
        too, in feed_config.json's `student_input_size` and `resolved_teachers`)."""
        if not self.trainer.is_world_process_zero():
            return
        # With model_init the student is made inside train(); its probe was resolved the same way.
        student = self.trainer.student if self.trainer.model is not None else self.trainer.fresh_students.probe
        if student is None:
            return
        student = getattr(student, "student", student)  # a FeedStudent's bare student
        lines, warnings = run_summary(student, self.trainer.teachers, self.trainer.teacher_sources)
        logger.info("FEED run: %s", "; ".join(lines))
        for warning in warnings:
            logger.warning(warning)

    def check_export_possible(self, output_dir: str) -> None:
        """Before the first step: the `processing_class` can be saved, and the export's folders can be written, with
        room for the weights (one line naming the path otherwise). The writer rank checks the folders."""
        check_processing_class(self.trainer.processing_class)
        if not self.trainer.args.should_save:
            return
        t = self.trainer
        model = t.accelerator.unwrap_model(t.model) if t.model is not None else None
        tensors = [*model.parameters(), *model.buffers()] if model is not None else []
        check_export_location(output_dir, needed_bytes=sum(t.numel() * t.element_size() for t in tensors))

    def export(self, output_dir: str | None = None) -> None:
        """Write the bare student (timm format), its FEED record, its connectors and the `processing_class` to
        `output_dir`, as a whole, then the run's record (results.json) and model card from the Trainer's state.

        Never into a teacher's folder. A teacher fact that cannot be read degrades to "unknown" (logged): the
        student is exported whatever the record holds. An export that cannot be written raises ExportError (the
        previous export stays) once every process is here.
        """
        output_dir = output_dir or self.trainer.args.output_dir
        failure = None
        if self.trainer.args.should_save:
            try:
                self._write_export(output_dir)
            except Exception as error:  # raised below, after the other processes stop waiting for this one
                failure = error
        self.trainer.accelerator.wait_for_everyone()
        if failure is not None:
            raise failure

    def export_after_training(self, output_dir: str) -> None:
        """`export(output_dir)`; if it fails, the student is exported to a fallback folder and ExportError names it."""
        args = self.trainer.args
        if args.should_save and args.save_total_limit == 1:  # the Trainer's end rule, for linked checkpoints
            remove_unkept_checkpoints(output_dir, self.trainer.state.best_model_checkpoint)
        try:
            self.export(output_dir)
        except Exception as error:
            if not self.trainer.args.should_save:
                raise
            self._export_to_fallback(output_dir, error)

    def _write_export(self, output_dir: str) -> None:
        self.exported_to = None
        check_export_target(output_dir, self.trainer.teacher_specs, overwrite=True, resuming=False)
        t = self.trainer
        connectors = t.accelerator.unwrap_model(t.model).connectors
        export_student(t.student, output_dir, self.feed_record(), t.class_names, connectors, t.processing_class)
        self.exported_to = str(output_dir)
        self.write_record(output_dir)

    def _export_to_fallback(self, output_dir: str, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        if self.exported_to == str(output_dir):  # the model is there; its record is what failed
            raise ExportError(f"the student is exported to {output_dir!r}, but its record failed ({reason})") from error
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = Path(output_dir).resolve().name or "feed-hf"
        attempts = []
        for fallback in (f"{output_dir.rstrip('/')}-export-{stamp}", f"{tempfile.gettempdir()}/{name}-export-{stamp}"):
            try:
                self._write_export(fallback)
            except Exception as fallback_error:  # the next place, else every reason in one message
                attempts.append(f"{fallback!r} ({type(fallback_error).__name__}: {fallback_error})")
                continue
            raise ExportError(
                f"training finished, but the export to {output_dir!r} failed ({reason}); the trained student is "
                f"exported to {fallback!r} instead: load it from there, or move it to {output_dir!r} once that is fixed"
            ) from error
        raise ExportError(
            f"training finished, but the export to {output_dir!r} failed ({reason}), and so did the fallbacks "
            f"{'; '.join(attempts)}; the last checkpoint (if save_strategy saved one) holds the weights"
        ) from error

    def write_record(self, output_dir: str | None = None, failures: list[str] | None = None) -> list[str]:
        """results.json + card of the export in `output_dir` from this trainer's state; `failures` + a failed card."""
        if not self.trainer.args.should_save:
            return list(failures or [])
        return write_run_record(self.trainer, str(output_dir or self.trainer.args.output_dir), failures)

    def feed_record(self) -> dict[str, Any]:
        """`feed_config()`, or the settings alone (portable, with the error named) when a teacher fact fails."""
        try:
            return self.feed_config()
        except Exception as error:  # the record is optional; the model is not
            logger.warning("the FEED record of this export is incomplete (%s: %s)", type(error).__name__, error)
            settings = portable_feed_config(feed_settings(self.trainer.args))
            return {**settings, "record_error": f"{type(error).__name__}: {error}"}
