"""Checksums of a teacher store: written when a shard is built, checked every time the store is opened.

Written per shard (`write_checksums`), into the manifest and a `<shard>.digests.safetensors` file beside it:
the shard's size, the SHA-256 of its header (every tensor's dtype, shape and byte range, and the image block it
holds), a 64-bit BLAKE2b digest of every row of every part (`maps_t` and `logits_t`: one part per teacher and
output; `augmentation`: the recorded crops), and the SHA-256 of that digests file.

Checked (`verify_shard`) when a store is opened, before any row is used:

- **sampled** (default): the manifest's shape (every image in exactly one shard), each shard's size (a truncated
  file is named), its header hash, its digests file's hash, and `SAMPLED_ROWS` rows of every part, drawn afresh at
  every opening (so repeated runs cover other rows): shuffled rows fail with near certainty, a few zeroed rows are
  found with the probability that one is drawn. The cost is a few hundred row reads per shard
  (docs/performance.md has the measured ratio to an epoch).
- **full** (`teacher_store_verify="full"`): every row of every part, i.e. one sequential read of the store.

A store that fails is never used: `StoreIntegrityError` names the file, the part and the row, and the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

from .files import TruncatedFileError, map_raw_bytes, read_header

__all__ = [
    "DIGESTS_SUFFIX",
    "SAMPLED_ROWS",
    "StoreIntegrityError",
    "checksum_fields",
    "read_manifest",
    "verify_shard",
    "write_checksums",
]

SAMPLED_ROWS = 64  # rows checked per part and shard at each opening
DIGESTS_SUFFIX = ".digests.safetensors"
_MANIFEST_SHARD_FIELDS = ("file", "start", "end", "bytes", "header_sha256", "digests_sha256")


class StoreIntegrityError(ValueError):
    """A store whose files are not what its build wrote: truncated, edited, shuffled, or a broken manifest."""


def _row_digest(row: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "little", signed=True)


def _parts(path: Path) -> tuple[dict[str, Any], bytes, np.ndarray | None]:
    """(header parts, raw header bytes, the file's bytes as a private map or None when it holds no data)."""
    header, raw_header = read_header(path)
    header.pop("__metadata__", None)
    empty = path.stat().st_size == len(raw_header)
    return header, raw_header, None if empty else map_raw_bytes(path).numpy()


def _part_rows(data: np.ndarray | None, offset: int, spec: dict[str, Any]) -> np.ndarray:
    """A part's bytes as `[rows, row_bytes]` (its first dimension is the row)."""
    rows = spec["shape"][0] if spec["shape"] else 1
    begin, end = spec["data_offsets"]
    if data is None or rows == 0 or end == begin:
        return np.zeros((0, 0), dtype=np.uint8)
    return data[offset + begin : offset + end].reshape(rows, -1)


def write_checksums(shard: Path) -> Path:
    """Digest every row of every part of `shard` and write the digests beside it (by the rank that built it)."""
    header, raw_header, data = _parts(shard)
    digests = {
        name: torch.tensor([_row_digest(row) for row in _part_rows(data, len(raw_header), spec)], dtype=torch.int64)
        for name, spec in header.items()
    }
    digests_file = shard.with_name(shard.name + DIGESTS_SUFFIX)
    digests_file.write_bytes(safetensors.torch.save(digests))  # the umask's permissions, as the shard's
    return digests_file


def checksum_fields(shard: Path) -> dict[str, Any]:
    """The manifest fields that check `shard` (its size, header hash, digests-file hash): cheap, no row is read."""
    _, raw_header = read_header(shard)
    return {
        "bytes": shard.stat().st_size,
        "header_sha256": hashlib.sha256(raw_header).hexdigest(),
        "digests_sha256": hashlib.sha256(shard.with_name(shard.name + DIGESTS_SUFFIX).read_bytes()).hexdigest(),
    }


def read_manifest(folder: Path, name: str) -> dict[str, Any]:
    """The manifest of the store at `folder`, checked for shape: `StoreIntegrityError` naming it otherwise."""
    path = folder / name
    try:
        manifest = json.loads(path.read_text())
        problem = _manifest_problem(manifest)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"{type(error).__name__}: {error}"
    if problem:
        raise StoreIntegrityError(
            f"teacher store manifest {path} is unreadable or inconsistent ({problem}); the store is not used. "
            f"Delete the folder {folder} to rebuild it."
        )
    return manifest


def _manifest_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("key"), dict):
        return "no 'key'"
    shards, count = manifest.get("shards"), manifest.get("num_images")
    if not isinstance(shards, list) or not shards or not isinstance(count, int):
        return "no 'shards' or 'num_images'"
    expected_start = 0
    for entry in shards:
        if not isinstance(entry, dict) or any(field not in entry for field in _MANIFEST_SHARD_FIELDS):
            return f"a shard entry lacks one of {_MANIFEST_SHARD_FIELDS}"
        if entry["start"] != expected_start or entry["end"] < entry["start"]:
            return (
                f"shard {entry['file']} holds images [{entry['start']}, {entry['end']}), expected from {expected_start}"
            )
        expected_start = entry["end"]
    if expected_start != count:
        return f"the shards hold {expected_start} images, num_images is {count}"
    return None


