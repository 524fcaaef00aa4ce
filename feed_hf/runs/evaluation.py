"""Accuracy of exported models and of logit ensembles on an `image`/`label` split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import timm
import torch
from timm.data import resolve_model_data_config
from torch.utils.data import DataLoader

from ..metrics import top_k_from_logits
from ..transforms import build_transform, with_pixel_values

__all__ = ["ensemble_top1", "predict_logits"]


@torch.no_grad()
def predict_logits(model_dir: str | Path, split: datasets.Dataset, batch_size: int = 128) -> np.ndarray:
    """Logits `[N, K]` of the model exported in `model_dir` on `split`, with its own eval transform."""
    model = timm.create_model(f"local-dir:{model_dir}", pretrained=True).eval()
    data_config = resolve_model_data_config(model)
    dataset = with_pixel_values(split, build_transform(data_config, training=False), data_config["input_size"][0])
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return torch.cat([model(batch["pixel_values"]) for batch in loader]).numpy()


def ensemble_top1(model_dirs: Sequence[str | Path], split: datasets.Dataset) -> float:
    """Top-1 (%) of the models' averaged logits: the logit ensemble a FEED student competes with."""
    mean_logits = np.mean([predict_logits(model_dir, split) for model_dir in model_dirs], axis=0)
    return top_k_from_logits(mean_logits, split["label"])["top1"]
