"""Bytes per map and Eq. 2 error of the compressed teacher-map code (feed_hf/store/codec.py) against bf16 and fp32.

    python benchmarks/feature_codec.py                         # CPU defaults (a few minutes on 2 cores)
    python benchmarks/feature_codec.py --train_steps 0         # random-weight teachers only (seconds)
    python benchmarks/feature_codec.py --train_steps 0 --random_teachers false \
        --teachers runs/foundation_agglomeration/teacher_vit/teacher_0   # trained teachers of your own (any spec)

Setting: each teacher's final map (`forward_features`, ReLU output) on CIFAR-10 images from
../shared/data/cifar10-jpeg (random images when that folder is absent, said in the output). Teachers: the CIFAR
nets of feed_hf/models with random weights (`resnet8_cifar`, `resnet56_cifar`), and `resnet8_cifar` trained with
cross-entropy for `train_steps` SGD steps on training images (random weights give maps unlike a trained net's).
Per teacher the codec is fitted on `fit_images` training images and measured on `eval_images` *test* images (a
store encodes images the fit never saw: values outside the calibrated range saturate). Reported per setting:
kept channels K, bytes per map, the ratio to today's bf16 store, and the Eq. 2 error (sum reduction, as
benchmarks/teacher_store_epoch.py reports bf16's): the floor, Eq. 2 between the decoded and the fp32 map (median
and max over the maps), and the relative change of Eq. 2 to a random connector output, |L(s, x̂) − L(s, x)| / L(s, x)
(median). `reference` is Eq. 2 between the fp32 maps of two different images (the scale the floor compares to).
`--teachers` adds any teacher spec the `teachers` option accepts (a trained folder, `hf-hub:`, a transformers
repo), tapped exactly as a run with `student` stores it: FrozenTeacher re-normalises and resizes the student's
images to the teacher's own input and pools its map to the size compared with the student's map.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch.nn import functional as F
from transformers import HfArgumentParser

import feed_hf  # noqa: F401  (registers the CIFAR models)
from feed_hf.method.losses import normalize_feature_map
from feed_hf.publishing.run_record import hardware_description, library_versions
from feed_hf.store.codec import decode_maps, encode_maps, fit_feature_codec

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


@dataclass
class CodecBenchmarkArguments:
    energy_shares: list[float] = field(default_factory=lambda: [0.9, 0.95, 0.99, 0.999], metadata={"help": "Shares."})
    rotations: list[str] = field(default_factory=lambda: ["pca", "phi_s"], metadata={"help": "Codec rotations."})
    code_dtypes: list[str] = field(default_factory=lambda: ["int8", "float8_e4m3fn"], metadata={"help": "Codes."})
    fit_images: int = field(default=512, metadata={"help": "Training images the codec is fitted on."})
    eval_images: int = field(default=512, metadata={"help": "Test images the error is measured on."})
    train_steps: int = field(default=300, metadata={"help": "CE steps for the trained resnet8_cifar (0: skip it)."})
    batch_size: int = field(default=128, metadata={"help": "Images per step / forward."})
    teachers: list[str] = field(default_factory=list, metadata={"help": "Teacher specs to measure, as stored."})
    student: str = field(default="resnet8_cifar", metadata={"help": "The student whose map size `teachers` match."})
    random_teachers: bool = field(default=True, metadata={"help": "Also measure the random-weight CIFAR nets."})
    output_json: str = field(default="runs/benchmarks/feature_codec.json", metadata={"help": "JSON output."})


def cifar_pixels(split: str, count: int, student: str = "resnet8_cifar") -> tuple[torch.Tensor, torch.Tensor, str]:
    """`count` images `[N, 3, 32, 32]` normalised as `student`'s, and labels of a CIFAR-10 split (random if absent)."""
    config = timm.create_model(student).pretrained_cfg
    if not (CIFAR / f"{split}.parquet").is_file():
        generator = torch.Generator().manual_seed(0 if split == "train" else 1)
        return torch.randn(count, 3, 32, 32, generator=generator), torch.zeros(count, dtype=torch.long), "random"
    import datasets
    from torchvision.transforms.functional import normalize, pil_to_tensor

    data = datasets.load_dataset("parquet", data_files={split: str(CIFAR / f"{split}.parquet")}, split=split)
    data = data.select(range(count))
    pixels = torch.stack([pil_to_tensor(image.convert("RGB")).float() / 255 for image in data["image"]])
    return normalize(pixels, config["mean"], config["std"]), torch.tensor(data["label"]), "CIFAR-10"


