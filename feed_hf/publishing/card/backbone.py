"""results.json's `backbone_eval` (k-NN / linear-probe top-1 of this model and of its teachers, written by
`feed-hf evaluate --protocol`) as the card shows it: model-index entries for this model, a table for all."""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult

__all__ = ["backbone_eval_results", "backbone_rows"]

_PROTOCOLS = {"knn": "k-NN top-1 (%)", "linear": "linear-probe top-1 (%)"}


def backbone_eval_results(results: dict[str, Any], task: str, dataset_name: str) -> list[EvalResult]:
    """Model-index entries of this model's own backbone probes (a teacher's are no result of this model)."""
    entries = []
    for report in (results.get("backbone_eval") or {}).values():
        if not report.get("is_this_model"):
            continue
        for protocol, metric_name in _PROTOCOLS.items():
            if isinstance((report.get(protocol) or {}).get("top1"), int | float):
                entries.append(
                    EvalResult(
                        task_type=task,
                        task_name=task.replace("-", " ").capitalize(),
                        dataset_type=report.get("dataset") or "custom",
                        dataset_name=dataset_name,
                        dataset_split=report.get("split"),
                        metric_type=f"{protocol}_accuracy",
                        metric_name=metric_name,
                        metric_value=round(float(report[protocol]["top1"]), 2),
                    )
                )
    return entries


def backbone_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model judged: its name, whether it is this model, its k-NN and linear top-1 (None: not run)."""
    rows = []
    for name, report in (results.get("backbone_eval") or {}).items():
        rows.append(
            {
                "model": f"{name} (this model)" if report.get("is_this_model") else name,
                "split": f"{report.get('dataset')} {report.get('train_split')} → {report.get('split')}",
                "knn": _top1(report, "knn"),
                "linear": _top1(report, "linear"),
            }
        )
    return rows


def _top1(report: dict[str, Any], protocol: str) -> str:
    value = (report.get(protocol) or {}).get("top1")
    return f"{value:.2f}" if isinstance(value, int | float) else "—"
