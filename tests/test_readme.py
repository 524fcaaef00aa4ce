"""The README's "Use it" runs as written: its command and Python blocks, on a tiny imagefolder (issue 19).

Only sizes are changed, by replacing the literal numbers named in `SIZES` (each must occur exactly once, so an
edit of the README that drops one fails here); the Hub teachers and the pretrained student are the named timm
architectures with random weights, served by the loopback Hub under their real repo ids.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi
from PIL import Image
from timm.models import save_for_hf

from feed_hf_cli import run_command

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("bird", "cat", "dog")

# README literal -> its tiny-scale replacement (sizes only)
SIZES = {
    "--num_train_epochs 30 ": "--num_train_epochs 1 ",
    "num_train_epochs=300,": "num_train_epochs=2,",
    "lr_decay_epochs=[150, 225]": "lr_decay_epochs=[1, 1.5]",
    "num_train_epochs=200)": "num_train_epochs=1)",
    "num_generations=3)": "num_generations=2)",
    "feed_beta=[500.0], num_train_epochs=30,": "feed_beta=[500.0], num_train_epochs=1,",
    "warmup_steps=100,": "warmup_steps=2,",
    "input_size=64,": "input_size=32,",
}


def _use_it() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Use it\n", 1)[1].split("\n## ", 1)[0]
    for literal, tiny in SIZES.items():
        assert section.count(literal) == 1, f"README's Use it no longer has {literal!r} exactly once"
        section = section.replace(literal, tiny)
    return section


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def _imagefolder(root: Path, per_class: dict[str, int]) -> None:
    generator = np.random.default_rng(0)
    for split, count in per_class.items():
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                pixels[..., label] = 255  # each class has its own colour: learnable
                Image.fromarray(pixels).save(folder / f"{index}.png")


@pytest.fixture
def my_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _imagefolder(tmp_path / "my_images", {"train": 8, "test": 4})
    return tmp_path


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_use_it_runs_as_written(my_images):
    section = _use_it()
    (command,) = _blocks(section, "bash")
    words = shlex.split(command)
    assert words[0] == "feed-hf"
    run_command(words[1], words[2:])  # the teachers the Python block names
    first = _blocks(section, "python")[0]
    namespace: dict = {}
    exec(compile(first, "README.md (Use it)", "exec"), namespace)  # noqa: S102
    assert namespace["metrics"]["eval_top1"] >= 0
    for folder in ("runs/pfeed", "runs/pfeed_copy"):
        assert timm.create_model(f"local-dir:{folder}", pretrained=True).num_classes == len(CLASSES)
    record = json.loads(Path("runs/pfeed/results.json").read_text())
    assert record["config"]["lr_decay_epochs"] == [1, 1.5]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_use_it_sequential_feed_runs_as_written(my_images):
    sequential = _blocks(_use_it(), "python")[1]
    exec(compile(sequential, "README.md (sequential)", "exec"), {})  # noqa: S102
    assert all(Path(f"runs/sfeed/generation_{k}/model.safetensors").is_file() for k in (1, 2))


def _publish(repo_id: str, architecture: str, folder: Path) -> None:
    torch.manual_seed(len(repo_id))
    save_for_hf(timm.create_model(architecture), folder, safe_serialization=True)
    api = HfApi(token=HUB_TOKEN)
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=folder)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_hub_teachers_on_your_images_runs_as_written(my_images, loopback_hub):
    hub_block = _blocks(_use_it(), "python")[2]
    for repo_id in re.findall(r'"hf-hub:([\w.-]+/[\w.-]+)"', hub_block) + ["timm/mobilenetv3_small_100.lamb_in1k"]:
        _publish(repo_id, repo_id.split("/")[1].split(".")[0], my_images / "hub" / repo_id)
    namespace: dict = {}
    exec(compile(hub_block, "README.md (Hub teachers)", "exec"), namespace)  # noqa: S102
    assert namespace["metrics"]["eval_top1"] >= 0
    exported = timm.create_model("local-dir:runs/hub_teachers", pretrained=True)
    assert exported.num_classes == len(CLASSES) and exported.pretrained_cfg["input_size"] == (3, 32, 32)
