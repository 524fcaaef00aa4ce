"""Accuracy of exported models (folder or Hub) and of logit ensembles on an `image`/`label` split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from timm.data import resolve_model_data_config
from torch import nn
from torch.utils.data import DataLoader

from ..data.loading import DataArguments, load_image_splits
from ..data.transforms import build_transform, column_names, with_pixel_values
from ..evaluation.metrics import top_k_from_logits
from ..publishing.files import atomic_write_text
from ..teachers.frozen import load_teacher_model
from ..teachers.sources import TeacherSourceError, load_folder_teacher, load_hub_teacher
from ..transformers_models.formats import is_transformers_spec
from .backbone_evaluation import RUN_SPLITS, run_backbone_evaluation

__all__ = [
    "EvaluateArguments",
    "ensemble_top1",
    "evaluation_split",
    "load_exported_model",
    "predict_logits",
    "predict_logits_and_labels",
    "run_evaluation",
]


@dataclass
class EvaluateArguments:
    """What `feed-hf evaluate` measures: which model, on which split, and where the JSON goes."""

    model: str = field(
        metadata={"help": "The model: an exported folder, local-dir:PATH, or hf-hub:ns/name[@revision] (timm format)."}
    )
    split: str = field(
        metadata={
            "help": "The split to measure: 'eval' is the split training evaluated on (--eval_split, or the share "
            "of train carved by --validation_fraction with --seed, then --max_eval_samples, all as in training); "
            "'train' is the training split (then --max_train_samples); any other name is that split of the dataset "
            "(e.g. test), whole unless --max_eval_samples."
        }
    )
    seed: int = field(
        default=42, metadata={"help": "The training run's --seed (it chose the carved eval split and the subsets)."}
    )
    batch_size: int = field(default=128, metadata={"help": "Images per forward pass."})
    output_json: str | None = field(default=None, metadata={"help": "Also write the report to this JSON file."})
    allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "Load a model whose weights exist only as a pickle (pytorch_model.bin), which can run code "
            "when loaded; it is then read with weights_only=True. Off: such a model is refused."
        },
    )
    protocol: list[str] = field(
        default_factory=lambda: ["top1"],
        metadata={
            "help": "top1: the model's own classifier (top-1/top-5). knn and/or linear: judged as a backbone, k-NN "
            "and a linear probe on its frozen pooled features, fitted on --probe_train_split; then --model may be "
            "any teacher spec (a timm name with weights, hf-hub: timm or transformers repos, NAME=FILE)."
        },
    )
    probe_train_split: str = field(
        default="train",
        metadata={
            "help": "With --protocol knn/linear: the split the probe is fitted on: 'train'/'eval' as for --split, or "
            "a split or slice of the dataset (e.g. 'train[:5000]'), read whole and refused if it shares rows with "
            "--split (it may overlap --train_split: a probe is usually fitted on training images)."
        },
    )
    knn_k: int = field(default=20, metadata={"help": "With --protocol knn: neighbours that vote (DINO: 20)."})
    record_in: str | None = field(
        default=None,
        metadata={
            "help": "With --protocol knn/linear: the export folder whose results.json and card get this result "
            "(e.g. the student's, for a teacher). Default: the model's own folder when it is an export."
        },
    )


def load_exported_model(source: str | Path, allow_pickle: bool = False) -> nn.Module:
    """A timm- or transformers-format model in eval mode from a folder, `local-dir:PATH` or `hf-hub:ns/name[@rev]`.

    Read as teachers and students are (`teacher_sources`): `model.safetensors` whenever there is one, a pickle
    (`pytorch_model.bin`) only with `allow_pickle` and then with `weights_only=True`, the weights checked against
    the architecture on the meta device first.
    """
    spec = str(source)
    if not spec.startswith(("hf-hub:", "local-dir:")) and not Path(spec).is_dir():
        raise ValueError(
            f"model {spec!r} is neither an existing folder, local-dir:PATH nor hf-hub:ns/name[@revision]; "
            "give an exported model (config.json + model.safetensors)"
        )
    folder = spec.removeprefix("local-dir:")
    if not spec.startswith("hf-hub:") and not (Path(folder) / "config.json").is_file():
        raise ValueError(f"model {str(source)!r}: {folder!r} holds no config.json; give a folder exported by feed-hf")
    try:
        if is_transformers_spec(spec):  # a transformers student's export (save_pretrained + its processor)
            return load_teacher_model(spec, allow_pickle).eval()
        if spec.startswith("hf-hub:"):
            return load_hub_teacher(spec, allow_pickle).eval()
        return load_folder_teacher(spec, folder, allow_pickle).eval()
    except TeacherSourceError as error:  # the shared loaders name a teacher and its opt-in: say model, --allow_pickle
        message = (
            str(error).replace("teacher ", "model ", 1).replace("teacher_allow_pickle=True", "--allow_pickle true")
        )
        raise ValueError(message) from None


def predict_logits(model: str | Path | nn.Module, split: datasets.Dataset, batch_size: int = 128) -> np.ndarray:
    """Logits `[N, K]` of `model` (a module, or a source as `load_exported_model` takes) with its own eval transform."""
    return predict_logits_and_labels(model, split, batch_size)[0]


@torch.no_grad()
def predict_logits_and_labels(
    model: str | Path | nn.Module, split: datasets.Dataset | datasets.IterableDataset, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits `[N, K]` and the labels read beside them (None for an unlabelled split): a stream is read once."""
    model = model if isinstance(model, nn.Module) else load_exported_model(model)
    data_config = resolve_model_data_config(model)
    dataset = with_pixel_values(split, build_transform(data_config, training=False), data_config["input_size"][0])
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits.append(model(batch["pixel_values"]))
        if "labels" in batch:
            labels.append(torch.as_tensor(batch["labels"]))
    return torch.cat(logits).numpy(), torch.cat(labels).numpy() if labels else None


