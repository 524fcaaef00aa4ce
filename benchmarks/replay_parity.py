"""Accuracy of replayed augmentation (teacher store, K views) against live augmentation, same seeds and epochs.

    python benchmarks/replay_parity.py                                         # miniature CPU scale (defaults)
    python benchmarks/replay_parity.py --num_train 50000 --num_test 10000 --epochs 240 --views 8 \\
        --teacher resnet56_cifar=TEACHER.safetensors                            # the real comparison (a GPU)

Both arms train `resnet20_cifar` with FEED from the same teacher(s) and `batch_augmentation=crop_flip`, on the
first `num_train` CIFAR-10 training images decoded once to tensors (../shared/data/cifar10-jpeg), and report
top-1 on the first `num_test` test images: "live" crops/flips each batch and runs the teachers on it; "replayed"
reads the store (built once, shared by every seed) and replays one of its K recorded crops/flips per image and
epoch (stored as `--store_dtype`: bf16 by default, pca_int8 for the compressed store). Prints mean ± std over the
seeds and writes JSON (--output_json).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from teacher_store_epoch import cifar_tensors, make_trainer
from transformers import HfArgumentParser

from feed_hf.publishing.run_record import hardware_description, library_versions
from feed_hf.teachers.frozen import load_teacher_model


@dataclass
class ParityArguments:
    num_train: int = field(default=1000, metadata={"help": "Training images (the first of the split)."})
    num_test: int = field(default=1000, metadata={"help": "Test images."})
    epochs: int = field(default=3, metadata={"help": "Epochs per run."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds (one run per arm each)."})
    views: int = field(default=8, metadata={"help": "Views K recorded per image."})
    store_dtype: str = field(default="bfloat16", metadata={"help": "teacher_store_dtype of the replayed arm."})
    energy_share: float = field(default=0.99, metadata={"help": "teacher_store_energy_share (pca_int8 only)."})
    teacher: str = field(
        default="resnet20_cifar",
        metadata={"help": "A teacher spec (e.g. resnet56_cifar=FILE); a bare CIFAR name: random weights, seed 100."},
    )
    batch_size: int = field(default=128, metadata={"help": "Images per step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW learning rate."})
    output_json: str = field(default="runs/benchmarks/replay_parity.json", metadata={"help": "JSON output."})


def teacher_model(spec: str) -> torch.nn.Module:
    """A bare CIFAR architecture name: random weights (seed 100); any other teacher spec (a trained folder,
    `NAME=FILE`, `hf-hub:`) is loaded as the `teachers` option loads it."""
    if "=" in spec or ":" in spec or Path(spec).is_dir():
        return load_teacher_model(spec)
    torch.manual_seed(100)
    return timm.create_model(spec, num_classes=10)


def store_bytes_per_view(store_dir: Path, images: int, views: int) -> float:
    """Bytes on disk of one built store (its folder: shards, checksums, codec, manifest) per stored image-view, the
    mean over the stores built (one per seed: the recorded crops follow the run's seed)."""
    stores = [manifest.parent for manifest in store_dir.rglob("manifest.json")]
    sizes = [sum(path.stat().st_size for path in store.rglob("*") if path.is_file()) for store in stores]
    return sum(sizes) / len(sizes) / (images * views) if sizes else 0.0


def run_arm(args: ParityArguments, replayed: bool, seed: int, store_dir: Path, train, test) -> float:
    options = {"teacher_store": True, "teacher_store_views": args.views, "teacher_store_dir": str(store_dir),
               "teacher_store_dtype": args.store_dtype}  # fmt: skip
    if args.store_dtype == "pca_int8":
        options["teacher_store_energy_share"] = args.energy_share
    trainer = make_trainer(
        store_dir / "run",
        [teacher_model(args.teacher)],
        train,
        args.batch_size,
        seed=seed,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        **(options if replayed else {}),
    )
    trainer.train()
    return trainer.evaluate(test)["eval_top1"]


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(ParityArguments).parse_args_into_dataclasses(args=argv)
    train, test = cifar_tensors("train", args.num_train), cifar_tensors("test", args.num_test)
    accuracy: dict[str, list[float]] = {"live": [], "replayed": []}
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for arm in accuracy:
                accuracy[arm].append(run_arm(args, arm == "replayed", seed, Path(folder), train, test))
                print(f"seed {seed} {arm}: top-1 {accuracy[arm][-1]:.2f} %", flush=True)
        bytes_per_view = store_bytes_per_view(Path(folder), args.num_train, args.views)
    summary = {arm: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for arm, v in accuracy.items()}
    for arm, (mean, std) in summary.items():
        print(f"{arm}: {mean:.2f} ± {std:.2f} % (n = {len(args.seeds)})")
    differences = [replayed - live for live, replayed in zip(accuracy["live"], accuracy["replayed"], strict=True)]
    print(f"replayed − live per seed: {', '.join(f'{d:+.2f}' for d in differences)}")
    print(f"store: {bytes_per_view:,.0f} bytes per image-view ({args.store_dtype}; one store's files, mean over seeds)")
    record = {
        "arguments": asdict(args),
        "device": hardware_description(),
        "versions": library_versions(),
        "top1": accuracy,
        "summary": summary,
        "replayed_minus_live": differences,
        "store_bytes_per_image_view": bytes_per_view,
    }
    Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_json).write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
