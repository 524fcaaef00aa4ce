"""Epoch time of FEED with the teacher store against live teachers, store build time and size, bf16 error.

    python benchmarks/teacher_store_epoch.py                       # CPU defaults (docs/performance.md)
    python benchmarks/teacher_store_epoch.py --num_images 4096 --batch_size 256   # larger, e.g. on a GPU

Setting: `resnet20_cifar` student, N = 1, 2, 3 `resnet56_cifar` teachers (random weights: the cost does not
depend on them), `batch_augmentation=crop_flip`, CIFAR-10 images from ../shared/data/cifar10-jpeg decoded once to
tensors (data loading is the same in both arms and not what is measured). Per N: the store is built once
(K views; build time and bytes per image reported), then `repeats` rounds each train one epoch with live teachers
and one epoch reading the store (interleaved), timed by the Trainer's `train_runtime`; medians are reported.
Also the Eq. 2 distance error of storing maps in bf16/fp16: |L(bf16 map) − L(fp32 map)| / L(fp32 map) for a
fresh connector output, over the stored views. Uses the GPU when one is present.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from transformers import HfArgumentParser

import feed_hf  # noqa: F401  (registers the CIFAR models)
from feed_hf import FeedConfig, FeedTrainer
from feed_hf.method.losses import normalize_feature_map
from feed_hf.publishing.run_record import hardware_description, library_versions
from feed_hf.store.reader import TeacherStore

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


@dataclass
class StoreBenchmarkArguments:
    num_teachers: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "Teacher counts N."})
    num_images: int = field(default=512, metadata={"help": "Training images per epoch."})
    batch_size: int = field(default=128, metadata={"help": "Images per step."})
    views: int = field(default=2, metadata={"help": "Views K stored per image (epoch time does not depend on K)."})
    repeats: int = field(default=3, metadata={"help": "Interleaved live/store epochs per N; medians reported."})
    store_dtype: str = field(default="bfloat16", metadata={"help": "teacher_store_dtype of the timed store."})
    output_json: str = field(default="runs/benchmarks/teacher_store_epoch.json", metadata={"help": "JSON output."})


class TensorImages(torch.utils.data.Dataset):
    """Decoded, normalised images `[N, 3, 32, 32]` and labels, served as the recipes' batches are."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        self.pixels, self.labels = pixels, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


def cifar_tensors(split: str, count: int) -> TensorImages:
    """The first `count` images of a CIFAR-10 split, normalised with the CIFAR ResNets' mean/std."""
    import datasets
    from torchvision.transforms.functional import normalize, pil_to_tensor

    data = datasets.load_dataset("parquet", data_files={split: str(CIFAR / f"{split}.parquet")}, split=split)
    data = data.select(range(count))
    config = timm.create_model("resnet20_cifar").pretrained_cfg
    pixels = torch.stack([pil_to_tensor(image.convert("RGB")).float() / 255 for image in data["image"]])
    return TensorImages(normalize(pixels, config["mean"], config["std"]), torch.tensor(data["label"]))


def make_trainer(
    output_dir: Path, teachers: list, data: TensorImages, batch_size: int, trainer_class: type = FeedTrainer, **options
) -> FeedTrainer:
    settings = dict(
        output_dir=str(output_dir),
        student="resnet20_cifar",
        num_labels=10,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        num_train_epochs=1,
        batch_augmentation="crop_flip",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        overwrite_output_dir=True,
    )
    config = FeedConfig(**{**settings, **options})
    return trainer_class(teachers=teachers, args=config, train_dataset=data)


def storage_error(store: TeacherStore, reference: TeacherStore, count: int) -> dict[str, float]:
    """What storing teacher 0's maps in `store`'s dtype does to Eq. 2 (sum reduction), against fp32 `reference`.

    floor: Eq. 2 between the rounded and the exact map (the distance rounding alone adds), median and max over
    the views; relative: median |L(s, rounded) − L(s, exact)| / L(s, exact) for a random connector output s.
    """
    images = torch.arange(count).repeat_interleave(store.settings.views)
    views = torch.arange(store.settings.views).repeat(count)
    rounded = normalize_feature_map(store.lookup(images, views, torch.device("cpu"))[0][0])
    exact = normalize_feature_map(reference.lookup(images, views, torch.device("cpu"))[0][0])
    torch.manual_seed(0)
    student_side = normalize_feature_map(torch.randn(exact.shape))
    floor = (rounded - exact).abs().sum(dim=1)
    exact_loss = (student_side - exact).abs().sum(dim=1)
    relative = ((student_side - rounded).abs().sum(dim=1) - exact_loss).abs() / exact_loss
    return {
        "floor_median": float(floor.median()),
        "floor_max": float(floor.max()),
        "relative_median": float(relative.median()),
    }


