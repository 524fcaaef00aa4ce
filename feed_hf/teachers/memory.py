"""Will a frozen model fit? Its inference memory estimated on the meta device, checked against what is free.

`estimate_forward_memory` runs the model once on the meta device (no memory, no compute) and follows every
tensor the forward creates: bytes of new storages added when made, removed when freed, the peak kept. With the
parameters and buffers that is the memory one no-grad forward at that batch size and resolution needs; measured
on CPU it is within about 10 % of the real peak (below it), so the check keeps a margin (`HEADROOM`).
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HEADROOM", "MemoryEstimate", "available_memory_bytes", "check_fits_memory", "estimate_forward_memory"]

HEADROOM = 1.25  # the estimate is raised by this factor before it is compared with the free memory
_GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of a model's parameters and buffers, and of the peak activations of one forward."""

    parameter_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.activation_bytes


class _PeakStorage(TorchDispatchMode):
    """Adds the bytes of every new storage an op creates, removes them when it is freed, keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        outputs = func(*args, **(kwargs or {}))
        for output in outputs if isinstance(outputs, (tuple, list)) else (outputs,):
            if isinstance(output, torch.Tensor):
                self._add(output.untyped_storage())
        return outputs

    def _add(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        if key in self._seen:  # a view, or an op that wrote in place
            return
        size = storage.nbytes()
        self._seen.add(key)
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key, size)

    def _free(self, key: int, size: int) -> None:
        self.live -= size
        self._seen.discard(key)


def estimate_forward_memory(
    meta_model: nn.Module,
    input_size: tuple[int, int, int],
    batch_size: int,
    dtype: torch.dtype = torch.float32,
    forward=None,
) -> MemoryEstimate:
    """Memory of one no-grad forward of `meta_model` (built on the meta device) on `[batch_size, *input_size]`.

    `dtype`: what the model runs in (its parameters are counted in it too). `forward(model, pixels)` calls the
    model when a plain `model(pixels)` is not how it runs.
    """
    meta_model = meta_model.to(device="meta", dtype=dtype).eval()
    parameter_bytes = sum(t.numel() * t.element_size() for t in (*meta_model.parameters(), *meta_model.buffers()))
    pixels = torch.empty(batch_size, *input_size, device="meta", dtype=dtype)
    tracker = _PeakStorage()
    with torch.no_grad(), tracker:
        outputs = forward(meta_model, pixels) if forward is not None else meta_model(pixels)
    del outputs
    return MemoryEstimate(parameter_bytes, tracker.peak)


def available_memory_bytes(device: torch.device | str | None = None) -> int:
    """Free memory where the model will run: the accelerator's free memory, else the machine's available RAM."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil  # installed with accelerate

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_fits_memory(
    name: str,
    estimate: MemoryEstimate,
    batch_size: int,
    input_size: tuple[int, int, int],
    device: torch.device | str | None = None,
    available: int | None = None,
) -> None:
    """Refuse, in one line with the estimate and the fix, a model whose forward would not fit in free memory."""
    available = available_memory_bytes(device) if available is None else available
    needed = int(estimate.total_bytes * HEADROOM)
    if needed <= available:
        return
    where = "accelerator" if device is not None and torch.device(device).type != "cpu" else "RAM"
    raise ValueError(
        f"{name} needs about {needed / _GIB:.2f} GiB ({estimate.parameter_bytes / _GIB:.2f} GiB of weights + "
        f"{estimate.activation_bytes / _GIB:.2f} GiB of activations for a batch of {batch_size} at "
        f"{input_size[1]}x{input_size[2]}, x{HEADROOM} headroom) but {available / _GIB:.2f} GiB of {where} is free; "
        "lower the batch size or the teacher's input size (teacher_input_sizes), run it in bfloat16 "
        "(teacher_dtype), or use a machine with more memory"
    )
