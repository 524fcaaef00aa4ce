"""Safetensors files written row by row and read memory-mapped: the on-disk format of the teacher store.

A file is allocated once with its full header (every tensor's dtype, shape and byte range known up front), its
blocks reserved on disk (`posix_fallocate`), then filled in place through a shared memory map, so a shard larger
than the host's memory can be built batch by batch. Reserving first turns a full disk into an `OSError` (ENOSPC)
at allocation: writing through a map into a sparse file would instead die of SIGBUS at the first page the
filesystem cannot back. Reading maps the file privately (`torch.from_file(shared=False)`): a batch's rows are
gathered straight from the page cache, no copy of the whole file, no per-row decoding. The files are plain
safetensors (`safetensors.torch.load_file` reads them), with no pickle.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TruncatedFileError",
    "allocate_safetensors",
    "map_raw_bytes",
    "map_safetensors",
    "read_header",
    "safetensors_layout",
]

_DTYPE_NAMES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}
_DTYPES = {name: dtype for dtype, name in _DTYPE_NAMES.items()}
_MAX_HEADER = 100_000_000  # safetensors' own bound on a header's size


class TruncatedFileError(ValueError):
    """A safetensors file shorter than its header says, or whose header cannot be read."""


def safetensors_layout(
    specs: dict[str, tuple[torch.dtype, tuple[int, ...]]], metadata: dict[str, str] | None = None
) -> tuple[bytes, int]:
    """(the encoded header with its 8-byte length, the file's total size) of a file holding `specs`.

    Tensors are laid out widest dtype first, so every tensor's offset is a multiple of its element size (what
    `Tensor.view(dtype)` needs on reading).
    """
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in sorted(specs.items(), key=lambda item: (-item[1][0].itemsize, item[0])):
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = dict(metadata or {})
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned, as safetensors' own writer does
    prefix = struct.pack("<Q", len(encoded)) + encoded
    return prefix, len(prefix) + offset


def allocate_safetensors(
    path: str | Path,
    specs: dict[str, tuple[torch.dtype, tuple[int, ...]]],
    metadata: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Create `path` holding zero-filled tensors of `specs` {name: (dtype, shape)}; return writable views of them.

    The whole file is reserved on disk before anything is mapped: a disk too small raises `OSError` (ENOSPC,
    EFBIG or EDQUOT) here, never a signal later. Writes to the returned tensors land in the file (shared map).
    """
    prefix, total = safetensors_layout(specs, metadata)
    with open(path, "wb") as file:
        file.write(prefix)
        file.flush()
        if total > len(prefix):
            os.posix_fallocate(file.fileno(), 0, total)
    tensors, _ = map_safetensors(path, writable=True)
    return tensors


def read_header(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """(the header as a dict, its raw bytes with the length prefix); `TruncatedFileError` naming the file if short.

    Also checks that the file holds every byte its header declares, so a truncated file is named here rather than
    failing as a bad index (or a signal) at its first read.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        header_size = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 0 < header_size <= min(_MAX_HEADER, size - 8):
            raise TruncatedFileError(f"{path} is truncated or not a safetensors file ({size} bytes, no whole header)")
        raw = file.read(header_size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TruncatedFileError(f"{path} has an unreadable safetensors header ({error})") from None
    ends = [spec["data_offsets"][1] for name, spec in header.items() if name != "__metadata__"]
    expected = 8 + header_size + max(ends, default=0)
    if size < expected:
        raise TruncatedFileError(f"{path} is truncated: {size} bytes, its header declares {expected}")
    return header, prefix + raw


def map_raw_bytes(path: str | Path, writable: bool = False) -> torch.Tensor:
    """The whole file as one `uint8` tensor over a memory map (private unless `writable`)."""
    return torch.from_file(str(path), shared=writable, size=os.path.getsize(path), dtype=torch.uint8)


def map_safetensors(path: str | Path, writable: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a safetensors file as a view of one memory map, and the file's metadata.

    `writable=False` maps the file privately: nothing is read until a row is used, and nothing is written back.
    """
    header, raw_header = read_header(path)
    metadata = header.pop("__metadata__", {})
    start = len(raw_header)
    if start == os.path.getsize(path):  # nothing but the header (a shard without rows): there is nothing to map
        return {
            name: torch.empty(spec["shape"], dtype=_DTYPES[spec["dtype"]]) for name, spec in header.items()
        }, metadata
    raw = map_raw_bytes(path, writable)
    tensors = {}
    for name, spec in header.items():
        begin, end = spec["data_offsets"]
        tensors[name] = raw[start + begin : start + end].view(_DTYPES[spec["dtype"]]).view(spec["shape"])
    return tensors, metadata