def verify_shard(folder: Path, entry: dict[str, Any], views: int, full: bool) -> None:
    """Check one shard against its manifest entry (see the module docstring); `StoreIntegrityError` if it differs."""
    shard = folder / entry["file"]
    refuse = _refusal(folder)
    if not shard.is_file():
        raise refuse(f"shard {shard} is missing")
    if shard.stat().st_size != entry["bytes"]:
        raise refuse(f"shard {shard} has {shard.stat().st_size} bytes, its build wrote {entry['bytes']} (truncated?)")
    try:
        header, raw_header, data = _parts(shard)
    except TruncatedFileError as error:
        raise refuse(str(error)) from None
    if hashlib.sha256(raw_header).hexdigest() != entry["header_sha256"]:
        raise refuse(f"shard {shard}: its header differs from the one its build wrote")
    digests = _read_digests(shard, entry["digests_sha256"], refuse)
    generator = np.random.default_rng()  # other rows at every opening
    for name, spec in header.items():
        rows = _part_rows(data, len(raw_header), spec)
        expected = digests.get(name)
        if expected is None or len(expected) != len(rows):
            raise refuse(f"shard {shard}: part {name} has no checksums of its {len(rows)} rows")
        chosen = (
            np.arange(len(rows))
            if full or len(rows) <= SAMPLED_ROWS
            else generator.choice(len(rows), SAMPLED_ROWS, replace=False)
        )
        bad = [int(row) for row in chosen if _row_digest(rows[row]) != int(expected[row])]
        if bad:
            image = entry["start"] + bad[0] // views if name != "augmentation" else None
            where = f"row {bad[0]}" + (f" (image {image}, view {bad[0] % views})" if image is not None else "")
            raise refuse(
                f"shard {shard}: part {name}, {where} does not match the checksum its build wrote "
                f"({len(bad)} of {len(chosen)} {'rows' if full else 'sampled rows'} differ)"
            )


def _read_digests(shard: Path, sha256: str, refuse: Any) -> dict[str, torch.Tensor]:
    digests_file = shard.with_name(shard.name + DIGESTS_SUFFIX)
    if not digests_file.is_file():
        raise refuse(f"checksum file {digests_file} is missing")
    payload = digests_file.read_bytes()
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise refuse(f"checksum file {digests_file} differs from the one its build wrote")
    return safetensors.torch.load(payload)


def _refusal(folder: Path):
    def refuse(problem: str) -> StoreIntegrityError:
        return StoreIntegrityError(
            f"teacher store {folder} failed verification: {problem}; the store is not used. Delete the folder "
            f"{folder} to rebuild it (teacher_store_verify='full' checks every row)."
        )

    return refuse
