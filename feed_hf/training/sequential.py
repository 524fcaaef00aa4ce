"""Sequential FEED: generations of the same architecture, each taught by the previous one (no loss math here)."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from ..data.loading import DataArguments, load_image_splits
from .config.feed_config import FeedConfig
from .train_model import read_results, train_model

__all__ = ["SequentialArguments", "run_sequential", "summary_table"]

logger = logging.getLogger(__name__)


@dataclass
class SequentialArguments:
    num_generations: int = field(
        default=3, metadata={"help": "Generations; 1 = CE only, each later one taught by the one before."}
    )


def run_sequential(
    data_args: DataArguments,
    args: FeedConfig,
    num_generations: int,
    splits: datasets.DatasetDict | None = None,
) -> list[dict[str, Any]]:
    """Generation 1 trains with CE; generation k+1 is a fresh `args.student` taught by generation k alone.

    Each generation is exported to `output_dir/generation_{k}` with its results.json; a generation
    whose results.json exists is skipped, so rerunning resumes. Writes `summary.md` and `summary.json`.
    Generation k uses seed `args.seed + k - 1` so every generation starts from a new initialisation.
    """
    if num_generations < 1:
        raise ValueError(f"num_generations must be >= 1, got {num_generations}")
    if args.teachers:
        raise ValueError(
            f"sequential FEED picks its own teachers (the previous generation); drop teachers={args.teachers}"
        )
    splits = splits if splits is not None else load_image_splits(data_args, seed=args.seed)
    output_dir = Path(args.output_dir)
    generations = []
    for generation in range(1, num_generations + 1):
        generation_dir = output_dir / f"generation_{generation}"
        results = read_results(generation_dir)
        if results is not None:
            logger.info("generation %d already finished in %s: skipped", generation, generation_dir)
        else:
            teachers = [str(output_dir / f"generation_{generation - 1}")] if generation > 1 else []
            generation_args = dataclasses.replace(
                args,
                output_dir=str(generation_dir),
                teachers=teachers,
                seed=args.seed + generation - 1,
                overwrite_output_dir=True,  # this run's own folder: an unfinished generation is redone
            )
            results = train_model(data_args, generation_args, splits, task=f"sfeed_generation_{generation}")
        generations.append({"generation": generation, "output_dir": str(generation_dir), **_summary_row(results)})
    if args.should_save:
        (output_dir / "summary.json").write_text(json.dumps(generations, indent=2))
        (output_dir / "summary.md").write_text(summary_table(generations))
    return generations


def _summary_row(results: dict[str, Any]) -> dict[str, Any]:
    metrics = results["metrics"]
    return {
        "teacher": (results["feed"]["teachers"] or [None])[0],
        "top1": metrics.get("eval_top1"),
        "top5": metrics.get("eval_top5"),
        "wall_time_s": results.get("wall_time_s"),
    }


def summary_table(generations: list[dict[str, Any]]) -> str:
    """Markdown table: accuracy per generation."""
    lines = ["| generation | teacher | top-1 (%) | top-5 (%) | wall time (s) |", "|---|---|---|---|---|"]
    for row in generations:
        teacher = Path(row["teacher"]).name if row["teacher"] else "— (CE only)"
        top5 = f"{row['top5']:.2f}" if row["top5"] is not None else "—"
        lines.append(f"| {row['generation']} | {teacher} | {row['top1']:.2f} | {top5} | {row['wall_time_s']} |")
    return "\n".join(lines) + "\n"
