"""Classification metrics for the Trainer's `compute_metrics`: top-1 and top-5 accuracy."""

from __future__ import annotations

import numpy as np
from transformers import EvalPrediction

__all__ = ["top_k_accuracy"]


def top_k_accuracy(eval_prediction: EvalPrediction) -> dict[str, float]:
    """{"top1": …, "top5": …} in percent from logits `[N, K]` and labels `[N]` (top5 only when K ≥ 5)."""
    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    labels = np.asarray(eval_prediction.label_ids)
    ranked = np.argsort(-logits, axis=1)
    metrics = {"top1": float((ranked[:, 0] == labels).mean() * 100)}
    if logits.shape[1] >= 5:
        metrics["top5"] = float((ranked[:, :5] == labels[:, None]).any(axis=1).mean() * 100)
    return metrics
