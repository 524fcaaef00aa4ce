"""`feed-hf env`: what a bug report needs, as `transformers env` and `accelerate env` print it.

Versions of feed-hf and its stack, the platform, the CPU (model, cores, torch threads, the kernels' instruction
set) and each GPU, the accelerate config a launch would use, and the Hugging Face settings that change what is
downloaded. A token is reported as set or not, never shown.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["environment_report", "environment_text"]

_PACKAGES = (
    "feed-hf",
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "accelerate",
    "datasets",
    "huggingface-hub",
    "safetensors",
    "numpy",
)
_HF_SETTINGS = (
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_XET",
    "CUDA_VISIBLE_DEVICES",
)


def environment_report() -> dict[str, Any]:
    """`{"- name": value}` facts, in the order printed; nested dicts for the GPUs and the accelerate config."""
    report: dict[str, Any] = {"Platform": platform.platform(), "Python": platform.python_version()}
    report.update({name: _version(name) for name in _PACKAGES})
    report.update(_cpu_facts())
    report.update(_accelerator_facts())
    report["accelerate config"] = _accelerate_config()
    report.update({name: os.environ.get(name, "not set") for name in _HF_SETTINGS})
    report["Hugging Face token"] = "set" if _has_token() else "not set"
    return report


def environment_text(report: dict[str, Any]) -> str:
    """`report` as the list to paste into an issue."""
    lines = ["", "Copy-and-paste the text below in your GitHub issue", ""]
    for name, value in report.items():
        if isinstance(value, dict):
            lines.append(f"- {name}:")
            lines += [f"\t- {key}: {item}" for key, item in value.items()] or ["\t(none)"]
        else:
            lines.append(f"- {name}: {value}")
    return "\n".join(lines)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _cpu_facts() -> dict[str, Any]:
    import torch

    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else model
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "CPU": model,
        "CPU cores (logical)": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "torch CPU kernels": torch.backends.cpu.get_cpu_capability(),
        "system memory": f"{memory:.1f} GiB" if memory else "unknown",
    }


def _accelerator_facts() -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"torch CUDA build": torch.version.cuda or "none"}
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    facts["torch accelerator"] = accelerator.type if accelerator is not None else "none (CPU only)"
    gpus = {}
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            gpus[f"cuda:{index}"] = f"{properties.name}, {properties.total_memory / 1024**3:.1f} GiB"
    facts["GPUs"] = gpus
    return facts


def _accelerate_config() -> dict[str, Any] | str:
    from accelerate.commands.config import default_config_file, load_config_from_file

    path = os.environ.get("ACCELERATE_CONFIG_FILE") or default_config_file
    if not os.path.isfile(path):
        return f"not found ({path}; `accelerate config` writes one)"
    try:
        return {"file": path, **load_config_from_file(path).to_dict()}
    except Exception as error:  # a broken file is a fact worth reporting, not a crash of the report
        return f"{path} is unreadable ({type(error).__name__}: {error})"


def _has_token() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None
