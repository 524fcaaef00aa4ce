"""Import the recipe and benchmark scripts (they live outside the package) and build tiny command lines for them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str):
    """benchmarks/NAME.py as module `name`, registered (its dataclasses look it up); its sibling imports resolve as
    under `python benchmarks/NAME.py`, whose folder is first on sys.path."""
    benchmarks = str(RECIPES.parent / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.append(benchmarks)
    spec = importlib.util.spec_from_file_location(name, RECIPES.parent / "benchmarks" / f"{name}.py")
    module = sys.modules[name] = sys.modules.get(name) or importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_argv(output_dir, *extra: str) -> list[str]:
    """Digits, 64 training images at 16×16, ResNet-8, one epoch of 2 steps: seconds on a CPU."""
    return [
        "--dataset",
        "digits",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
        "--horizontal_flip",
        "false",
        "--student",
        "resnet8_cifar",
        "--input_size",
        "16",
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "32",
        "--per_device_eval_batch_size",
        "64",
        "--learning_rate",
        "0.05",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--use_cpu",
        "true",
        "--disable_tqdm",
        "true",
        "--dataloader_pin_memory",
        "false",
        "--output_dir",
        str(output_dir),
        *extra,
    ]
