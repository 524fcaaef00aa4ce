"""Pieces shared by the CIFAR model families: default cfgs and the intermediate-feature loop."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.models._features import feature_take_indices

# CIFAR-100 statistics, as RepDistiller / mdistiller normalise; CIFAR-10's differ by < 0.02.
CIFAR_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR_STD = (0.2673, 0.2564, 0.2762)


def cifar_cfg(**overrides) -> dict:
    """Default pretrained cfg of a 32×32 CIFAR classifier (no weights are shipped)."""
    cfg = {
        "url": "",
        "num_classes": 100,
        "input_size": (3, 32, 32),
        "pool_size": (8, 8),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
    }
    cfg.update(overrides)
    return cfg


def run_intermediates(
    stem: torch.nn.Module,
    stages: Sequence[torch.nn.Module],
    final_norm: torch.nn.Module,
    x: torch.Tensor,
    indices: int | list[int] | None,
    stop_early: bool,
    intermediates_only: bool,
) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's `forward_intermediates` contract for a stem + stages + final norm network.

    Feature index 0 is the stem output, 1..len(stages) the stage outputs. The last stage's
    intermediate is taken after `final_norm`, so index -1 is exactly the map `forward_features`
    returns (the map global pooling sees).
    """
    take_indices, max_index = feature_take_indices(len(stages) + 1, indices)
    last_index = len(stages)
    intermediates = []
    x = stem(x)
    if 0 in take_indices:
        intermediates.append(x)
    run_stages = stages[:max_index] if stop_early else stages
    for stage_index, stage in enumerate(run_stages, start=1):
        x = stage(x)
        if stage_index == last_index:
            x = final_norm(x)
        if stage_index in take_indices:
            intermediates.append(x)
    if intermediates_only:
        return intermediates
    return x, intermediates
