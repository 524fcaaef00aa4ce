"""What the two protocol scripts share (label_free_matched.py, foundation_agglomeration.py): resumable runs and the
backbone judgement of an export.

Both run for hours on this CPU and a session may end mid-way; `run_once` makes a rerun of the same command pick up
where it stopped: a run whose arguments and result were recorded (`.protocol_<command>.json` in its folder) is
reused, anything else is run again from scratch; a rerun training clears the folder's records first, so a backbone
judgement is never reused for weights that changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "judge_backbone", "recorded_seconds", "run_once"]

METRICS = ("knn", "linear")
TRAINING = ("parallel", "baselines", "teachers", "sequential")


def run_once(runner: Callable[[str, list[str]], Any], name: str, argv: list[str], folder: Path) -> Any:
    """`runner(name, argv)` unless `folder` records a finished run of exactly that command; its result either way."""
    record = Path(folder) / f".protocol_{name}.json"
    if record.is_file():
        recorded = json.loads(record.read_text(encoding="utf-8"))
        if recorded["argv"] == argv:
            return recorded["result"]
    if name in TRAINING:  # new weights: every record of the old ones goes
        for stale in Path(folder).glob(".protocol_*.json"):
            stale.unlink()
    began = time.perf_counter()
    result = runner(name, argv)
    record.parent.mkdir(parents=True, exist_ok=True)
    seconds = round(time.perf_counter() - began, 1)
    record.write_text(json.dumps({"argv": argv, "result": result, "seconds": seconds}, default=str), encoding="utf-8")
    return result


def recorded_seconds(folder: Path, name: str) -> float | None:
    """The wall time `run_once` recorded for `name` in `folder` when it ran it (None: a record older than that), so
    a rerun that reuses the run reports the time it took, not the time it took to be reused."""
    record = Path(folder) / f".protocol_{name}.json"
    return json.loads(record.read_text(encoding="utf-8")).get("seconds") if record.is_file() else None


def judge_backbone(
    runner: Callable[[str, list[str]], Any], dataset: str, probe_rows: str, test_split: str, model_dir: str, seed: int
) -> dict[str, float]:
    """`feed-hf evaluate --protocol knn linear` on `model_dir` (an export or a teacher folder): the probes fitted on
    `probe_rows` of the train split, measured on `test_split`; the top-1s read back from its own results.json."""
    argv = [
        "--model",
        model_dir,
        "--protocol",
        *METRICS,
        "--dataset",
        dataset,
        "--train_split",
        probe_rows,
        "--eval_split",
        test_split,  # so the probe rows are not carved: the probe split is the whole --train_split
        "--probe_train_split",
        "train",
        "--split",
        test_split,
        "--seed",
        str(seed),
        "--batch_size",
        "256",
    ]
    run_once(runner, "evaluate", argv, Path(model_dir))
    recorded = json.loads((Path(model_dir) / "results.json").read_text(encoding="utf-8"))["backbone_eval"]
    (own,) = [report for report in recorded.values() if report.get("is_this_model")]
    return {
        **{metric: float(own[metric]["top1"]) for metric in METRICS},
        "eval_seconds": recorded_seconds(Path(model_dir), "evaluate"),
    }
