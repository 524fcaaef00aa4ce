"""Run by test_store_faults.py in a process of its own: builds teacher stores and reports how each build ended.

    python store_fault_worker.py MODE:ROOT [MODE:ROOT ...]

Steps run in order, in one process. MODE: `build` (a plain build of 24 images × 2 views into ROOT), `slow` (each
teacher forward sleeps, and the first one writes `started` beside ROOT, so the test can `kill -9` mid-build), `lie`
(the free-space check is told the disk is huge, so the build itself meets the full disk), `sh` (ROOT is a shell
command, e.g. a remount). Prints one JSON line per build: {"error": message or null, "type": class name,
"forwards": images through the teacher, "left": names left under ROOT}. Exit status 0 either way.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import timm
import torch
from timm.data import resolve_model_data_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SyntheticImages  # noqa: E402

from feed_hf.store.reader import StoreSettings, open_or_build_store  # noqa: E402
from feed_hf.teachers.frozen import FrozenTeacher  # noqa: E402

FORWARDS = [0]


def _teacher(root: Path, mode: str) -> FrozenTeacher:
    torch.manual_seed(1)
    config = resolve_model_data_config(timm.create_model("resnet8_cifar"))
    teacher = FrozenTeacher(timm.create_model("resnet8_cifar", num_classes=7), config, student_map_size=(8, 8))
    original = teacher.forward

    def forward(pixel_values, *args, **kwargs):
        FORWARDS[0] += len(pixel_values)
        if mode == "slow":
            (root.parent / "started").touch()
            time.sleep(0.5)
        return original(pixel_values, *args, **kwargs)

    teacher.forward = forward
    return teacher


def build(root: Path, mode: str) -> None:
    FORWARDS[0] = 0
    real_disk_usage = shutil.disk_usage
    if mode == "lie":
        shutil.disk_usage = lambda path: shutil._ntuple_diskusage(1 << 50, 0, 1 << 50)
    settings = StoreSettings(views=2, augmentation="crop_flip", dtype="float32")
    report = {"error": None, "type": None}
    try:
        open_or_build_store([_teacher(root, mode)], SyntheticImages(24), settings, root, 8)
    except Exception as error:  # what a user would see, reported to the test
        report = {"error": str(error), "type": type(error).__name__}
    finally:
        shutil.disk_usage = real_disk_usage
    left = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    print(json.dumps({**report, "forwards": FORWARDS[0], "left": left}), flush=True)


if __name__ == "__main__":
    for step in sys.argv[1:]:
        mode, _, argument = step.partition(":")
        if mode == "sh":
            subprocess.run(argument, shell=True, check=True)
        else:
            build(Path(argument), mode)
