"""Model cards for exported students and teachers, rendered from the template shipped in the package."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, constants
from transformers.modelcard import make_markdown_table, parse_log_history

from ...teachers.license_notes import restricting_licences
from ..export import write_export_file
from ..exported_model import exported_model_facts
from ..files import CARD_NAME, FEED_CONFIG_NAME, MODEL_CONFIG_NAME, RESULTS_NAME
from ..portable import portable_dataset, portable_teacher_source
from .backbone import backbone_rows
from .evidence import evidence_facts, read_evidence
from .metadata import card_metadata, dataset_label, pipeline_tag

__all__ = [
    "CARD_TEMPLATE",
    "CardArguments",
    "epoch_table",
    "hyperparameter_rows",
    "initialisation",
    "metric_rows",
    "render_model_card",
    "write_model_card",
    "write_model_card_from_results",
]

CARD_TEMPLATE = resources.files("feed_hf.publishing.card") / "templates" / "model_card.md"
# transformers' column names for the metrics feed-hf logs (parse_log_history capitalises the rest).
_COLUMN_NAMES = {"Top1": "Top-1 (%)", "Top5": "Top-5 (%)"}
_TIMINGS = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_model_preparation_time"}


def render_model_card(
    export_dir: str | Path,
    results: dict[str, Any],
    repo_id: str | None = None,
    baseline_top1: float | None = None,
    evidence: dict[str, Any] | None = None,
) -> ModelCard:
    """The card of an exported folder, from its config.json, feed_config.json and `results` (results.json);
    `evidence` (`evidence.read_evidence`): the paired-seed results of the experiment the run belongs to.

    Sources appear in their portable form (Hub ids, folder names): a card names no path of this machine,
    and its loading code names the repo, or the folder by name when there is no repo yet.
    """
    export_dir = Path(export_dir)
    config = json.loads((export_dir / MODEL_CONFIG_NAME).read_text())
    feed = json.loads((export_dir / FEED_CONFIG_NAME).read_text())
    metrics = results.get("metrics", {})
    data = _card_data(results)
    teachers = [_teacher_row(spec, resolved) for spec, resolved in _zip_teachers(feed, results)]
    facts = exported_model_facts(config, feed)
    architecture = facts["architecture"]
    name = repo_id.split("/")[-1] if repo_id else export_dir.resolve().name  # a folder's name, never its path
    name = (results.get("card") or {}).get("model_name") or name
    baseline_top1 = baseline_top1 if baseline_top1 is not None else results.get("baseline_top1")
    label_free = bool(results.get("label_free"))
    return ModelCard.from_template(
        card_metadata({**results, "data": data}, feed, name),
        template_path=str(CARD_TEMPLATE),
        model_name=name,
        summary=_summary(architecture, teachers, dataset_label(data), metrics, feed, results),
        architecture=architecture,
        num_parameters=f"{results.get('num_parameters', 0):,}",
        num_classes=facts["num_classes"],
        input_size="×".join(str(s) for s in facts["input_size"]),
        transformers_format=facts["library"] == "transformers",
        backbone_rows=backbone_rows(results),
        loss_description=_loss_description(feed, teachers, label_free),
        teachers=teachers,
        initialisation=initialisation(results),
        license_line=_license_line(results.get("license") or {}),
        hyperparameter_rows=hyperparameter_rows(results),
        run_rows=_run_rows(results),
        epoch_table=epoch_table(results.get("log_history") or []),
        eval_description=_eval_description(data),
        result_rows=_result_rows(metrics, teachers, baseline_top1) if "eval_top1" in metrics else [],
        metric_rows=metric_rows(metrics),
        evidence=evidence_facts(evidence),
        feature_extraction=pipeline_tag(results) == "image-feature-extraction",
        needs_import=architecture.endswith("_cifar"),
        timm_id=f"hf-hub:{repo_id}" if repo_id else f"local-dir:{name}",
        repo_ref=repo_id or name,
    )


def _card_data(results: dict[str, Any]) -> dict[str, Any]:
    """The data facts, with the `dataset` and `dataset_args` given to push_to_hub/create_model_card winning."""
    data = {**(results.get("data") or {})}
    data["dataset"] = portable_dataset(data.get("dataset"))
    card = results.get("card") or {}
    if card.get("dataset"):
        data["dataset_name"] = ", ".join(card["dataset"])
    if card.get("dataset_args"):
        data["dataset_config_name"] = ", ".join(card["dataset_args"])
    return data


def initialisation(results: dict[str, Any]) -> str:
    """Where the student's weights started, in words (results.json's student_source, else its base_model)."""
    source = results.get("student_source") or {"kind": "timm pretrained" if results.get("base_model") else "fresh"}
    declared = (results.get("card") or {}).get("finetuned_from")
    base = source.get("base_model") or results.get("base_model")
    kind = source.get("kind")
    if kind == "fresh":
        text = "random (trained from scratch)"
    elif kind == "module passed in":
        text = "a module passed in to FeedTrainer (feed-hf does not know where its weights came from)"
    elif kind in ("feed-hf export", "local folder"):
        teachers = ", ".join(f"`{t}`" for t in source.get("teachers") or [])
        lineage = f", itself distilled from {teachers}" if teachers else ""
        origin = f", first trained from `{base}`" if base else ""
        licence = f", licence `{source['license']}`" if source.get("license") else ", licence not recorded"
        text = f"the weights of the {kind} `{source.get('name')}`{lineage}{origin}{licence}; classifier re-initialised"
    else:
        text = f"pretrained weights of `{base}` (the `base_model`), classifier re-initialised"
    return text + (f" (declared fine-tuned from `{declared}`)" if declared else "")


@dataclass
class CardArguments:
    export_dir: str = field(metadata={"help": "An exported folder (config.json, feed_config.json, results.json)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo id the card will live in (loading code)."})
    baseline_dir: str | None = field(
        default=None, metadata={"help": "A CE-baseline export of the same student: its accuracy joins the table."}
    )
    evidence: str | None = field(
        default=None,
        metadata={
            "help": "The .json `feed-hf experiment` wrote beside its report (e.g. results/cifar10_cpu.json): "
            "its paired-seed tests (primary test, every comparison, minimum detectable difference) join the card."
        },
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
    evidence = read_evidence(card_args.evidence) if card_args.evidence else None
    return write_model_card(
        export_dir, results, repo_id=card_args.repo_id, baseline_top1=baseline_top1, evidence=evidence
    )


def write_model_card(export_dir: str | Path, results: dict[str, Any], **kwargs: Any) -> Path:
    """Render the card into `export_dir/README.md`, atomically, as part of the current export."""
    return write_export_file(export_dir, CARD_NAME, str(render_model_card(export_dir, results, **kwargs)))


def _zip_teachers(feed: dict, results: dict[str, Any]) -> list[tuple[str, dict]]:
    """(spec, resolved facts) per teacher; a local teacher's top-1 is measured beside it and read when the run is
    recorded, so it lives in results.json's `feed` record, not in feed_config.json: taken from there."""
    resolved = feed.get("resolved_teachers", [])
    recorded = (results.get("feed") or {}).get("resolved_teachers") or []
    resolved = [
        {**facts, "top1": recorded[index].get("top1")} if facts.get("top1") is None and index < len(recorded) else facts
        for index, facts in enumerate(resolved)
    ]
    specs = feed.get("teachers") or [r.get("architecture", "module") for r in resolved]
    return list(zip(specs, resolved, strict=False))


