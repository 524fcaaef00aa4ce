"""Per-teacher parameter records (named tensors + str→str facts) in one safetensors file, in order, no pickle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["TensorRecord", "checked_facts", "load_tensor_records", "save_tensor_records"]

TensorRecord = tuple[dict[str, torch.Tensor], dict[str, str]]
_COUNT_KEY = "num_records"


def save_tensor_records(path: str | Path, records: Sequence[TensorRecord], kind: str) -> None:
    """Write record n's tensors as `t{n}.NAME` and its facts as metadata `t{n}.KEY`; `kind` names the contents."""
    tensors: dict[str, torch.Tensor] = {}
    metadata = {_COUNT_KEY: str(len(records)), "kind": kind}
    for index, (named_tensors, facts) in enumerate(records):
        tensors.update({f"t{index}.{name}": tensor.contiguous().cpu() for name, tensor in named_tensors.items()})
        metadata.update({f"t{index}.{key}": value for key, value in facts.items()})
    save_file(tensors, str(path), metadata=metadata)


def load_tensor_records(path: str | Path, kind: str) -> list[TensorRecord]:
    """The records `save_tensor_records` wrote with this `kind`; any other file is refused by name."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("kind") != kind or _COUNT_KEY not in metadata:
            raise ValueError(
                f"{path} holds {metadata.get('kind')!r} records, expected {kind!r}; point to the file that was "
                "saved for it, or refit"
            )
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    records = []
    for index in range(int(metadata[_COUNT_KEY])):
        prefix = f"t{index}."
        own_tensors = {name[len(prefix) :]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}
        own_facts = {key[len(prefix) :]: value for key, value in metadata.items() if key.startswith(prefix)}
        records.append((own_tensors, own_facts))
    return records


def checked_facts(facts: dict[str, str], record_format: str, key: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A record's facts without `format` and `key`, after checking both; a ValueError naming them otherwise."""
    if facts.get("format") != record_format or facts.get(key) not in allowed:
        raise ValueError(
            f"record with format {facts.get('format')!r} and {key} {facts.get(key)!r}: expected format "
            f"{record_format!r} and a {key} in {allowed}; refit it"
        )
    return {name: value for name, value in facts.items() if name not in ("format", key)}
