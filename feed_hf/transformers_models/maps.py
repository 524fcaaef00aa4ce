"""How a transformers vision model's outputs become FEED maps: special tokens dropped, tokens laid on their grid.

Three kinds of output, told apart by one forward on the meta device (`map_layout`):

- `tokens` (ViT, DINOv2, CLIP and SigLIP vision towers, DeiT, …): `last_hidden_state` is `[B, N, C]`; the class,
  distillation and register tokens come first and are dropped, the rest laid out on the `(H/p, W/p)` patch grid.
- `windowed` (Swin and its kin): tokens too, but the model reports each stage as a map itself
  (`reshaped_hidden_states`); the final normed tokens are laid out on the last stage's grid.
- `spatial` (ConvNeXt, ResNet, RegNet, …): `last_hidden_state` and every hidden state already are `[B, C, H, W]`.

A convolutional network may also return its final map flattened to tokens, with pooled token(s) first (DINOv3
ConvNeXt: `layernorm(cat(mean, map))`): `tokens` then, with `convolutional` set, the prefix counted from its last
stage map and the grid's stride read from it; its earlier hidden states stay maps, and it runs at any input size.

What the model's own head reads (`-1`) and how it pools are per family (`HEAD_POOLING`, `FINAL_NORM`); a family
not in those tables is pooled the plain way for its kind, and a classifier whose logits that pooling does not
reproduce is refused by the adapter (`feed_hf.transformers_models.adapter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = [
    "FINAL_NORM",
    "HEAD_POOLING",
    "MapLayout",
    "map_layout",
    "patch_grid",
    "pool_head_input",
    "special_token_count",
    "tokens_to_map",
]

MapKind = Literal["tokens", "windowed", "spatial"]

# What each family's image-classification head reads from the head input (forward_features' output), by the
# model type of the config that describes the vision network. Checked against transformers' own heads in tests.
HEAD_POOLING: dict[str, str] = {
    "vit": "class_token",  # ViTForImageClassification: classifier(sequence_output[:, 0])
    "deit": "class_token",
    "dinov2": "class_and_patch_mean",  # cat(class token, mean of the patch tokens)
    "dinov2_with_registers": "class_and_patch_mean",  # the registers are neither
    "beit": "own_pooler",  # BeitPooler: layernorm(patch mean) with use_mean_pooling, else the class token
    "data2vec-vision": "own_pooler",  # BEiT's pooler
    "vit_msn": "class_token",  # ViTMSNForImageClassification: classifier(sequence_output[:, 0])
    "dinov3_vit": "class_token",  # no classifier in transformers: its pooler_output, the normed class token
    "dinov3_convnext": "class_token",  # pooler_output: the first token, layernorm(mean over H×W)
    "clip_vision_model": "patch_mean",  # CLIPForImageClassification: mean of last_hidden_state[:, 1:]
    "siglip_vision_model": "token_mean",  # SigLIP has no class token: mean of every token
    "convnext": "spatial_mean_layernorm",  # pooler_output: layernorm(mean over H×W)
    "convnextv2": "spatial_mean_layernorm",
    "resnet": "spatial_mean",
    "regnet": "spatial_mean",
    "swin": "spatial_mean",  # the pooler averages the final normed tokens
    "swinv2": "spatial_mean",
}
# Families whose own head reads a norm applied after `last_hidden_state`: the CLIP vision tower's projection reads
# post_layernorm(class token), so its map is post_layernorm applied to every token (what timm's CLIP ViTs, with the
# same weights, return from forward_features). Only for the tower itself: CLIPForImageClassification's classifier
# reads last_hidden_state unnormed, and there -1 is that.
FINAL_NORM: dict[str, str] = {"CLIPVisionModel": "post_layernorm", "MetaClip2VisionModel": "post_layernorm"}
_CLASS_TOKEN_PARAMETERS = ("cls_token", "class_embedding")


@dataclass(frozen=True)
class MapLayout:
    """How one model's outputs are read: `kind`, the special tokens before the patch tokens, the patch size."""

    model_type: str
    kind: MapKind
    num_prefix_tokens: int = 0
    patch_size: int | None = None
    pooling: str = "spatial_mean"
    convolutional: bool = False  # tokens flattened from a conv map (its stages are maps; any input size)


def special_token_count(embeddings: nn.Module | None, config) -> int:
    """Class + distillation + register tokens ahead of the patch tokens, from the embeddings' parameters and
    `config.num_register_tokens` (SigLIP's embeddings hold no class token: 0)."""
    names = {name for name, _ in embeddings.named_parameters(recurse=False)} if embeddings is not None else set()
    count = int(any(name in names for name in _CLASS_TOKEN_PARAMETERS))
    count += int("distillation_token" in names)
    return count + int(getattr(config, "num_register_tokens", 0) or 0)


