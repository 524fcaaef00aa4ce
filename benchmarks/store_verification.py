"""What verifying a teacher store costs against one epoch that reads it (docs/performance.md, "Integrity").

    python benchmarks/store_verification.py                 # CPU defaults: 512 CIFAR-10 images, 3 teachers, K = 2
    python benchmarks/store_verification.py --num_images 4096 --repeats 5

Setting as `teacher_store_epoch.py` (its data and trainer): `resnet20_cifar` student, N `resnet56_cifar` teachers
(random weights), `batch_augmentation=crop_flip`, bf16 store. The store is built once; then, `repeats` times and
interleaved: opening it with no verification (the manifest read and every shard mapped), with the default sampled
verification and with the full one (`TeacherStore.open(..., verify=...)`), and one FEED epoch reading it
(`train_runtime`). Each is measured warm (the store in the page cache, as right after a build) and cold (the
store's pages evicted first with `posix_fadvise(DONTNEED)`, as on a run that finds an old store). The verification
cost is the opening time minus the unverified opening time; the ratio is that cost over the epoch's time.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from transformers import HfArgumentParser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_store_epoch import cifar_tensors, make_trainer  # noqa: E402

from feed_hf.publishing.run_record import hardware_description, library_versions  # noqa: E402
from feed_hf.store.integrity import read_manifest  # noqa: E402
from feed_hf.store.reader import MANIFEST, TeacherStore  # noqa: E402


@dataclass
class VerificationBenchmarkArguments:
    num_teachers: int = field(default=3, metadata={"help": "Teachers N."})
    num_images: int = field(default=512, metadata={"help": "Training images per epoch."})
    batch_size: int = field(default=128, metadata={"help": "Images per step."})
    views: int = field(default=2, metadata={"help": "Views K stored per image."})
    repeats: int = field(default=3, metadata={"help": "Interleaved rounds; medians reported."})
    output_json: str = field(default="runs/benchmarks/store_verification.json", metadata={"help": "JSON output."})


def evict(folders: list[Path]) -> None:
    """Drop the store's files (every part's) from the page cache (their pages are clean: nothing is lost)."""
    for path in (file for folder in folders for file in folder.iterdir()):
        with open(path, "rb") as file:
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def timed(action, folders: list[Path], cold: bool) -> float:  # noqa: ANN001
    if cold:
        evict(folders)
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(VerificationBenchmarkArguments).parse_args_into_dataclasses(args=argv)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else hardware_description()
    data = cifar_tensors("train", args.num_images)
    teachers = []
    for seed in range(args.num_teachers):
        torch.manual_seed(seed)
        teachers.append(timm.create_model("resnet56_cifar", num_classes=10))
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as root:
        options = {"teacher_store": True, "teacher_store_views": args.views, "teacher_store_dir": root}
        trainer = make_trainer(Path(root) / "run", teachers, data, args.batch_size, **options)
        parts, paths = trainer.teacher_feature_cache.parts, trainer.teacher_feature_cache.paths  # one per teacher
        openings = {
            "open_unverified": lambda: [TeacherStore(p.path, read_manifest(p.path, MANIFEST)) for p in parts],
            "open_sampled": lambda: [TeacherStore.open(p.path, p.manifest["key"], verify="sampled") for p in parts],
            "open_full": lambda: [TeacherStore.open(p.path, p.manifest["key"], verify="full") for p in parts],
        }
        for _ in range(args.repeats):
            for cold in (False, True):
                for name, action in openings.items():
                    times.setdefault(f"{name}_{'cold' if cold else 'warm'}", []).append(timed(action, paths, cold))
                if cold:
                    evict(paths)
                epoch = make_trainer(Path(root) / "run", teachers, data, args.batch_size, **options).train()
                times.setdefault(f"epoch_{'cold' if cold else 'warm'}", []).append(epoch.metrics["train_runtime"])
        store_bytes = sum(file.stat().st_size for path in paths for file in path.iterdir())
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"device: {device}; {args.num_images} CIFAR-10 images × {args.views} views × {args.num_teachers} teachers, "
          f"bf16 store of {store_bytes / 1e6:.1f} MB; medians of {args.repeats}")  # fmt: skip
    print("| cache | epoch s | sampled verification ms | / epoch | full verification ms | / epoch |")
    print("|---|---|---|---|---|---|")
    for state in ("warm", "cold"):
        epoch = medians[f"epoch_{state}"]
        sampled = medians[f"open_sampled_{state}"] - medians[f"open_unverified_{state}"]
        full = medians[f"open_full_{state}"] - medians[f"open_unverified_{state}"]
        print(f"| {state} | {epoch:.2f} | {sampled * 1e3:.1f} | {sampled / epoch:.2%} | {full * 1e3:.1f} | "
              f"{full / epoch:.2%} |")  # fmt: skip
    record = {"arguments": asdict(args), "device": device, "versions": library_versions(), "store_bytes": store_bytes,
              "seconds": times, "medians": medians}  # fmt: skip
    Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_json).write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
