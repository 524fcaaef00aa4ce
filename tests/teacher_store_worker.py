"""Run by test_teacher_store_ddp.py under `accelerate launch` (2 CPU processes, gloo): one FEED run on a store.

Arguments: output folder, store folder, report folder[, Hub store repo to pull from]. Writes, per rank, how many
images each teacher's forward saw (while building and while training), a few stored maps and where the features
came from, so the test can check the shards, the reuse and the pull.
"""

import collections
import json
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SyntheticImages, make_feed_config  # noqa: E402

from feed_hf import FeedTrainer  # noqa: E402
from feed_hf.teachers.frozen import FrozenTeacher  # noqa: E402

FORWARDS: collections.Counter = collections.Counter()
_original_forward = FrozenTeacher.forward


def _counting_forward(self, pixel_values, *args, **kwargs):
    FORWARDS[self.name] += len(pixel_values)
    return _original_forward(self, pixel_values, *args, **kwargs)


def main(output_dir: str, store_dir: str, report_dir: str, repo: str | None = None) -> None:
    FrozenTeacher.forward = _counting_forward
    teachers = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        teachers.append(timm.create_model("resnet8_cifar", num_classes=7))
    config = make_feed_config(
        output_dir,
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=8,
        batch_augmentation="crop_flip",
        teacher_store=True,
        teacher_store_views=3,
        teacher_store_dir=store_dir,
        teacher_store_repo=repo,
        ddp_find_unused_parameters=False,
    )
    trainer = FeedTrainer(teachers=teachers, args=config, train_dataset=SyntheticImages(30))
    built = dict(FORWARDS)
    trainer.train()
    store = trainer.teacher_feature_cache
    maps = store.lookup(torch.arange(30), torch.full((30,), 2), torch.device("cpu")).maps
    report = {
        "rank": config.process_index,
        "world_size": config.world_size,
        "built": built,
        "after_training": dict(FORWARDS),
        "shards": [shard["file"] for shard in store.parts[0].manifest["shards"]],
        "map_sums": maps[0].float().flatten(1).sum(1).tolist(),
        "sources": store.sources,
    }
    Path(report_dir, f"rank{config.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:5])
