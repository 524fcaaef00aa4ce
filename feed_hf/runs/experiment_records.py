"""Every run of a grid in one compact JSON beside its report: config, logged losses, final metrics, compute.

So that anyone can audit a figure of the report without rerunning: the configuration the runs share is written once,
each run keeps only what differs from it, its `log_history`, metrics, optimizer steps and image passes, seed,
hardware and code version, all read from the runs' own results.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..publishing.export_store import is_in_export_store
from ..publishing.files import RESULTS_NAME
from ..training.train_model import read_results

__all__ = ["collect_run_records", "run_records_json"]

_KEPT = ("task", "seed", "metrics", "compute", "wall_time_s", "hardware", "versions", "code_version", "log_history")


def collect_run_records(root: str | Path) -> dict[str, Any]:
    """{"shared_config": ..., "runs": {relative run folder: record}} for every finished run under `root`."""
    root = Path(root)
    # each export keeps a copy of its record in its version folder: one run, one record
    folders = sorted(f.parent for f in root.rglob(RESULTS_NAME) if not is_in_export_store(f))
    results = {str(folder.relative_to(root)): read_results(folder) for folder in folders}
    results = {name: record for name, record in results.items() if record is not None}
    configs = [record.get("config", {}) for record in results.values()]
    shared = {k: v for k, v in configs[0].items() if all(c.get(k) == v for c in configs[1:])} if configs else {}
    runs = {}
    for name, record in results.items():
        config = record.get("config", {})
        feed = record.get("feed", {})
        runs[name] = {
            **{key: record.get(key) for key in _KEPT},
            "config_differences": {k: v for k, v in config.items() if k not in shared},
            "feed": {key: feed.get(key) for key in ("feed_beta", "kd_weight", "teachers")},
        }
    return {"root": root.name, "shared_config": shared, "runs": runs}


def run_records_json(root: str | Path) -> str:
    """The records as JSON text, run folders (teachers included) written relative to `root`."""
    text = json.dumps(collect_run_records(root), indent=1, default=str)
    return text.replace(f"{Path(root).resolve()}{os.sep}", "").replace(f"{Path(root)}{os.sep}", "")
