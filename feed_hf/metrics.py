"""Classification metrics for the Trainer's `compute_metrics`: top-1 and top-5 accuracy."""

from __future__ import annotations

import numpy as np
from transformers import EvalPrediction

__all__ = ["top_k_accuracy", "top_k_from_logits"]


def top_k_accuracy(eval_prediction: EvalPrediction) -> dict[str, float]:
    """The Trainer's `compute_metrics`: {"top1": …, "top5": …} in percent (top5 only when K ≥ 5)."""
    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return top_k_from_logits(logits, eval_prediction.label_ids)


def top_k_from_logits(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"top1": …, "top5": …} in percent from logits `[N, K]` and labels `[N]` (top5 only when K ≥ 5)."""
    labels = np.asarray(labels)
    ranked = np.argsort(-np.asarray(logits), axis=1)
    metrics = {"top1": float((ranked[:, 0] == labels).mean() * 100)}
    if ranked.shape[1] >= 5:
        metrics["top5"] = float((ranked[:, :5] == labels[:, None]).any(axis=1).mean() * 100)
    return metrics