def trained_teacher(pixels: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int) -> torch.nn.Module:
    """resnet8_cifar after `steps` plain SGD steps of cross-entropy (lr 0.05, momentum 0.9, random flips)."""
    torch.manual_seed(0)
    model = timm.create_model("resnet8_cifar", num_classes=10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for step in range(steps):
        index = torch.randint(len(labels), (batch_size,))
        batch = pixels[index]
        batch = torch.where(torch.rand(batch_size, 1, 1, 1) < 0.5, batch.flip(-1), batch)
        loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  trained resnet8_cifar step {step}: loss {loss.item():.3f}", flush=True)
    return model.eval()


@torch.no_grad()
def feature_maps(model: torch.nn.Module, pixels: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Each batch's final map: `forward_features` of a CIFAR net, or a FrozenTeacher's stored map."""
    extract = model.forward_features if hasattr(model, "forward_features") else lambda x: model(x)[0]
    return [extract(pixels[start : start + batch_size]) for start in range(0, len(pixels), batch_size)]


def stored_teacher(spec: str, student: str) -> torch.nn.Module:
    """The teacher `spec` as a run with `student` stores it (its own input, its map pooled to the compared size)."""
    from feed_hf.method.features import FeatureTap  # noqa: PLC0415 (only this option needs them)
    from feed_hf.method.modeling import student_map_shape  # noqa: PLC0415
    from feed_hf.teachers.frozen import FrozenTeacher, load_teacher_model  # noqa: PLC0415

    student_model = timm.create_model(student, num_classes=10)
    map_size = tuple(student_map_shape(student_model, FeatureTap(student_model, -1, None, role="student"))[1:])
    config = timm.data.resolve_model_data_config(student_model)
    return FrozenTeacher(load_teacher_model(spec), config, name=spec, student_map_size=map_size)


def eq2_errors(approximate: torch.Tensor, exact: torch.Tensor, reference: float = 1.0) -> dict[str, float]:
    """Eq. 2 (sum) floor between approximate and exact maps (also as a share of `reference`), and the relative
    change of L(s, ·) for a random s."""
    rounded, target = normalize_feature_map(approximate), normalize_feature_map(exact)
    student_side = normalize_feature_map(torch.randn(exact.shape, generator=torch.Generator().manual_seed(0)))
    floor = (rounded - target).abs().sum(dim=1)
    exact_loss = (student_side - target).abs().sum(dim=1)
    relative = ((student_side - rounded).abs().sum(dim=1) - exact_loss).abs() / exact_loss
    return {
        "floor_median": float(floor.median()),
        "floor_max": float(floor.max()),
        "floor_share_of_reference": float(floor.median()) / reference,
        "rel_median": float(relative.median()),
    }


def _row(name: str, setting: str, kept: str, bytes_per_map: float, bf16_bytes: float, errors: dict) -> dict:
    print(
        f"| {name} | {setting} | {kept} | {bytes_per_map:,.0f} | {bf16_bytes / bytes_per_map:.1f}x | "
        f"{errors['floor_median']:.4f} | {errors['floor_max']:.4f} | "
        f"{100 * errors['floor_share_of_reference']:.2f} % | {errors['rel_median']:.2e} |",
        flush=True,
    )
    return {"teacher": name, "setting": setting, "kept": kept, "bytes_per_map": bytes_per_map, **errors}


def measure(name: str, model: torch.nn.Module, fit: torch.Tensor, test: torch.Tensor, args) -> list[dict]:
    """One teacher: fp32/bf16/fp16 stores, then every codec setting, one printed row each."""
    fit_maps, exact = feature_maps(model, fit, args.batch_size), torch.cat(feature_maps(model, test, args.batch_size))
    channels, height, width = exact.shape[1:]
    bf16_bytes = channels * height * width * 2
    reference = float((normalize_feature_map(exact) - normalize_feature_map(exact.roll(1, 0))).abs().sum(1).median())
    print(f"| {name} | reference: Eq. 2 between two images' maps, median {reference:.3f} | | | | | | | |")
    rows = []
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        errors = eq2_errors(exact.to(dtype), exact, reference)
        rows.append(_row(name, f"{label} store", str(channels), bf16_bytes * dtype.itemsize / 2, bf16_bytes, errors))
    for rotation in args.rotations:
        for code_dtype in args.code_dtypes:
            for share in args.energy_shares:
                start = time.perf_counter()
                codec = fit_feature_codec(fit_maps, share, rotation, code_dtype)
                fit_seconds = time.perf_counter() - start
                errors = eq2_errors(decode_maps(encode_maps(exact, codec), codec), exact, reference)
                setting, kept = f"{rotation} {code_dtype} share {share}", f"{codec.kept_channels}/{channels}"
                row = _row(name, setting, kept, codec.bytes_per_map(height, width), bf16_bytes, errors)
                rows.append({**row, "fit_s": fit_seconds})
    return rows


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(CodecBenchmarkArguments).parse_args_into_dataclasses(args=argv)
    fit_pixels, fit_labels, source = cifar_pixels(
        "train", max(args.fit_images, 5000 if args.train_steps else 0), args.student
    )
    test_pixels, _, _ = cifar_pixels("test", args.eval_images, args.student)
    print(
        f"device: {hardware_description()}; {source} images, fit on {args.fit_images} train, measured on "
        f"{args.eval_images} test; Eq. 2 with sum reduction"
    )
    teachers = {}
    for architecture in ("resnet8_cifar", "resnet56_cifar") if args.random_teachers else ():
        torch.manual_seed(0)
        teachers[f"{architecture} (random)"] = timm.create_model(architecture, num_classes=10).eval()
    if args.train_steps:
        teachers[f"resnet8_cifar ({args.train_steps} CE steps)"] = trained_teacher(
            fit_pixels, fit_labels, args.train_steps, args.batch_size
        )
    for spec in args.teachers:
        teachers[spec] = stored_teacher(spec, args.student)
    print(
        "| teacher | setting | K | bytes/map | vs bf16 | Eq. 2 floor median | floor max | floor / reference | rel. ΔL |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [
        row
        for name, model in teachers.items()
        for row in measure(name, model, fit_pixels[: args.fit_images], test_pixels, args)
    ]
    record = {
        "arguments": asdict(args),
        "images": source,
        "device": hardware_description(),
        "versions": library_versions(),
        "results": rows,
    }
    Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_json).write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
