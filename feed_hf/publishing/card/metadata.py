"""The model card's metadata as the Hub reads it (`ModelCardData`): datasets, model-index, licence, teachers, tags.

`model-index` holds every metric of the last evaluation: top-1 and top-5 as the metric types `accuracy` (named
"top-1 accuracy (%)") and `top-5-accuracy` (named "top-5 accuracy (%)"), in percent, the types Hub cards already
use for them; any other metric a `compute_metrics` returned under its own name (the Hub takes any type string).
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, hf_hub_download

from ..files import CARD_NAME
from .backbone import backbone_eval_results

__all__ = [
    "FORMAT_BUILDERS",
    "card_metadata",
    "dataset_label",
    "hub_teachers",
    "model_tags",
    "pipeline_tag",
    "teacher_license",
]

logger = logging.getLogger(__name__)

_EMBEDDED_DATASET_NAMES = {"digits": "scikit-learn digits (8×8 handwritten digits)"}
# metric key in the evaluation metrics -> (model-index type, model-index name, decimals)
_TYPED_METRICS = {
    "eval_top1": ("accuracy", "top-1 accuracy (%)", 2),
    "eval_top5": ("top-5-accuracy", "top-5 accuracy (%)", 2),
}
# What the Trainer logs with each evaluation that is not a result of the model.
_NOT_RESULTS = {
    "eval_loss",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "eval_model_preparation_time",
}


def card_metadata(results: dict[str, Any], feed: dict[str, Any], name: str) -> ModelCardData:
    """The card's YAML metadata, from results.json (`results`) and feed_config.json (`feed`), with what
    `push_to_hub` / `create_model_card` were told (results.json "card") added, none of it dropped."""
    data, card = results.get("data") or {}, results.get("card") or {}
    task = pipeline_tag(results)
    evaluations = _eval_results(results.get("metrics") or {}, data, task)
    evaluations += backbone_eval_results(results, task, dataset_label(data))  # feed-hf evaluate --protocol
    declared_base = card.get("finetuned_from") or ""
    base_model = declared_base or (results.get("base_model") or "").partition("@")[0]
    base_model = base_model if base_model.count("/") == 1 else ""  # `base_model:` takes Hub repo ids only
    teachers = [f"{hub_id}@{revision}" if revision else hub_id for hub_id, revision in hub_teachers(feed)]
    tags = model_tags(feed, results.get("task", ""), bool(results.get("label_free")))
    datasets = card.get("dataset_tags") or ([data["dataset_id"]] if data.get("dataset_id") else None)
    name = card.get("model_name") or name
    return ModelCardData(
        library_name=feed.get("student_library", "timm"),
        pipeline_tag=task,
        language=card.get("language"),
        license=(results.get("license") or {}).get("id"),
        tags=tags + [tag for tag in card.get("tags") or [] if tag not in tags],
        datasets=datasets,
        base_model=base_model or None,
        # The name of the model-index entry; without evaluation results it would be a stray top-level key.
        model_name=name if evaluations else None,
        eval_results=evaluations or None,
        teachers=teachers or None,
    )


def pipeline_tag(results: dict[str, Any]) -> str:
    """What the model does, for the Hub: the task given to push_to_hub/create_model_card, else a classifier's, or
    feature extraction for a student that learnt without labels (its head, if any, was never trained)."""
    tasks = (results.get("card") or {}).get("tasks")
    if tasks:
        return tasks[0]
    return "image-feature-extraction" if results.get("label_free") else "image-classification"


# datasets' packaged builders: their names ("parquet", "imagefolder") name a file format, never the data.
FORMAT_BUILDERS = {
    *("csv", "json", "pandas", "parquet", "arrow", "text", "imagefolder", "audiofolder", "webdataset", "xml"),
}


def dataset_label(data: dict[str, Any]) -> str:
    """The training data in words: the `dataset_name` given, the embedded set's name, or its Hub id/name (a format
    builder's name recorded by an older run, "parquet", is passed over for the folder's name)."""
    dataset = data.get("dataset") or ""
    given = data.get("dataset_name") if data.get("dataset_name") not in FORMAT_BUILDERS else None
    named = given or _EMBEDDED_DATASET_NAMES.get(dataset) or data.get("dataset_id") or dataset
    return named or "unnamed data (set dataset_name or dataset_id)"


def model_tags(feed: dict[str, Any], task: str, label_free: bool = False) -> list[str]:
    """Tags that say what the model is: only a student taught by teachers is tagged as distilled."""
    tags = ["image-feature-extraction" if label_free else "image-classification", "timm", "feed-hf"]
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


@functools.lru_cache(maxsize=64)  # a pinned revision never changes: one download per teacher and process
def teacher_license(hub_id: str, revision: str | None) -> str | None:
    """The `license` of a Hub repo's card at `revision` (its default branch when None); None when it has no card,
    names none or is unreachable."""
    try:
        card = ModelCard.load(hf_hub_download(hub_id, CARD_NAME, revision=revision or None))
    except Exception as error:  # an optional fact: the card then says the licence was not chosen
        where = f"{hub_id}@{revision}" if revision else hub_id
        logger.warning("licence of %s unknown (%s: %s)", where, type(error).__name__, error)
        return None
    licence = card.data.license
    return licence if isinstance(licence, str) and licence else None


def _eval_results(metrics: dict[str, Any], data: dict[str, Any], task: str) -> list[EvalResult]:
    """Every metric of the last evaluation (a `compute_metrics` of the user's too): top-1/top-5 typed as Hub
    cards type them, any other under its own name; the loss and the timings are no result of the model."""
    dataset_type = data.get("dataset_id") or data.get("dataset") or "custom"
    results = []
    for key, value in metrics.items():
        if not key.startswith("eval_") or key in _NOT_RESULTS or not _is_number(value):
            continue
        metric_type, metric_name, digits = _TYPED_METRICS.get(key, (key.removeprefix("eval_"), None, 4))
        results.append(
            EvalResult(
                task_type=task,
                task_name=task.replace("-", " ").capitalize(),
                dataset_type=dataset_type,
                dataset_name=dataset_label(data),
                dataset_config=data.get("dataset_config_name"),
                dataset_split=data.get("eval_split"),
                metric_type=metric_type,
                metric_name=metric_name or metric_type,
                metric_value=round(float(value), digits),
            )
        )
    return results


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
