"""`feed-hf demo`: a minimal offline parallel-FEED run on synthetic images (placeholder for the full demo)."""

from __future__ import annotations

import argparse

import timm
import torch

from .config import FeedConfig
from .trainer import FeedTrainer


class _SyntheticImages(torch.utils.data.Dataset):
    def __init__(self, n: int, num_classes: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, num_classes, (n,), generator=generator)
        self.pixels = torch.randn(n, 3, 32, 32, generator=generator) * 0.5
        self.pixels[:, 0] += self.labels.view(-1, 1, 1).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="feed-hf demo", description=__doc__)
    parser.add_argument("--output_dir", default="runs/demo")
    options = parser.parse_args(argv)
    teachers = [timm.create_model("resnet8_cifar", num_classes=4) for _ in range(2)]
    args = FeedConfig(
        output_dir=options.output_dir,
        student="resnet8_cifar",
        num_labels=4,
        max_steps=20,
        per_device_train_batch_size=32,
        learning_rate=0.05,
        logging_steps=5,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
    )
    trainer = FeedTrainer(teachers=teachers, args=args, train_dataset=_SyntheticImages(320, 4, 0))
    trainer.train()
    print(trainer.evaluate(_SyntheticImages(128, 4, 1)))
    trainer.save_model(f"{options.output_dir}/student")
    print(f"student exported to {options.output_dir}/student")
