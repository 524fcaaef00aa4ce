"""`feed-hf evaluate --protocol knn linear`: a model judged as a backbone (k-NN and linear probe on its frozen
pooled features, `feed_hf.evaluation.backbone_eval`), for an exported student and for any teacher spec alike.

The probe is fitted on `--probe_train_split` (the run's train split by default, or any split or slice) and scored on
`--split`, as training saw it (`evaluation_split`); `_probe_and_test` says which rows are checked against which.
The model is loaded as a teacher is (`load_teacher_model`: an exported folder, `hf-hub:` timm or transformers repos,
a timm name with weights, `NAME=FILE`, under the pickle policy) and read at its own eval transform. The report goes,
under the model's portable name, into `results.json["backbone_eval"]` of the export named by `--record_in`
(default: the model's own folder when it is an export with a results.json), and that export's card is rendered
again: its model-index then carries the student's own k-NN/linear top-1 and its text a table of every model judged
(student vs each teacher).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from timm.data import resolve_model_data_config

from ..data.loading import DataArguments, load_image_splits
from ..data.transforms import build_transform, column_names, with_pixel_values
from ..evaluation.backbone_eval import evaluate_backbone
from ..publishing.export import write_export_file
from ..publishing.files import CARD_NAME, RESULTS_NAME, atomic_write_text
from ..publishing.portable import portable_teacher_source
from ..teachers.frozen import load_teacher_model

__all__ = ["BACKBONE_PROTOCOLS", "RUN_SPLITS", "record_backbone_eval", "run_backbone_evaluation"]

BACKBONE_PROTOCOLS = ("knn", "linear")
RUN_SPLITS = ("train", "eval")  # split names that mean the run's own splits (feed_hf.runs.evaluation)


def run_backbone_evaluation(
    data_args: DataArguments, evaluate_args: Any, evaluation_split: Callable[[DataArguments, str, int], Any]
) -> dict[str, Any]:
    """k-NN and/or linear-probe top-1 (%) of `evaluate_args.model`; recorded (module docstring) and returned.
    `evaluation_split(data_args, name, seed)`: a split as training saw it (`runs.evaluation.evaluation_split`)."""
    protocols = list(evaluate_args.protocol)
    unknown = [name for name in protocols if name not in BACKBONE_PROTOCOLS]
    if unknown:
        raise ValueError(f"--protocol {unknown[0]!r}: expected top1, or knn and/or linear (backbone probes)")
    record_in = _record_folder(evaluate_args)
    model = load_teacher_model(evaluate_args.model, evaluate_args.allow_pickle).eval()
    splits = {}
    names = {"train": evaluate_args.probe_train_split, "test": evaluate_args.split}
    for role, split in _probe_and_test(data_args, evaluate_args, evaluation_split).items():
        name = names[role]
        if "label" not in column_names(split):
            raise ValueError(
                f"split {name!r} has no labels, and a backbone probe is judged against labels; choose a labelled "
                "split (--split / --probe_train_split) or name its label column (--label_column)"
            )
        data_config = resolve_model_data_config(model)
        transform = build_transform(data_config, training=False)
        splits[role] = with_pixel_values(split, transform, data_config["input_size"][0])
    measured = evaluate_backbone(
        model,
        splits["train"],
        splits["test"],
        protocols,
        evaluate_args.batch_size,
        k=evaluate_args.knn_k,
        seed=evaluate_args.seed,
    )
    report = {
        "model": portable_teacher_source(evaluate_args.model),
        "dataset": data_args.dataset,
        "train_split": evaluate_args.probe_train_split,
        "split": evaluate_args.split,
        "num_examples": measured["num_test"],
        **measured,
    }
    if record_in is not None:
        own = Path(evaluate_args.model.removeprefix("local-dir:"))
        record_backbone_eval(record_in, report, own.is_dir() and own.resolve() == record_in.resolve())
    if evaluate_args.output_json:
        atomic_write_text(evaluate_args.output_json, json.dumps(report, indent=2) + "\n")
    return report


def _probe_and_test(
    data_args: DataArguments, evaluate_args: Any, evaluation_split: Callable[[DataArguments, str, int], Any]
) -> dict[str, Any]:
    """{"train": the probe's rows, "test": the rows it is scored on}.

    The test split is read as training saw it, so rows of the run's `--train_split` are refused there (a model is
    not scored on images it trained on). A probe split the run names (`train`, `eval`) is read the same way; a
    dataset split or slice of its own (`train[:5000]`) is checked against the test rows only, since fitting a probe
    on training images is the usual protocol: it is loaded, whole, as the train side of a (probe, test) pair, so
    rows the two share are refused by name.
    """
    probe, test, seed = evaluate_args.probe_train_split, evaluate_args.split, evaluate_args.seed
    measured_on = evaluation_split(data_args, test, seed)
    if probe in RUN_SPLITS:
        return {"train": evaluation_split(data_args, probe, seed), "test": measured_on}
    test_rows = {"train": data_args.train_split, "eval": data_args.eval_split}.get(test, test)
    if test_rows is None:
        raise ValueError(
            f"--probe_train_split {probe!r} with --split 'eval' carved from the training split: the probe's rows "
            "cannot be checked against the carved ones; name the test split itself (--split NAME, e.g. "
            "'train[45000:]') or the run's --eval_split"
        )
    pair = replace(data_args, train_split=probe, eval_split=test_rows, max_train_samples=None)
    return {"train": load_image_splits(pair, seed=seed, shuffle_stream=False)["train"], "test": measured_on}


def _record_folder(evaluate_args: Any) -> Path | None:
    if evaluate_args.record_in:
        folder = Path(evaluate_args.record_in)
        if not (folder / RESULTS_NAME).is_file():
            raise ValueError(
                f"--record_in {evaluate_args.record_in!r} holds no {RESULTS_NAME}; name the export folder of the "
                "run whose card should show this result (or drop --record_in)"
            )
        return folder
    own = Path(evaluate_args.model.removeprefix("local-dir:"))
    return own if (own / RESULTS_NAME).is_file() else None


def record_backbone_eval(export_dir: str | Path, report: dict[str, Any], is_this_model: bool) -> None:
    """`report` into `export_dir/results.json["backbone_eval"][report["model"]]` (`is_this_model`: the export's own
    model, else e.g. one of its teachers); the card rendered again."""
    from ..publishing.card.render import write_model_card

    export_dir = Path(export_dir)
    results = json.loads((export_dir / RESULTS_NAME).read_text(encoding="utf-8"))
    results.setdefault("backbone_eval", {})[report["model"]] = report
    own = portable_teacher_source(f"local-dir:{export_dir}")
    results["backbone_eval"][report["model"]]["is_this_model"] = report["model"] in (
        own,
        own.removeprefix("local-dir:"),
    )
    write_export_file(export_dir, RESULTS_NAME, json.dumps(results, indent=2, default=str))
    if (export_dir / CARD_NAME).is_file():
        write_model_card(export_dir, results)
