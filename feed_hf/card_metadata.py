"""The model card's metadata as the Hub reads it (`ModelCardData`): datasets, model-index, licence, teachers, tags.

Top-1 and top-5 are two metric types in `model-index`: `accuracy` (named "top-1 accuracy (%)") and
`top-5-accuracy` (named "top-5 accuracy (%)"), both in percent. The Hub takes any metric type string; these
two are the ones Hub cards already use for top-1 and top-5.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, hf_hub_download

from .files import CARD_NAME

__all__ = ["card_metadata", "dataset_label", "hub_teachers", "model_tags", "resolve_license", "teacher_license"]

logger = logging.getLogger(__name__)

_EMBEDDED_DATASET_NAMES = {"digits": "scikit-learn digits (8×8 handwritten digits)"}
# (metric key in the evaluation metrics, model-index type, model-index name)
_ACCURACY_METRICS = (
    ("eval_top1", "accuracy", "top-1 accuracy (%)"),
    ("eval_top5", "top-5-accuracy", "top-5 accuracy (%)"),
)


def card_metadata(results: dict[str, Any], feed: dict[str, Any], name: str) -> ModelCardData:
    """The card's YAML metadata, from results.json (`results`) and feed_config.json (`feed`)."""
    data = results.get("data") or {}
    evaluations = _eval_results(results.get("metrics") or {}, data)
    base_model = (results.get("base_model") or "").partition("@")[0]
    base_model = base_model if base_model.count("/") == 1 else ""  # `base_model:` takes Hub repo ids only
    teachers = [f"{hub_id}@{revision}" if revision else hub_id for hub_id, revision in hub_teachers(feed)]
    return ModelCardData(
        library_name="timm",
        pipeline_tag="image-classification",
        license=(results.get("license") or {}).get("id"),
        tags=model_tags(feed, results.get("task", "")),
        datasets=[data["dataset_id"]] if data.get("dataset_id") else None,
        base_model=base_model or None,
        # The name of the model-index entry; without evaluation results it would be a stray top-level key.
        model_name=name if evaluations else None,
        eval_results=evaluations or None,
        teachers=teachers or None,
    )


def dataset_label(data: dict[str, Any]) -> str:
    """The training data in words: the `dataset_name` given, the embedded set's name, or its Hub id/name."""
    dataset = data.get("dataset") or ""
    return data.get("dataset_name") or _EMBEDDED_DATASET_NAMES.get(dataset) or data.get("dataset_id") or dataset or "?"


def model_tags(feed: dict[str, Any], task: str) -> list[str]:
    """Tags that say what the model is: only a student taught by teachers is tagged as distilled."""
    tags = ["image-classification", "timm", "feed-hf"]
    if feed.get("teachers") or feed.get("resolved_teachers"):
        tags.append("knowledge-distillation")
        if any(beta > 0 for beta in feed.get("feed_beta") or [0.0]):
            tags.append("feed")
    if task.startswith("sfeed_generation_"):
        tags.append("sequential-feed")
    return tags


def hub_teachers(feed: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(Hub id, pinned revision) of each teacher that is a Hub repo."""
    return [(t["hf_hub_id"], t.get("revision")) for t in feed.get("resolved_teachers") or [] if t.get("hf_hub_id")]


def resolve_license(model_license: str | None, feed: dict[str, Any]) -> dict[str, Any]:
    """The licence recorded for the card: the user's, else the teachers' when every one is a Hub repo naming the
    same licence on its card (read at its pinned revision), else none, with the reason."""
    if model_license:
        return {"id": model_license, "source": "model_license"}
    resolved = feed.get("resolved_teachers") or []
    if not resolved:
        return {"id": None, "source": None, "reason": "no licence chosen (set model_license)"}
    if len(hub_teachers(feed)) != len(resolved):
        return {"id": None, "source": None, "reason": "not every teacher is a Hub repo; set model_license"}
    licences = {teacher_license(hub_id, revision) for hub_id, revision in hub_teachers(feed)}
    if len(licences) != 1 or None in licences:
        found = ", ".join(sorted(str(licence) for licence in licences))
        return {"id": None, "source": None, "reason": f"the teachers' licences are unknown or differ ({found})"}
    return {"id": licences.pop(), "source": "teachers"}


@functools.lru_cache(maxsize=64)  # a pinned revision never changes: one download per teacher and process
def teacher_license(hub_id: str, revision: str | None) -> str | None:
    """The `license` of a Hub repo's card at `revision`; None when it has no card, names none or is unreachable."""
    try:
        card = ModelCard.load(hf_hub_download(hub_id, CARD_NAME, revision=revision))
    except Exception as error:  # an optional fact: the card then says the licence was not chosen
        logger.warning("licence of teacher %s@%s unknown (%s: %s)", hub_id, revision, type(error).__name__, error)
        return None
    licence = card.data.license
    return licence if isinstance(licence, str) and licence else None


def _eval_results(metrics: dict[str, Any], data: dict[str, Any]) -> list[EvalResult]:
    dataset_type = data.get("dataset_id") or data.get("dataset") or "custom"
    return [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset_type,
            dataset_name=dataset_label(data),
            dataset_config=data.get("dataset_config_name"),
            dataset_split=data.get("eval_split"),
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(float(metrics[key]), 2),
        )
        for key, metric_type, metric_name in _ACCURACY_METRICS
        if isinstance(metrics.get(key), (int, float))
    ]
