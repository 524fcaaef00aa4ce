"""What a run records about where it ran: library versions, hardware, code version."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

__all__ = ["code_version", "hardware_description", "library_versions"]

_LIBRARIES = ("feed-hf", "torch", "torchvision", "timm", "transformers", "accelerate", "datasets", "huggingface-hub")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def hardware_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    return f"CPU: {_cpu_model()}, {torch.get_num_threads()} threads"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def code_version() -> str:
    """`git describe` of the feed-hf source tree when run from a checkout, else the package version."""
    source_dir = Path(__file__).resolve().parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=source_dir, capture_output=True, text=True, timeout=5
        )
        if described.returncode == 0 and described.stdout.strip():
            return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return library_versions()["feed-hf"]