def patch_grid(input_size: tuple[int, int], patch_size: int | None, num_patch_tokens: int) -> tuple[int, int] | None:
    """`(H/p, W/p)` when it holds exactly `num_patch_tokens`; without a patch size a square grid; else None."""
    if patch_size:
        grid = (input_size[0] // patch_size, input_size[1] // patch_size)
        return grid if grid[0] * grid[1] == num_patch_tokens else None
    side = math.isqrt(num_patch_tokens)
    return (side, side) if side * side == num_patch_tokens else None


def tokens_to_map(
    tokens: torch.Tensor, layout: MapLayout, input_size: tuple[int, int], role: str = "model"
) -> torch.Tensor:
    """Tokens `[B, N, C]` → `[B, C, H/p, W/p]` without the `layout.num_prefix_tokens` special tokens."""
    patches = tokens[:, layout.num_prefix_tokens :]
    grid = patch_grid(tuple(input_size), layout.patch_size, patches.shape[1])
    if grid is None:
        raise ValueError(_no_grid_message(layout, tokens.shape[1], tuple(input_size), role))
    return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], *grid)


def _no_grid_message(layout: MapLayout, num_tokens: int, input_size: tuple[int, int], role: str) -> str:
    patch = f"the {layout.patch_size}-pixel patch grid" if layout.patch_size else "a square grid"
    return (
        f"{role} (model type {layout.model_type!r}): its hidden states cannot form a map: {num_tokens} tokens at "
        f"{input_size[0]}x{input_size[1]} px, {num_tokens - layout.num_prefix_tokens} after dropping "
        f"{layout.num_prefix_tokens} class/register token(s), do not fill {patch}; use a vision model whose "
        "tokens are image patches (ViT, DINOv2, CLIP, SigLIP, Swin) or a convolutional one"
    )


def map_layout(outputs, embeddings: nn.Module | None, config, input_size: tuple[int, int], role: str) -> MapLayout:
    """The layout of a model from one forward's `outputs` at `input_size` (a meta-device probe suffices)."""
    model_type = getattr(config, "model_type", type(config).__name__)
    final = getattr(outputs, "last_hidden_state", None)
    if not isinstance(final, torch.Tensor) or final.ndim not in (3, 4):
        shape = tuple(final.shape) if isinstance(final, torch.Tensor) else None
        raise ValueError(
            f"{role} (model type {model_type!r}): its output has no last_hidden_state of shape [B, N, C] or "
            f"[B, C, H, W] (got {shape}), so it yields no feature map; use a vision backbone"
        )
    if final.ndim == 4:
        return MapLayout(model_type, "spatial", pooling=HEAD_POOLING.get(model_type, "spatial_mean"))
    patch_size = getattr(config, "patch_size", None)
    patch_size = patch_size[0] if isinstance(patch_size, (tuple, list)) else patch_size
    if getattr(outputs, "reshaped_hidden_states", None) is not None:
        return MapLayout(model_type, "windowed", 0, patch_size, HEAD_POOLING.get(model_type, "spatial_mean"))
    stages = getattr(outputs, "hidden_states", None)
    if stages and stages[-1].ndim == 4:  # a conv map flattened to tokens, pooled token(s) first
        height, width = stages[-1].shape[-2:]
        prefix, patch_size = final.shape[1] - height * width, input_size[0] // height
        pooling = HEAD_POOLING.get(model_type, "patch_mean" if prefix else "token_mean")
        return MapLayout(model_type, "tokens", prefix, patch_size, pooling, convolutional=True)
    prefix = special_token_count(embeddings, config)
    default = "patch_mean" if prefix else "token_mean"
    layout = MapLayout(model_type, "tokens", prefix, patch_size, HEAD_POOLING.get(model_type, default))
    if patch_grid(input_size, patch_size, final.shape[1] - prefix) is None:
        raise ValueError(_no_grid_message(layout, final.shape[1], input_size, role))
    return layout


def pool_head_input(features: torch.Tensor, layout: MapLayout, backbone: nn.Module) -> torch.Tensor:
    """The head input `[B, N, C]` or `[B, C, H, W]` → the `[B, D]` vector the family's classifier reads."""
    prefix = layout.num_prefix_tokens
    pooling = layout.pooling
    if pooling == "class_token":
        return features[:, 0]
    if pooling == "class_and_patch_mean":
        return torch.cat([features[:, 0], features[:, prefix:].mean(dim=1)], dim=1)
    if pooling == "patch_mean":
        return features[:, prefix:].mean(dim=1)
    if pooling == "token_mean":
        return features.mean(dim=1)
    if pooling == "own_pooler":  # the family's pooler reads the head input; built without one: the patch mean
        pooler = getattr(backbone, "pooler", None)
        return features[:, prefix:].mean(dim=1) if pooler is None else pooler(features)
    pooled = features.mean(dim=(-2, -1))
    if pooling == "spatial_mean_layernorm":
        return backbone.layernorm(pooled)
    return pooled
