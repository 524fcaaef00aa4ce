"""Classification metrics for the Trainer's `compute_metrics`: top-1 and top-5 accuracy."""

from __future__ import annotations

import numpy as np
from transformers import EvalPrediction

__all__ = ["top_k_accuracy", "top_k_from_logits", "top_k_from_ranked_ids"]


def top_k_accuracy(eval_prediction: EvalPrediction) -> dict[str, float]:
    """The Trainer's `compute_metrics`: {"top1": …, "top5": …} in percent (top5 only when it can be told).

    Takes what the model returns (logits `[N, K]`) or what a `preprocess_logits_for_metrics` made of it: class ids
    `[N]` (e.g. `logits.argmax(-1)`: top-1 only) or ranked class ids `[N, k]` (e.g. `logits.topk(5).indices`).
    Anything else is refused naming its shape.
    """
    predictions = eval_prediction.predictions
    predictions = np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions)
    if predictions.ndim == 2 and np.issubdtype(predictions.dtype, np.floating):
        return top_k_from_logits(predictions, eval_prediction.label_ids)
    if predictions.ndim in (1, 2) and np.issubdtype(predictions.dtype, np.integer):
        return top_k_from_ranked_ids(predictions.reshape(len(predictions), -1), eval_prediction.label_ids)
    raise ValueError(
        f"the default compute_metrics (top-1/top-5 accuracy) got predictions of shape {predictions.shape} "
        f"({predictions.dtype}); it takes logits [N, K], class ids [N] or ranked class ids [N, k]: make "
        "preprocess_logits_for_metrics return one of these, or pass your own compute_metrics"
    )


def top_k_from_logits(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"top1": …, "top5": …} in percent from logits `[N, K]` and labels `[N]` (top5 only when K ≥ 5)."""
    return top_k_from_ranked_ids(np.argsort(-np.asarray(logits), axis=1), labels)


def top_k_from_ranked_ids(ranked: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"top1": …, "top5": …} in percent from class ids ranked best first `[N, k]` (top5 only when k ≥ 5)."""
    labels = np.asarray(labels)
    metrics = {"top1": float((ranked[:, 0] == labels).mean() * 100)}
    if ranked.shape[1] >= 5:
        metrics["top5"] = float((ranked[:, :5] == labels[:, None]).any(axis=1).mean() * 100)
    return metrics