def _teacher_row(spec: str, resolved: dict) -> dict[str, Any]:
    hub_id, revision = resolved.get("hf_hub_id"), resolved.get("revision")
    source = spec if spec.startswith("hf-hub:") else portable_teacher_source(spec).removeprefix("local-dir:")
    if hub_id:  # linked, at the commit its weights came from
        source = f"[{hub_id}]({constants.ENDPOINT}/{hub_id}/tree/{revision or constants.DEFAULT_REVISION})"
    return {
        "source": source,
        "architecture": resolved.get("architecture", "?"),
        "revision": revision,
        "top1": resolved.get("top1"),
    }


def _eval_description(data: dict) -> str:
    size = f", {data['num_eval']:,} images" if data.get("num_eval") else ""
    config = f", config `{data['dataset_config_name']}`" if data.get("dataset_config_name") else ""
    return f"{dataset_label(data)} ({data.get('eval_split') or 'held-out'} split{config}{size})"


def _license_line(license_record: dict) -> str:
    sources = "; ".join(
        f"{s['role']} `{s['name']}`: {s['license'] or 'unknown'}" for s in license_record.get("sources") or []
    )
    of_sources = f" Its sources: {sources}." if sources else ""
    of_sources += restricting_licences(license_record.get("sources") or [])
    if license_record.get("id"):
        chosen = {"model_license": "chosen with `model_license`", "inherited": "the licence all its sources share"}
        how = chosen.get(license_record.get("source"), f"given to {license_record.get('source')}")
        return f"`{license_record['id']}` ({how}).{of_sources}"
    return f"not chosen: {license_record.get('reason') or 'set model_license'}.{of_sources}"


