"""The plots of an experiment report: accuracy per method, per-teacher FEED loss, paired differences per seed."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ..training.train_model import read_results

__all__ = ["LABELS", "plot_accuracy", "plot_feed_curves", "plot_paired_differences"]

LABELS = {
    "ce": "CE baseline",
    "kd_ensemble": "logit KD from the teacher ensemble",
    "feed_single": "FEED, 1 teacher (teacher_0)",
    "pfeed_2": "pFEED, 2 teachers",
    "pfeed_3": "pFEED, all teachers",
    "feed_large": "FEED, 1 larger teacher",
}


def plot_accuracy(summary: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    names = list(summary["methods"])
    means = [summary["methods"][n]["mean"] for n in names]
    stds = [summary["methods"][n]["std"] for n in names]
    figure, axis = plt.subplots(figsize=(8, 3.6))
    axis.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c72b0")
    for x, name in enumerate(names):
        values = summary["methods"][name]["values"]
        axis.scatter([x] * len(values), values, color="black", s=10, zorder=3)
    # no-break spaces keep "(n = 3)" on one line
    labels = [textwrap.fill(f"{LABELS.get(n, n)} (n\u00a0=\u00a0{summary['methods'][n]['n']})", 16) for n in names]
    axis.set_xticks(range(len(names)), labels, fontsize=7)
    ensemble = max(summary["ensembles"].values(), default=None)
    if ensemble is not None:  # what the teachers reach together: the ceiling a student is pulled towards
        label = f"teachers' logit ensemble {ensemble:.2f}"
        axis.axhline(ensemble, color="grey", linestyle="--", linewidth=1, label=label)
        axis.legend(fontsize=7, loc="upper left")
    top = max(means + ([ensemble] if ensemble is not None else []))
    axis.set_ylim(min(means) - 3 * max(stds + [0.5]), top + 2 * max(stds + [0.5]))
    axis.set_ylabel("test top-1 (%)")
    axis.set_title("Student accuracy: mean ± std over seeds (dots: runs)")
    return _save(plt, figure, path)


def plot_feed_curves(summary: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    history = read_results(summary["methods"]["pfeed_3"]["runs"][0])["log_history"]
    figure, axis = plt.subplots(figsize=(6, 3.4))
    keys = sorted({k for entry in history for k in entry if k.startswith("feed/loss_t")})
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in history if key in entry]
        axis.plot(*zip(*points, strict=True), label=f"teacher {key.removeprefix('feed/loss_t')}")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("Eq. 2 distance (unweighted)")
    axis.set_title("pFEED (all teachers, first seed): per-teacher feature loss")
    if keys:
        axis.legend()
    return _save(plt, figure, path)


def plot_paired_differences(summary: dict[str, Any], path: Path) -> Path:
    """One column per comparison: each seed's difference (labelled), their mean, and zero."""
    plt = _pyplot()
    comparisons = {name: c for name, c in summary.get("paired", {}).items() if c["n"]}
    figure, axis = plt.subplots(figsize=(8, 3.6))
    for x, comparison in enumerate(comparisons.values()):
        differences = comparison["differences"]
        axis.scatter([x] * len(differences), differences, color="black", s=12, zorder=3)
        for seed, difference in zip(comparison["seeds"], differences, strict=True):
            axis.annotate(f"s{seed}", (x, difference), xytext=(4, 0), textcoords="offset points", fontsize=6)
        axis.hlines(comparison["mean_difference"], x - 0.25, x + 0.25, color="#c44e52", linewidth=2)
    axis.axhline(0, color="grey", linestyle="--", linewidth=1)
    labels = [textwrap.fill(comparison_label(name), 18) for name in comparisons]
    axis.set_xticks(range(len(comparisons)), labels, fontsize=7)
    axis.set_ylabel("difference in test top-1 (points)")
    axis.set_title("Paired differences per seed (dots; s = seed) and their mean (bar)")
    return _save(plt, figure, path)


def comparison_label(name: str) -> str:
    """ "pfeed_3 - ce" as the report and the plots write it: "pFEED, all teachers − CE baseline"."""
    method, reference = name.split(" - ")
    return f"{LABELS.get(method, method)} − {LABELS.get(reference, reference)}"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plots need matplotlib: pip install 'feed-hf[plots]'") from error
    return plt


def _save(plt: Any, figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
