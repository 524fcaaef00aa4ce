"""Model cards for exported students and teachers, rendered from the template shipped in the package."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .export import write_export_file
from .files import CARD_NAME, FEED_CONFIG_NAME, MODEL_CONFIG_NAME, RESULTS_NAME
from .portable import portable_dataset, portable_teacher_source

__all__ = ["CARD_TEMPLATE", "CardArguments", "render_model_card", "write_model_card", "write_model_card_from_results"]

CARD_TEMPLATE = resources.files("feed_hf") / "templates" / "model_card.md"
_EMBEDDED_DATASET_NAMES = {"digits": "scikit-learn digits (8×8 handwritten digits)"}


def render_model_card(
    export_dir: str | Path, results: dict[str, Any], repo_id: str | None = None, baseline_top1: float | None = None
) -> ModelCard:
    """The card of an exported folder, from its config.json, feed_config.json and `results` (results.json).

    Sources appear in their portable form (Hub ids, folder names): a card names no path of this machine,
    and its loading code names the repo, or the folder by name when there is no repo yet.
    """
    export_dir = Path(export_dir)
    config = json.loads((export_dir / MODEL_CONFIG_NAME).read_text())
    feed = json.loads((export_dir / FEED_CONFIG_NAME).read_text())
    metrics = results.get("metrics", {})
    dataset = portable_dataset(results.get("data", {}).get("dataset", "")) or ""
    teachers = [_teacher_row(spec, resolved) for spec, resolved in _zip_teachers(feed)]
    architecture = config["architecture"]
    name = repo_id.split("/")[-1] if repo_id else export_dir.resolve().name  # a folder's name, never its path
    card_data = ModelCardData(
        library_name="timm",
        pipeline_tag="image-classification",
        license="apache-2.0",
        tags=["image-classification", "timm", "feed", "knowledge-distillation", "feed-hf"],
        datasets=[dataset] if _is_hub_id(dataset) else None,
        base_model=[t["source"].removeprefix("hf-hub:").split("@")[0] for t in teachers if t["is_hub"]] or None,
        model_name=name,
        eval_results=_eval_results(metrics, dataset) or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        model_name=name,
        summary=_summary(architecture, teachers, dataset, metrics, feed, results.get("task", "")),
        architecture=architecture,
        num_parameters=f"{results.get('num_parameters', 0):,}",
        num_classes=config.get("num_classes"),
        input_size="×".join(str(s) for s in config.get("pretrained_cfg", {}).get("input_size", [])[1:]),
        loss_description=_loss_description(feed, teachers),
        teachers=teachers,
        training_rows=_training_rows(results),
        eval_description=_eval_description(dataset, results.get("data", {})),
        result_rows=_result_rows(metrics, teachers, baseline_top1),
        needs_import=architecture.endswith("_cifar"),
        timm_id=f"hf-hub:{repo_id}" if repo_id else f"local-dir:{name}",
        repo_ref=repo_id or name,
    )


@dataclass
class CardArguments:
    export_dir: str = field(metadata={"help": "An exported folder (config.json, feed_config.json, results.json)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo id the card will live in (loading code)."})
    baseline_dir: str | None = field(
        default=None, metadata={"help": "A CE-baseline export of the same student: its accuracy joins the table."}
    )


def write_model_card_from_results(card_args: CardArguments) -> Path:
    """`feed-hf card`: (re)render README.md of an exported folder from its results.json."""
    export_dir = Path(card_args.export_dir)
    results_file = export_dir / RESULTS_NAME
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    baseline_top1 = None
    if card_args.baseline_dir:
        baseline_results = json.loads((Path(card_args.baseline_dir) / RESULTS_NAME).read_text())
        baseline_top1 = baseline_results["metrics"].get("eval_top1")
    return write_model_card(export_dir, results, repo_id=card_args.repo_id, baseline_top1=baseline_top1)


def write_model_card(export_dir: str | Path, results: dict[str, Any], **kwargs: Any) -> Path:
    """Render the card into `export_dir/README.md`, atomically, as part of the current export."""
    return write_export_file(export_dir, CARD_NAME, str(render_model_card(export_dir, results, **kwargs)))


def _zip_teachers(feed: dict) -> list[tuple[str, dict]]:
    resolved = feed.get("resolved_teachers", [])
    specs = feed.get("teachers") or [r.get("architecture", "module") for r in resolved]
    return list(zip(specs, resolved, strict=False))


def _teacher_row(spec: str, resolved: dict) -> dict[str, Any]:
    is_hub = spec.startswith("hf-hub:")
    return {
        "source": spec if is_hub else portable_teacher_source(spec).removeprefix("local-dir:"),
        "architecture": resolved.get("architecture", "?"),
        "revision": resolved.get("revision"),
        "top1": resolved.get("top1"),
        "is_hub": is_hub,
    }


def _is_hub_id(dataset: str) -> bool:
    return dataset.count("/") == 1 and not dataset.startswith((".", "/", "~")) and not Path(dataset).exists()


def _dataset_label(dataset: str) -> str:
    return _EMBEDDED_DATASET_NAMES.get(dataset, dataset or "?")


def _eval_description(dataset: str, data: dict) -> str:
    size = f", {data['num_eval']:,} images" if data.get("num_eval") else ""
    return f"{_dataset_label(dataset)} ({data.get('eval_split') or 'held-out'} split{size})"


def _eval_results(metrics: dict, dataset: str) -> list[EvalResult]:
    return [
        EvalResult(
            task_type="image-classification",
            dataset_type=dataset if _is_hub_id(dataset) else _dataset_label(dataset),
            dataset_name=_dataset_label(dataset),
            metric_type="accuracy",
            metric_name=f"{key.removeprefix('eval_')} accuracy (%)",
            metric_value=round(metrics[key], 2),
        )
        for key in ("eval_top1", "eval_top5")
        if key in metrics
    ]


def _summary(architecture: str, teachers: list[dict], dataset: str, metrics: dict, feed: dict, task: str) -> str:
    top1 = metrics.get("eval_top1")
    accuracy = f", reaching {top1:.2f}% top-1" if top1 is not None else ""
    method = _method(teachers, feed)
    if task.startswith("sfeed_generation_"):
        generation = task.removeprefix("sfeed_generation_")
        taught_by = f" ({method}, the previous generation)" if teachers else f", {method}"
        method = f"generation {generation} of sequential FEED{taught_by}"
    return (
        f"A `{architecture}`, {method}, on {_dataset_label(dataset)}{accuracy}. "
        "Trained with [feed-hf](https://github.com/feed-hf/feed-hf)."
    )


def _method(teachers: list[dict], feed: dict) -> str:
    """How the student was taught, in words: the card of a baseline must not claim FEED."""
    count = f"{len(teachers)} teacher{'s' if len(teachers) != 1 else ''}"
    uses_feed = any(beta > 0 for beta in feed.get("feed_beta") or [0.0])
    if not teachers:
        return "trained with cross-entropy only"
    if not uses_feed:
        return f"trained with logit knowledge distillation from the averaged logits of {count}"
    kind = "parallel FEED" if len(teachers) > 1 else "FEED"
    kd = " plus logit KD" if feed.get("kd_weight") else ""
    return f"distilled with {kind}{kd} from {count}"


def _loss_description(feed: dict, teachers: list[dict]) -> str:
    if not teachers:
        return "cross-entropy only."
    distance = "L1" if feed.get("feed_p", 1) == 1 else "squared L2"
    parts = [
        f"CE + Σ β_n·FEED_n with β = {feed.get('feed_beta')}, {distance} distance between L2-normalised maps, "
        f"'{feed.get('feed_reduction')}' reduction over C·H·W; connectors: {_connector_description(feed)}"
    ]
    if feed.get("kd_weight"):
        parts.append(f"plus logit KD (weight {feed['kd_weight']}, T = {feed.get('kd_temperature')})")
    return "; ".join(parts) + "."


def _connector_description(feed: dict) -> str:
    connector = feed.get("connector", {})
    mid = connector.get("mid_channels") or "C_s"
    return (
        f"{connector.get('num_layers')} × conv3×3 (inner width {mid}), norm {connector.get('norm')}, "
        f"activation {connector.get('activation')}"
    )


def _training_rows(results: dict) -> list[tuple[str, Any]]:
    config = results.get("config", {})
    keys = (
        "num_train_epochs",
        "max_steps",
        "per_device_train_batch_size",
        "learning_rate",
        "optim",
        "lr_scheduler_type",
        "weight_decay",
        "warmup_steps",
        "seed",
    )
    rows = [(key, config[key]) for key in keys if key in config and config[key] not in (None, -1)]
    # transformers 5 takes a warm-up fraction in warmup_steps when it is below 1.
    rows = [("warmup (fraction of steps)" if k == "warmup_steps" and 0 < v < 1 else k, v) for k, v in rows]
    rows.append(("training examples", results.get("data", {}).get("num_train")))
    rows.append(("hardware", results.get("hardware", "?")))
    rows.append(("wall time (s)", results.get("wall_time_s")))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items())))
    return rows


def _format(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _result_rows(metrics: dict, teachers: list[dict], baseline_top1: float | None) -> list[dict[str, str]]:
    rows = [
        {"name": "this model", "top1": _format(metrics.get("eval_top1")), "top5": _format(metrics.get("eval_top5"))}
    ]
    rows += [{"name": f"teacher {i}", "top1": _format(t["top1"]), "top5": "—"} for i, t in enumerate(teachers)]
    if baseline_top1 is not None:
        rows.append({"name": "CE baseline (same student, same schedule)", "top1": _format(baseline_top1), "top5": "—"})
    return rows
