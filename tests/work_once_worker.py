"""Run by test_work_once.py under `accelerate launch` (2 CPU processes, gloo): data loaded and checked once, the
in-memory teacher cache computed in blocks.

Arguments: a parquet data folder, an output folder, a report folder; SHARED_HF_HOME names the ranks' one HF_HOME
(conftest gives each process a temporary one of its own). Writes, per rank, how many images the decode
check opened, how many images each teacher's forward saw, and a digest of the cache every rank ends with.
"""

import json
import os
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SyntheticImages, make_feed_config  # noqa: E402

os.environ["HF_HOME"] = os.environ["SHARED_HF_HOME"]  # one datasets cache for both ranks, as on a real machine
from feed_hf import FeedTrainer
from feed_hf.data import images
from feed_hf.data.loading import DataArguments, load_image_splits  # noqa: E402
from feed_hf.teachers.frozen import FrozenTeacher  # noqa: E402

DECODED = [0]
FORWARDS = [0]


def main(data_dir: str, output_dir: str, report_dir: str) -> None:
    original_decodes, original_forward = images._decodes, FrozenTeacher.forward

    def counting_decodes(value):
        DECODED[0] += 1
        return original_decodes(value)

    def counting_forward(self, pixel_values, *args, **kwargs):
        FORWARDS[0] += len(pixel_values)
        return original_forward(self, pixel_values, *args, **kwargs)

    images._decodes, FrozenTeacher.forward = counting_decodes, counting_forward
    config = make_feed_config(output_dir, use_cpu=True, max_steps=1, cache_teacher_features=True,
                              ddp_find_unused_parameters=False)  # fmt: skip
    splits = load_image_splits(DataArguments(dataset=data_dir, max_train_samples=12, max_eval_samples=4))
    torch.manual_seed(3)
    teacher = timm.create_model("resnet8_cifar", num_classes=7)
    trainer = FeedTrainer(teachers=[teacher], args=config, train_dataset=SyntheticImages(15))
    cache = trainer.teacher_feature_cache
    report = {
        "rank": config.process_index,
        "world_size": config.world_size,
        "decoded": DECODED[0],
        "num_train": len(splits["train"]),
        "forwards": FORWARDS[0],
        "cache_rows": len(cache.feature_maps[0]),
        "cache_sums": cache.feature_maps[0].float().flatten(1).sum(1).tolist(),
    }
    Path(report_dir, f"rank{config.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