def _summary(architecture: str, teachers: list[dict], dataset: str, metrics: dict, feed: dict, results: dict) -> str:
    top1, task = metrics.get("eval_top1"), results.get("task", "")
    accuracy = f", reaching {top1:.2f}% top-1" if top1 is not None else ""
    method = _method(teachers, feed, bool(results.get("label_free")))
    if task.startswith("sfeed_generation_"):
        generation = task.removeprefix("sfeed_generation_")
        taught_by = f" ({method}, the previous generation)" if teachers else f", {method}"
        method = f"generation {generation} of sequential FEED{taught_by}"
    role = "backbone (feature extractor)" if results.get("label_free") else ""
    return (
        f"A `{architecture}`{f' {role}' if role else ''}, {method}, on {dataset}{accuracy}. "
        "Trained with [feed-hf](https://github.com/feed-hf/feed-hf)."
    )


def _method(teachers: list[dict], feed: dict, label_free: bool = False) -> str:
    """How the student was taught, in words: the card of a baseline must not claim FEED."""
    count = f"{len(teachers)} teacher{'s' if len(teachers) != 1 else ''}"
    uses_feed = any(beta > 0 for beta in feed.get("feed_beta") or [0.0])
    if not teachers:
        return "trained with cross-entropy only"
    if not uses_feed:
        return f"trained with logit knowledge distillation from the averaged logits of {count}"
    kind = "parallel FEED" if len(teachers) > 1 else "FEED"
    kd = " plus logit KD" if feed.get("kd_weight") else ""
    without_labels = " without labels (no cross-entropy)" if label_free else ""
    return f"distilled with {kind}{kd} from {count}{without_labels}"


def _loss_description(feed: dict, teachers: list[dict], label_free: bool = False) -> str:
    if not teachers:
        return "cross-entropy only."
    distance = "L1" if feed.get("feed_p", 1) == 1 else "squared L2"
    loss = "Σ β_n·FEED_n (no cross-entropy: the data had no labels)" if label_free else "CE + Σ β_n·FEED_n"
    parts = [
        f"{loss} with β = {feed.get('feed_beta')}, {distance} distance between L2-normalised maps, "
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


def hyperparameter_rows(results: dict) -> list[tuple[str, Any]]:
    """transformers' TrainingSummary hyperparameters as recorded, or those of results.json's config (older runs)."""
    if results.get("hyperparameters"):
        return list(results["hyperparameters"].items())
    config = results.get("config", {})
    keys = ("learning_rate", "per_device_train_batch_size", "seed", "optim", "lr_scheduler_type", "num_train_epochs")
    return [(key, config[key]) for key in keys if config.get(key) not in (None, -1)]


def _run_rows(results: dict) -> list[tuple[str, Any]]:
    data = results.get("data", {})
    rows = [
        ("training examples", data.get("num_train")),
        ("evaluation examples", data.get("num_eval")),
        ("images skipped as undecodable", sum((data.get("skipped_images") or {}).values()) or None),
        ("processes (world size)", results.get("world_size")),
        ("mixed precision", results.get("mixed_precision")),
        ("hardware", results.get("hardware")),
        ("wall time (s)", results.get("wall_time_s")),
        ("code version", results.get("code_version")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (results.get("versions") or {}).items()) or None),
    ]
    return [(key, value) for key, value in rows if value is not None]


def epoch_table(log_history: list[dict]) -> str:
    """The Trainer's log as transformers' model cards tabulate it (`parse_log_history`: one row per evaluation,
    every metric a `compute_metrics` returned), plus the evaluation after training when it differs from the last
    row; the end of training alone when it never evaluated."""
    _, rows, final = parse_log_history(log_history)
    if final and (not rows or any(rows[-1].get(k) != v for k, v in final.items() if k != "Loss")):
        last = next((e for e in reversed(log_history) if "eval_loss" in e), {})
        rows.append({"Training Loss": "—", "Epoch": last.get("epoch"), "Step": last.get("step"), **_renamed(final)})
    if not rows:
        losses = [entry["loss"] for entry in log_history if "loss" in entry]
        last = next((entry for entry in reversed(log_history) if "step" in entry), {})
        rows = [{"Training Loss": losses[-1] if losses else "—", "Epoch": last.get("epoch"), "Step": last.get("step")}]
    return make_markdown_table([{_COLUMN_NAMES.get(k, k): v for k, v in row.items()} for row in rows])


def _renamed(final: dict[str, Any]) -> dict[str, Any]:
    return {("Validation Loss" if key == "Loss" else key): value for key, value in final.items()}


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """Every `eval_*` metric the last evaluation logged (a `compute_metrics` of the user's too), with its value."""
    return [
        (key.removeprefix("eval_"), _format(value) if key in ("eval_top1", "eval_top5") else f"{value:.4g}")
        for key, value in metrics.items()
        if key.startswith("eval_") and key not in _TIMINGS and isinstance(value, int | float)
    ]


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
