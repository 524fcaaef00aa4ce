"""Seconds to read streamed CIFAR-10 JPEG training images as a FeedTrainer gets them (the training path's data side).

    python benchmarks/stream_read.py                         # 2,000 images, 3 repeats, this tree
    python benchmarks/stream_read.py --tree /path/to/checkout  # another checkout of feed-hf (before/after a change)

`load_image_splits(streaming=True)` then `to_pixel_values` (the student's training transforms, `resnet8_cifar` at
32 px) read through a DataLoader in batches of 50: decoding, transforms and the stream's own steps, no model. Prints
each repeat's seconds and the median. Run it for two checkouts, interleaved, to compare them (docs/performance.md).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

CIFAR = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg")


@dataclass
class StreamReadArguments:
    num_images: int = field(default=2000, metadata={"help": "Rows train[:N] of CIFAR-10 read per repeat."})
    repeats: int = field(default=3, metadata={"help": "Timed reads; the median is reported."})
    tree: str | None = field(default=None, metadata={"help": "A feed-hf checkout to time instead of this one."})
    dataset: str = field(default=CIFAR, metadata={"help": "A dataset of JPEG images with image/label columns."})


def read_once(args: StreamReadArguments) -> tuple[int, float]:
    import timm
    from torch.utils.data import DataLoader

    from feed_hf.data.loading import DataArguments, load_image_splits
    from feed_hf.data.pixel_values import to_pixel_values

    rows = DataArguments(
        dataset=args.dataset, train_split=f"train[:{args.num_images}]", eval_split="test[:50]", streaming=True
    )
    began = time.perf_counter()
    train = load_image_splits(rows, seed=0)["train"]
    data = to_pixel_values(train, timm.create_model("resnet8_cifar"), training=True, input_size=32)
    seen = sum(batch["pixel_values"].shape[0] for batch in DataLoader(data, batch_size=50))
    return seen, time.perf_counter() - began


def main() -> None:
    (args,) = HfArgumentParser(StreamReadArguments).parse_args_into_dataclasses()
    if args.tree:
        sys.path.insert(0, str(Path(args.tree).resolve()))
    import feed_hf  # noqa: F401  (registers the CIFAR models; from --tree when given)

    seconds = []
    for repeat in range(args.repeats):
        seen, elapsed = read_once(args)
        seconds.append(elapsed)
        print(f"repeat {repeat}: {seen} images in {elapsed:.2f} s ({seen / elapsed:.0f} images/s)", flush=True)
    print(f"median {statistics.median(seconds):.2f} s for {seen} images ({feed_hf.__file__})")


if __name__ == "__main__":
    main()
