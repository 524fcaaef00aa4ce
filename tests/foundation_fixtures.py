"""Tiny random-initialised transformers vision models of the real classes, saved as a Hub user would find them.

Each family is a config small enough for a test of seconds; `save_family` writes `save_pretrained` of the network
plus an image processor (mean/std unlike ImageNet's, so reading them is tested) and optionally a model card, and
`push_folder` uploads such a folder to the loopback Hub (tests/conftest.py starts it).
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from conftest import HUB_TOKEN
from huggingface_hub import HfApi

__all__ = [
    "FAMILIES",
    "HEADLESS_FAMILIES",
    "MEAN",
    "SPECIAL_TOKENS",
    "STD",
    "family_config",
    "push_folder",
    "save_family",
    "save_processor",
]

MEAN = (0.1, 0.2, 0.3)
STD = (0.4, 0.5, 0.6)
SIZE = 32
_VIT = dict(image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
_TEXT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=99)


def _clip_config() -> transformers.CLIPConfig:
    return transformers.CLIPConfig(
        vision_config=dict(**_VIT, intermediate_size=64),
        text_config=dict(**_TEXT, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        projection_dim=16,
    )


def _siglip_config() -> transformers.SiglipConfig:
    return transformers.SiglipConfig(vision_config=dict(**_VIT, intermediate_size=64), text_config=dict(_TEXT))


_CONFIGS = {
    "vit": lambda: transformers.ViTConfig(**_VIT, intermediate_size=64),
    "dinov2": lambda: transformers.Dinov2Config(**_VIT, mlp_ratio=2),
    "dinov2_registers": lambda: transformers.Dinov2WithRegistersConfig(**_VIT, mlp_ratio=2, num_register_tokens=4),
    "clip_vision": lambda: transformers.CLIPVisionConfig(**_VIT, intermediate_size=64),
    "clip": _clip_config,  # a full CLIP model: its vision tower is the teacher
    "siglip_vision": lambda: transformers.SiglipVisionConfig(**_VIT, intermediate_size=64),
    "siglip": _siglip_config,
    "convnext": lambda: transformers.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=SIZE),
    "swin": lambda: transformers.SwinConfig(
        image_size=SIZE, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4
    ),
    "resnet": lambda: transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
    "deit": lambda: transformers.DeiTConfig(**_VIT, intermediate_size=64),  # class + distillation token
    "convnextv2": lambda: transformers.ConvNextV2Config(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
    "swinv2": lambda: transformers.Swinv2Config(
        image_size=SIZE, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4
    ),
    "regnet": lambda: transformers.RegNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
    "beit": lambda: transformers.BeitConfig(**_VIT, intermediate_size=64),  # mean pooling + its own layernorm
    "data2vec_vision": lambda: transformers.Data2VecVisionConfig(**_VIT, intermediate_size=64),
    "vit_msn": lambda: transformers.ViTMSNConfig(**_VIT, intermediate_size=64),
    # DINOv3 (no image-classification model in transformers): a RoPE ViT with 4 registers, and a ConvNeXt that
    # returns its final map as layer-normed tokens behind one pooled token (a 1x1 map at 32 px: stride 32).
    "dinov3_vit": lambda: transformers.DINOv3ViTConfig(**_VIT, intermediate_size=64, num_register_tokens=4),
    "dinov3_convnext": lambda: transformers.DINOv3ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
}
# Families transformers has no `…ForImageClassification` for: teachers or label-free students only.
HEADLESS_FAMILIES = ("clip_vision", "siglip_vision", "dinov3_vit", "dinov3_convnext")
FAMILIES = tuple(_CONFIGS)
# Tokens ahead of the patch tokens, counted by hand: class token, registers; SigLIP has none; maps have none.
SPECIAL_TOKENS = {
    "vit": 1,
    "deit": 2,
    "dinov2": 1,
    "dinov2_registers": 1 + 4,
    "clip_vision": 1,
    "clip": 1,
    "siglip_vision": 0,
    "siglip": 0,
    "beit": 1,
    "data2vec_vision": 1,
    "vit_msn": 1,
    "dinov3_vit": 1 + 4,
    "dinov3_convnext": 1,  # the pooled token
}


def family_config(family: str, **overrides) -> transformers.PretrainedConfig:
    config = _CONFIGS[family]()
    for key, value in overrides.items():
        setattr(getattr(config, "vision_config", None) or config, key, value)
    return config


def save_processor(folder: Path, size: int = SIZE, crop: int | None = None, **fields) -> None:
    """A processor as the Hub's ship: resize to `size`, or shortest edge `size` and a center crop of `crop`."""
    if crop is None:
        processor = transformers.ViTImageProcessor(size={"height": size, "width": size}, image_mean=MEAN, image_std=STD)
    else:
        processor = transformers.CLIPImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": crop, "width": crop}, image_mean=MEAN, image_std=STD
        )
    for key, value in fields.items():
        setattr(processor, key, value)
    processor.save_pretrained(folder)


def save_family(
    folder: Path,
    family: str,
    classifier: bool = False,
    processor: bool = True,
    card_license: str | None = None,
    seed: int = 0,
    **config_overrides,
) -> torch.nn.Module:
    """Save a tiny random `family` model (the bare network, or its image-classification model) in `folder`."""
    torch.manual_seed(seed)
    config = family_config(family, **config_overrides)
    config.architectures = config.architectures or []  # transformers' Auto classes iterate it (DeiT has two heads)
    auto = transformers.AutoModelForImageClassification if classifier else transformers.AutoModel
    model = auto.from_config(config).eval()
    model.save_pretrained(folder)
    if processor:
        save_processor(folder)
    if card_license is not None:
        (folder / "README.md").write_text(f"---\nlicense: {card_license}\nlibrary_name: transformers\n---\n# tiny\n")
    return model


def push_folder(folder: Path, repo_id: str) -> str:
    """Upload `folder` to the loopback Hub as model repo `repo_id`; returns the commit sha."""
    api = HfApi(token=HUB_TOKEN)
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder).oid