def ensemble_top1(model_dirs: Sequence[str | Path], split: datasets.Dataset) -> float:
    """Top-1 (%) of the models' averaged logits: the logit ensemble a FEED student competes with."""
    mean_logits = np.mean([predict_logits(model_dir, split) for model_dir in model_dirs], axis=0)
    return top_k_from_logits(mean_logits, split["label"])["top1"]


def evaluation_split(data_args: DataArguments, split: str, seed: int) -> datasets.Dataset:
    """The split `split` as training saw it: the run's label mapping, carving and subsets (`load_image_splits`)."""
    if split not in RUN_SPLITS:
        data_args = replace(data_args, eval_split=split)
    return load_image_splits(data_args, seed=seed, shuffle_stream=False)["train" if split == "train" else "eval"]


def run_evaluation(data_args: DataArguments, evaluate_args: EvaluateArguments) -> dict[str, Any]:
    """Top-1/top-5 (%) of `evaluate_args.model` on the chosen split; written to `output_json` when set."""
    _check_output_json(evaluate_args.output_json)
    if list(evaluate_args.protocol) != ["top1"]:  # judged as a backbone (backbone_evaluation.py)
        return run_backbone_evaluation(data_args, evaluate_args, evaluation_split)
    model = load_exported_model(evaluate_args.model, evaluate_args.allow_pickle)
    split = evaluation_split(data_args, evaluate_args.split, evaluate_args.seed)
    _check_classes(evaluate_args.model, model, split, evaluate_args.split)
    logits, labels = predict_logits_and_labels(model, split, evaluate_args.batch_size)
    report = {
        "model": evaluate_args.model,
        "dataset": data_args.dataset,
        "split": evaluate_args.split,
        "num_examples": len(labels),
        **top_k_from_logits(logits, labels),
    }
    if evaluate_args.output_json:
        atomic_write_text(evaluate_args.output_json, json.dumps(report, indent=2) + "\n")
    return report


def _check_output_json(output_json: str | None) -> None:
    """Before any work: `output_json` names a file whose folder exists (made here) or can be made."""
    if not output_json:
        return
    path = Path(output_json)
    if path.is_dir():
        raise ValueError(f"output_json {output_json!r} is a folder; give a file path, e.g. {str(path / 'eval.json')!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"output_json {output_json!r}: cannot create its folder ({error.strerror}); choose another"
        ) from None


def _check_classes(source: str, model: nn.Module, split: datasets.Dataset, split_name: str) -> None:
    """The split's classes must be the model's outputs, by name and order when the export names them."""
    if "label" not in column_names(split):
        raise ValueError(
            f"split {split_name!r} has no labels (a label-free split), and evaluate measures top-1 against labels; "
            "choose a labelled split (--split) or name its label column (--label_column)"
        )
    names = list(split.features["label"].names)
    trained = model.pretrained_cfg.get("label_names")
    if trained and list(trained) != names:
        raise ValueError(
            f"model {source!r} was trained on classes {_few(trained)} but this split's classes are {_few(names)}; "
            "evaluate on data with the same classes (same dataset and --label_column)"
        )
    if len(names) > model.num_classes:
        raise ValueError(
            f"model {source!r} has {model.num_classes} outputs but this split has {len(names)} classes; evaluate "
            "on the dataset it was trained on"
        )


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in list(names)[:5])
    return f"[{shown}{', …' if len(names) > 5 else ''}] ({len(names)})"
