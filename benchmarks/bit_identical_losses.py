"""Logged losses of a tiny pFEED+KD run, to check that a refactor changes no number (issue 20, item 6).

    python benchmarks/bit_identical_losses.py --output_json /tmp/losses.json           # record
    python benchmarks/bit_identical_losses.py --compare_to /tmp/losses_before.json      # record and compare

Two random CIFAR ResNet-8 teachers, a ResNet-8 student, 64 synthetic images, 6 optimizer steps on the CPU with one
thread and a fixed seed, FEED (beta 500) plus logit KD (weight 1). Every logged loss term is written as a float and
as its exact hex form; `--compare_to` exits 1 naming the first term that is not bit-identical. Only the public API
(`from feed_hf import FeedConfig, FeedTrainer`) is used, so the script runs unchanged on both sides of a move.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import timm
import torch

from feed_hf import FeedConfig, FeedTrainer


class _Images(torch.utils.data.Dataset):
    def __init__(self, n: int, num_classes: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, num_classes, (n,), generator=generator)
        self.pixels = torch.randn(n, 3, 32, 32, generator=generator) * 0.5
        self.pixels[:, 0] += self.labels.view(-1, 1, 1).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


def _teacher(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("resnet8_cifar", num_classes=5)


def logged_losses(output_dir: str) -> list[dict[str, object]]:
    """The loss entries of the trainer's log history of the tiny pFEED+KD run, each term as float and hex
    (on one thread, so that every reduction runs in one order; the caller's thread count is restored)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(output_dir)
    finally:
        torch.set_num_threads(threads)


def _run(output_dir: str) -> list[dict[str, object]]:
    teachers = [_teacher(seed) for seed in (1, 2)]
    run = dict(output_dir=output_dir, student="resnet8_cifar", num_labels=5, max_steps=6, kd_weight=1.0, seed=0)
    quiet = dict(save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    config = FeedConfig(**run, **quiet, per_device_train_batch_size=16, learning_rate=0.05, logging_steps=1)
    trainer = FeedTrainer(teachers=teachers, args=config, train_dataset=_Images(64, 5, 0))
    trainer.train()
    entries = []
    for entry in trainer.state.log_history:
        terms = {key: value for key, value in entry.items() if "loss" in key and isinstance(value, float)}
        if terms and "train_loss" not in terms:
            entries.append({"step": entry["step"], **{k: [v, float.hex(v)] for k, v in sorted(terms.items())}})
    return entries


def first_difference(before: list[dict], after: list[dict]) -> str | None:
    """None when every logged term is bit-identical, else one line naming the first that is not."""
    if len(before) != len(after):
        return f"{len(before)} logged entries before, {len(after)} after"
    for old, new in zip(before, after, strict=True):
        if old.keys() != new.keys():
            return f"step {old.get('step')}: terms {sorted(old)} before, {sorted(new)} after"
        for key in old:
            if key != "step" and old[key][1] != new[key][1]:
                return f"step {old['step']} {key}: {old[key][1]} before, {new[key][1]} after"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_json", type=Path, help="Where to write the logged losses.")
    parser.add_argument("--compare_to", type=Path, help="A JSON written before; exit 1 unless bit-identical.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as output_dir:
        entries = logged_losses(output_dir)
    record = {"torch": torch.__version__, "entries": entries}
    if args.output_json:
        args.output_json.write_text(json.dumps(record, indent=1) + "\n")
    if args.compare_to:
        difference = first_difference(json.loads(args.compare_to.read_text())["entries"], entries)
        print(difference or f"bit-identical: {len(entries)} logged entries")
        return 1 if difference else 0
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
