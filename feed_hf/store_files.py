"""Safetensors files written row by row and read memory-mapped: the on-disk format of the teacher store.

A file is allocated once with its full header (every tensor's dtype, shape and byte range known up front), then
filled in place through a shared memory map, so a shard larger than the host's memory can be built batch by
batch. Reading maps the file privately (`torch.from_file(shared=False)`): a batch's rows are gathered straight
from the page cache, no copy of the whole file, no per-row decoding. The files are plain safetensors
(`safetensors.torch.load_file` reads them), with no pickle.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

__all__ = ["allocate_safetensors", "map_safetensors"]

_DTYPE_NAMES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}
_DTYPES = {name: dtype for dtype, name in _DTYPE_NAMES.items()}


def allocate_safetensors(
    path: str | Path,
    specs: dict[str, tuple[torch.dtype, tuple[int, ...]]],
    metadata: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Create `path` holding zero-filled tensors of `specs` {name: (dtype, shape)}; return writable views of them.

    Writes to the returned tensors land in the file (shared map). Tensors are laid out widest dtype first, so
    every tensor's offset is a multiple of its element size (what `Tensor.view(dtype)` needs on reading).
    """
    header: dict[str, dict | dict[str, str]] = {}
    offset = 0
    for name, (dtype, shape) in sorted(specs.items(), key=lambda item: (-item[1][0].itemsize, item[0])):
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = dict(metadata or {})
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned, as safetensors' own writer does
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)))
        file.write(encoded)
        file.truncate(8 + len(encoded) + offset)
    tensors, _ = map_safetensors(path, writable=True)
    return tensors


def map_safetensors(path: str | Path, writable: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a safetensors file as a view of one memory map, and the file's metadata.

    `writable=False` maps the file privately: nothing is read until a row is used, and nothing is written back.
    """
    with open(path, "rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(header_size))
    metadata = header.pop("__metadata__", {})
    total = os.path.getsize(path)
    start = 8 + header_size
    if start == total:  # nothing but the header (a shard without rows): there is nothing to map
        return {
            name: torch.empty(spec["shape"], dtype=_DTYPES[spec["dtype"]]) for name, spec in header.items()
        }, metadata
    raw = torch.from_file(str(path), shared=writable, size=total, dtype=torch.uint8)
    tensors = {}
    for name, spec in header.items():
        begin, end = spec["data_offsets"]
        tensors[name] = raw[start + begin : start + end].view(_DTYPES[spec["dtype"]]).view(spec["shape"])
    return tensors, metadata