class TimedStoreTrainer(FeedTrainer):
    """FeedTrainer that records how long opening (or building) its teacher store took."""

    store_seconds = 0.0

    def _build_feature_cache(self):
        start = time.perf_counter()
        store = super()._build_feature_cache()
        TimedStoreTrainer.store_seconds = time.perf_counter() - start
        return store


def store_size(store: Any) -> int:
    """Bytes of every part of a run's store (one folder per teacher)."""
    return sum(file.stat().st_size for path in store.paths for file in path.iterdir())


def measure(num_teachers: int, args: StoreBenchmarkArguments, data: TensorImages, root: Path) -> dict:
    """Build the store, then interleave live and store epochs; the error of bf16 storage for N = 1."""
    teachers = []
    for seed in range(num_teachers):
        torch.manual_seed(seed)
        teachers.append(timm.create_model("resnet56_cifar", num_classes=10))
    store_options = {"teacher_store": True, "teacher_store_views": args.views, "teacher_store_dir": str(root),
                     "teacher_store_dtype": args.store_dtype}  # fmt: skip
    trainer = make_trainer(
        root / "run", teachers, data, args.batch_size, trainer_class=TimedStoreTrainer, **store_options
    )
    built = {
        "build_s": TimedStoreTrainer.store_seconds,
        "bytes_per_image": store_size(trainer.teacher_feature_cache) / len(data),
    }
    result = {"num_teachers": num_teachers, **built, "live_epoch_s": [], "store_epoch_s": [], "open_s": []}
    if num_teachers == 1:  # the error and bytes of each storage, against an fp32 store
        stores = {
            dtype: make_trainer(root / "run", teachers, data, args.batch_size, **{**store_options,
                                "teacher_store_dtype": dtype}).teacher_feature_cache
            for dtype in ("float32", "bfloat16", "float16", "pca_int8")
        }  # fmt: skip
        result["storage_error"] = {
            dtype: {**storage_error(store, stores["float32"], len(data)),
                    "bytes_per_image_view": store_size(store) / (len(data) * args.views)}
            for dtype, store in stores.items()
        }  # fmt: skip
    for _ in range(args.repeats):
        live = make_trainer(root / "run", teachers, data, args.batch_size)
        result["live_epoch_s"].append(live.train().metrics["train_runtime"])
        stored = make_trainer(
            root / "run", teachers, data, args.batch_size, trainer_class=TimedStoreTrainer, **store_options
        )
        result["open_s"].append(TimedStoreTrainer.store_seconds)
        result["store_epoch_s"].append(stored.train().metrics["train_runtime"])
    live_median, store_median = statistics.median(result["live_epoch_s"]), statistics.median(result["store_epoch_s"])
    result["speedup"] = live_median / store_median
    pairs = (result["live_epoch_s"], result["store_epoch_s"])
    print(
        f"| {num_teachers} | {live_median:.2f} | {store_median:.2f} | {result['speedup']:.2f}x | "
        f"{result['build_s']:.1f} | {result['build_s'] / (len(data) * args.views) * 1e3:.2f} | "
        f"{result['bytes_per_image'] / 1024:.1f} KiB | "
        f"{', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(*pairs, strict=True))} |",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(StoreBenchmarkArguments).parse_args_into_dataclasses(args=argv)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else hardware_description()
    print(f"device: {device}; {args.num_images} CIFAR-10 images, batch {args.batch_size}, K = {args.views}, crop_flip")
    print("| N | live epoch s | store epoch s | speed-up | build s | ms/image-view | store/image | each live/store s |")
    print("|---|---|---|---|---|---|---|---|")
    data = cifar_tensors("train", args.num_images)
    with tempfile.TemporaryDirectory() as folder:
        results = [measure(n, args, data, Path(folder)) for n in args.num_teachers]
    if 1 in args.num_teachers:
        print(
            "storage error, Eq. 2 (sum), teacher 0:", json.dumps(results[args.num_teachers.index(1)]["storage_error"])
        )
    record = {"arguments": asdict(args), "device": device, "versions": library_versions(), "results": results}
    Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_json).write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
