"""Per-teacher timm.create_model keyword arguments: the `SPEC?key=value` syntax, and weights adapted to them."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["adapt_state_dict", "split_model_kwargs", "take_checkpoint_kwarg"]

# Suffixes of files a keyword argument may name (weights, pickles, archives): read only through feed-hf's loader.
_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle", ".tar", ".npz", ".h5")

_MODEL_KWARGS = re.compile(r"^[A-Za-z_]\w*=[^&=?]*(&[A-Za-z_]\w*=[^&=?]*)*$")


def split_model_kwargs(spec: str) -> tuple[str, dict[str, Any]]:
    """`SPEC?key=value&key=value` → (SPEC, timm.create_model keyword arguments for that teacher alone).

    Values read as the command line would: `true`/`false`, `none`, integers, floats, `a,b` tuples, else text
    (`hf-hub:ns/vit?img_size=64`, `vit_base_patch16_224=w.safetensors?dynamic_img_size=true`). A spec without
    a `?key=value` suffix is returned as given.
    """
    base, separator, query = spec.rpartition("?")
    if not separator or not base or not _MODEL_KWARGS.match(query):
        return spec, {}
    return base, {key: _parse_kwarg(text) for key, _, text in (item.partition("=") for item in query.split("&"))}


def take_checkpoint_kwarg(spec: str, model_kwargs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(`model_kwargs` without `checkpoint_path`, that path): timm would read the file itself, past the pickle policy.

    The caller loads it with `teacher_sources.load_checkpoint_state_dict` (safetensors, or a pickle only with the
    opt-in, read with `weights_only=True`). Any other keyword argument that names a file is refused by name: what
    timm would do with it is not checked.
    """
    kwargs = dict(model_kwargs)
    checkpoint = kwargs.pop("checkpoint_path", None)
    for key, value in kwargs.items():
        if isinstance(value, str) and (value.lower().endswith(_FILE_SUFFIXES) or Path(value).is_file()):
            raise ValueError(
                f"teacher {spec!r}: keyword argument {key}={value!r} names a file, and feed-hf reads files only "
                "through its own loader; give weights as NAME=FILE or ?checkpoint_path=FILE"
            )
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise ValueError(f"teacher {spec!r}: checkpoint_path={checkpoint!r} is not a file path")
    return kwargs, checkpoint


def _parse_kwarg(text: str) -> Any:
    if "," in text:
        return tuple(_parse_kwarg(part) for part in text.split(","))
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def adapt_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights made for the architecture's own config, adapted to `model` built with other keyword arguments.

    timm's own checkpoint filter of the architecture does the adapting (e.g. a ViT's position embedding
    resampled to a new `img_size`); classifier weights of a model built without its head (`num_classes=0`)
    are left out. A classifier of another size is kept, so loading it fails rather than inventing a head.
    """
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    state_dict = filter_fn(state_dict, model) if filter_fn is not None else state_dict
    expected = model.state_dict().keys()
    classifiers = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    prefixes = tuple(f"{name}." for name in ([classifiers] if isinstance(classifiers, str) else classifiers))
    dropped_head = [key for key in state_dict if key not in expected and prefixes and key.startswith(prefixes)]
    return {key: value for key, value in state_dict.items() if key not in dropped_head}
