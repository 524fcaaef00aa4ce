"""Per-teacher timm.create_model keyword arguments: the `SPEC?key=value` syntax, and weights adapted to them."""

from __future__ import annotations

import re
import sys
from typing import Any

import torch
from torch import nn

__all__ = ["adapt_state_dict", "split_model_kwargs"]

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
