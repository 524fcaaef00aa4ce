"""Reconstruction-error analysis: how well a FEED student's features reproduce each teacher's map."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from timm.data import resolve_model_data_config
from torch import nn
from torch.utils.data import DataLoader

from ..data.loading import DataArguments, load_image_splits
from ..data.transforms import build_transform, with_pixel_values
from ..method.connectors import FeedConnector
from ..method.features import FeatureTap
from ..method.losses import feed_distance
from ..method.modeling import FeedStudent, build_feed_student, student_map_shape
from ..publishing.export import CONNECTORS_NAME, FEED_CONFIG_NAME, export_file
from ..publishing.files import RESULTS_NAME
from ..publishing.portable import read_local_sources
from ..teachers.frozen import FrozenTeacher, load_teacher_model, recorded_teacher_spec
from ..teachers.sources import TeacherSourceError, load_folder_teacher

__all__ = ["AnalysisArguments", "fit_heldout_connector", "load_feed_run", "reconstruction_errors", "run_analysis"]


@dataclass
class AnalysisArguments:
    run_dir: str = field(metadata={"help": "A FEED run's export folder (config.json, feed_config.json, connectors)."})
    heldout_teachers: list[str] = field(
        default_factory=list,
        metadata={"help": "Teachers NOT used in training: a fresh connector is fitted to each and its error reported."},
    )
    heldout_steps: int = field(default=200, metadata={"help": "Optimisation steps for each held-out connector."})
    heldout_learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate of held-out connectors."})
    batch_size: int = field(default=64, metadata={"help": "Batch size for feature extraction."})
    max_samples: int | None = field(default=512, metadata={"help": "Images per split (None: all)."})
    output_dir: str | None = field(default=None, metadata={"help": "Where to write. Default: RUN_DIR/analysis."})
    seed: int = field(default=0, metadata={"help": "Seed of subsets and held-out connector initialisation."})
    allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "Load a student or teacher whose weights exist only as a pickle (.bin/.pth), which can run code "
            "when loaded; it is then read with weights_only=True. Off: such weights are refused."
        },
    )


def load_feed_run(
    run_dir: str | Path, allow_pickle: bool = False
) -> tuple[FeedStudent, list[FrozenTeacher], dict[str, Any]]:
    """The exported student with its trained connectors, its teachers (frozen) and feed_config.json.

    Every weights file goes through the teachers' loaders (`teacher_sources`: a pickle only with `allow_pickle`).
    """
    run_dir = Path(run_dir)
    feed = json.loads((run_dir / FEED_CONFIG_NAME).read_text())
    # feed_config.json names teachers portably (folder names); this machine's paths are kept beside it.
    feed["teachers"] = read_local_sources(run_dir).get("teachers") or feed["teachers"]
    if not feed["teachers"] or not export_file(run_dir, CONNECTORS_NAME).is_file():
        raise ValueError(f"{run_dir} is not a FEED student with connectors (no teachers or no {CONNECTORS_NAME})")
    student = _loaded("student", lambda: load_folder_teacher(str(run_dir), run_dir, allow_pickle))
    data_config = resolve_model_data_config(student)
    tap = FeatureTap(student, feed["student_feature_index"], feed["student_feature_module"], role="student")
    student_map_size = tuple(student_map_shape(student, tap)[1:])
    input_sizes = feed.get("teacher_input_sizes") or [None]
    teachers = [
        FrozenTeacher(
            # A Hub teacher at the commit the run used (resolved_teachers), not the repo's current one.
            _loaded(
                "teacher",
                lambda spec=spec, resolved=resolved: load_teacher_model(
                    recorded_teacher_spec(spec, resolved), allow_pickle
                ),
            ),
            data_config,
            feature_index=_or_last(resolved["feature_index"]),
            feature_module=resolved["feature_module"],
            name=f"teacher {i} ({spec})",
            student_map_size=student_map_size,
            input_size=input_sizes[i] if len(input_sizes) > 1 else input_sizes[0],
        )
        for i, (spec, resolved) in enumerate(zip(feed["teachers"], feed["resolved_teachers"], strict=True))
    ]
    feed_student = build_feed_student(
        student, teachers, feed["student_feature_index"], feed["student_feature_module"], **feed["connector"]
    )
    _load_connectors(feed_student, export_file(run_dir, CONNECTORS_NAME))
    return feed_student.eval(), teachers, feed


def _loaded(role: str, load: Callable[[], nn.Module]) -> nn.Module:
    """`load()`, its refusal worded for `feed-hf analyze`: the role it loads, and its `--allow_pickle` opt-in."""
    try:
        return load()
    except TeacherSourceError as error:  # the shared loaders name a teacher and FeedConfig's teacher_allow_pickle
        message = str(error).replace("teacher ", f"{role} ", 1)
        raise ValueError(message.replace("teacher_allow_pickle=True", "--allow_pickle true")) from None


def _load_connectors(feed_student: FeedStudent, path: Path) -> None:
    try:
        state = safetensors.torch.load_file(path)
    except (safetensors.SafetensorError, OSError) as error:
        raise ValueError(
            f"connectors file {path} is not a readable safetensors file ({error}); is it truncated? Re-export the "
            "run (or copy the file again)"
        ) from None
    try:
        feed_student.connectors.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"connectors file {path} does not fit this run's connectors ({detail})") from None


def _or_last(index: int | None) -> int:
    return -1 if index is None else index


@torch.no_grad()
def reconstruction_errors(
    connected_maps_fn, teachers: list[FrozenTeacher], loader: DataLoader, p: int, reduction: str
) -> list[float]:
    """Mean Eq. 2 distance per teacher over `loader`, with `connected_maps_fn(pixels) -> [map per teacher]`."""
    totals, count = torch.zeros(len(teachers)), 0
    for batch in loader:
        pixels = batch["pixel_values"]
        connected = connected_maps_fn(pixels)
        for index, teacher in enumerate(teachers):
            target, _ = teacher(pixels)
            totals[index] += feed_distance(connected[index], target, p=p, reduction=reduction) * len(pixels)
        count += len(pixels)
    return (totals / count).tolist()


def _connected_maps(feed_student: FeedStudent):
    def connect(pixels: torch.Tensor) -> list[torch.Tensor]:
        student_map = feed_student.feature_tap.map_only(feed_student.student, pixels)
        return [connector(student_map) for connector in feed_student.connectors]

    return connect


def fit_heldout_connector(
    feed_student: FeedStudent,
    teacher: FrozenTeacher,
    loader: DataLoader,
    steps: int,
    learning_rate: float,
    connector_options: dict[str, Any],
    p: int,
    reduction: str,
) -> FeedConnector:
    """A fresh connector from the frozen student's map to `teacher`'s, fitted with Eq. 2 for `steps` steps.

    `teacher` was built with the student's map size, so it already compares at the right H×W.
    """
    student_channels = student_map_shape(feed_student.student, feed_student.feature_tap)[0]
    connector = FeedConnector(
        student_channels, teacher.feature_shape[0], output_size=teacher.compare_size, **connector_options
    )
    optimizer = torch.optim.Adam(connector.parameters(), lr=learning_rate)
    step = 0
    while step < steps:
        for batch in loader:
            with torch.no_grad():
                student_map = feed_student.feature_tap.map_only(feed_student.student, batch["pixel_values"])
                target, _ = teacher(batch["pixel_values"])
            loss = feed_distance(connector(student_map), target, p=p, reduction=reduction)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    return connector.eval()


def run_analysis(args: AnalysisArguments, data_args: DataArguments | None = None) -> dict[str, Any]:
    """Per-teacher reconstruction error on train and test, plus the held-out protocol; JSON + PNG."""
    torch.manual_seed(args.seed)
    run_dir = Path(args.run_dir)
    feed_student, teachers, feed = load_feed_run(run_dir, args.allow_pickle)
    data_args = data_args or _run_data_arguments(run_dir)
    loaders = _eval_loaders(feed_student.student, data_args, args)
    p, reduction = feed["feed_p"], feed["feed_reduction"]
    connect = _connected_maps(feed_student)
    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "distance": {"p": p, "reduction": reduction},
        "teachers": feed["teachers"],
        "trained": {
            split: reconstruction_errors(connect, teachers, loader, p, reduction) for split, loader in loaders.items()
        },
        "heldout": [],
    }
    student_config = resolve_model_data_config(feed_student.student)
    student_map_size = tuple(student_map_shape(feed_student.student, feed_student.feature_tap)[1:])
    for spec in args.heldout_teachers:
        teacher = FrozenTeacher(
            _loaded("teacher", lambda spec=spec: load_teacher_model(spec, args.allow_pickle)),
            student_config,
            name=f"held-out ({spec})",
            student_map_size=student_map_size,
        )
        connector = fit_heldout_connector(
            feed_student,
            teacher,
            loaders["train"],
            args.heldout_steps,
            args.heldout_learning_rate,
            feed["connector"],
            p,
            reduction,
        )
        connect_one = lambda pixels, c=connector: [c(feed_student.feature_tap.map_only(feed_student.student, pixels))]
        errors = {
            split: reconstruction_errors(connect_one, [teacher], loader, p, reduction)[0]
            for split, loader in loaders.items()
        }
        report["heldout"].append({"teacher": spec, **errors})
    output_dir = Path(args.output_dir or run_dir / "analysis")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "reconstruction.json").write_text(json.dumps(report, indent=2))
    report["plot"] = str(plot_reconstruction(report, output_dir / "reconstruction.png"))
    return report


def _run_data_arguments(run_dir: Path) -> DataArguments:
    results_file = run_dir / RESULTS_NAME
    if not results_file.is_file():
        raise ValueError(f"{run_dir} has no results.json; pass the dataset explicitly (--dataset ...)")
    recorded = {**json.loads(results_file.read_text())["data"], **read_local_sources(run_dir).get("data", {})}
    fields = DataArguments.__dataclass_fields__
    return DataArguments(**{k: v for k, v in recorded.items() if k in fields})


def _eval_loaders(student: nn.Module, data_args: DataArguments, args: AnalysisArguments) -> dict[str, DataLoader]:
    splits = load_image_splits(data_args, seed=args.seed)
    data_config = resolve_model_data_config(student)
    transform = build_transform(data_config, training=False)
    loaders = {}
    for name, split_name in (("train", "train"), ("test", "eval")):
        split = splits[split_name]
        if args.max_samples is not None and len(split) > args.max_samples:
            split = split.shuffle(seed=args.seed).select(range(args.max_samples))
        dataset = with_pixel_values(split, transform, data_config["input_size"][0])
        loaders[name] = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    return loaders


def plot_reconstruction(report: dict[str, Any], path: Path) -> Path:
    """Bar chart: Eq. 2 error per teacher on train vs test (trained connectors, then held-out ones)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plots need matplotlib: pip install 'feed-hf[plots]'") from error
    labels = [f"T{i}" for i in range(len(report["teachers"]))] + [
        f"held-out {i}" for i in range(len(report["heldout"]))
    ]
    train = report["trained"]["train"] + [h["train"] for h in report["heldout"]]
    test = report["trained"]["test"] + [h["test"] for h in report["heldout"]]
    positions = range(len(labels))
    figure, axis = plt.subplots(figsize=(max(4, 1.4 * len(labels)), 3.2))
    axis.bar([x - 0.2 for x in positions], train, width=0.4, label="train")
    axis.bar([x + 0.2 for x in positions], test, width=0.4, label="test")
    axis.set_xticks(list(positions), labels)
    axis.set_ylabel(f"Eq. 2 distance (p={report['distance']['p']}, {report['distance']['reduction']})")
    axis.set_title("Teacher feature reconstruction error")
    axis.set_ylim(0, max(train + test) * 1.25)  # headroom so the legend covers no bar
    axis.legend(ncol=2, loc="upper center")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
