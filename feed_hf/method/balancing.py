"""Teachers on a common scale: per-teacher feature statistics fitted once, recorded, and applied to its maps.

Foundation teachers' features differ in scale and spread by orders of magnitude; a per-teacher transform fitted
once on a sample puts them on one scale before the distance is taken. Every option has the same form, an affine
map applied to each channel vector x `[C]` (each spatial position of a map, or a summary):

    y = R·(x − μ) / s          x = Rᵀ·(y ⊙ s) + μ                                        (μ, s `[C]`, R `[C, C]`)

- `none` (default, FEED as published): y = x.
- `standardize`: R = I, s = σ (per-channel std over batch and positions): every channel mean 0 / std 1 on the
  sample. A constant channel (σ ≤ 1e-12·max σ) keeps s = 1: it is centred, never amplified; the count is recorded.
- `phi_s`: PHI-S (Ranzinger et al., "PHI-S: Distribution Balancing for Label-Free Multi-Teacher Distillation",
  arXiv 2410.01680, 2024), reimplemented from the paper's description: centre, rotate onto the PCA axes (Uᵀ,
  covariance U·diag(λ)·Uᵀ), rotate by a normalised Hadamard matrix H (R = H·Uᵀ), then divide by one scalar
  α = √mean(λ). Every output dimension then has variance exactly 1 (H spreads each component's variance evenly),
  the transform is orthogonal up to the scale α (no whitening: low-variance directions are not blown up), and it is
  inverted exactly. Channel counts without a Hadamard matrix use the equal-diagonal rotation of
  `feed_hf/method/isotropic_rotation.py` (same property; stated in the recorded metadata).

Statistics come from `ChannelMoments` (streaming; `fit_balance_from_batches` runs over any iterable of maps, e.g.
a data loader or a teacher store). A `FeatureBalance` is recorded as safetensors tensors plus a str→str dict
(`save_balances` / `load_balances`, no pickle), so a run stores it and a resumed or evaluating run reloads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch

from ..store.tensor_records import checked_facts, load_tensor_records, save_tensor_records
from .feature_moments import ChannelMoments
from .isotropic_rotation import isotropic_rotation

__all__ = [
    "BalancingMethod",
    "FeatureBalance",
    "balance_features",
    "fit_balance",
    "fit_balance_from_batches",
    "load_balances",
    "save_balances",
    "unbalance_features",
]

BalancingMethod = Literal["none", "standardize", "phi_s"]
_FORMAT = "feed_hf.feature_balance/1"
_CONSTANT_CHANNEL = 1e-12  # σ below this share of the largest σ: a constant channel


@dataclass(frozen=True)
class FeatureBalance:
    """y = R·(x − mean) / scale per channel vector; `rotation` None means R = I. Tensors float32 on the CPU."""

    method: BalancingMethod
    mean: torch.Tensor  # [C]
    scale: torch.Tensor  # [C]
    rotation: torch.Tensor | None = None  # [C, C], orthogonal
    info: dict[str, str] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return self.mean.numel()

    def tensors(self) -> dict[str, torch.Tensor]:
        """The parameters as named contiguous tensors (what safetensors stores)."""
        named = {"mean": self.mean, "scale": self.scale}
        if self.rotation is not None:
            named["rotation"] = self.rotation
        return {name: tensor.contiguous() for name, tensor in named.items()}

    def metadata(self) -> dict[str, str]:
        """The method and facts of the fit as str → str (safetensors metadata)."""
        return {"format": _FORMAT, "method": self.method, **self.info}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> FeatureBalance:
        """The inverse of (`tensors()`, `metadata()`); refuses an unknown format or method."""
        info = checked_facts(metadata, _FORMAT, "method", get_args(BalancingMethod))
        return cls(metadata["method"], tensors["mean"], tensors["scale"], tensors.get("rotation"), info)


def fit_balance(moments: ChannelMoments, method: BalancingMethod) -> FeatureBalance:
    """The balance of `method` for the distribution whose moments were accumulated (C = moments.num_channels)."""
    if method not in get_args(BalancingMethod):
        raise ValueError(f"balancing method {method!r}: expected one of {get_args(BalancingMethod)}")
    channels = moments.num_channels
    info = {"num_channels": str(channels), "sample_vectors": str(moments.count)}
    if method == "none":
        return FeatureBalance(method, torch.zeros(channels), torch.ones(channels), None, info)
    mean = moments.mean.float()
    if method == "standardize":
        std = moments.variance().sqrt()
        constant = std <= _CONSTANT_CHANNEL * std.max().clamp_min(torch.finfo(torch.float64).tiny)
        info["constant_channels"] = str(int(constant.sum()))
        return FeatureBalance(method, mean, torch.where(constant, 1.0, std).float(), None, info)
    eigenvalues, eigenvectors = moments.principal_axes()
    mean_eigenvalue = float(eigenvalues.mean())
    if mean_eigenvalue <= 0.0:
        raise ValueError("phi_s on a sample whose every channel is constant: the teacher maps carry no variance")
    hadamard, kind = isotropic_rotation(eigenvalues)
    info.update(rotation=kind, alpha=repr(math.sqrt(mean_eigenvalue)))
    scale = torch.full((channels,), math.sqrt(mean_eigenvalue))
    return FeatureBalance(method, mean, scale, (hadamard @ eigenvectors.T).float(), info)


def fit_balance_from_batches(batches: Iterable[torch.Tensor], method: BalancingMethod) -> FeatureBalance:
    """`fit_balance` over an iterable of teacher maps `[B, C, H, W]` (or summaries `[B, D]`), one pass."""
    moments: ChannelMoments | None = None
    for batch in batches:
        moments = moments or ChannelMoments(batch.shape[1])
        moments.update(batch)
    if moments is None:
        raise ValueError("no batches to fit the balance on; give at least one batch of teacher maps")
    return fit_balance(moments, method)


def _along_channels(matrix: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """matrix `[C', C]` applied to every channel vector of features `[B, C, H, W]` or `[B, C]`."""
    if features.ndim == 4:
        return torch.einsum("dc,bchw->bdhw", matrix, features)
    return features @ matrix.T


def _broadcast(vector: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    return vector.view(1, -1, 1, 1) if features.ndim == 4 else vector.view(1, -1)


def _check_channels(features: torch.Tensor, balance: FeatureBalance) -> torch.dtype:
    if features.ndim not in (2, 4) or features.shape[1] != balance.num_channels:
        raise ValueError(
            f"features of shape {tuple(features.shape)} for a balance of {balance.num_channels} channels: expected "
            f"[B, {balance.num_channels}, H, W] or [B, {balance.num_channels}] (the teacher it was fitted on)"
        )
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def balance_features(features: torch.Tensor, balance: FeatureBalance) -> torch.Tensor:
    """y = R·(x − μ)/s on `[B, C, H, W]` or `[B, C]`; fp32 out (fp64 in → fp64), on the features' device.

    `none` returns the features unchanged (no cast), so FEED as published sees exactly the teacher's map.
    """
    dtype = _check_channels(features, balance)
    if balance.method == "none":
        return features
    centred = features.to(dtype) - _broadcast(balance.mean.to(features.device, dtype), features)
    rotated = centred if balance.rotation is None else _along_channels(balance.rotation.to(centred), centred)
    return rotated / _broadcast(balance.scale.to(centred), features)


def unbalance_features(features: torch.Tensor, balance: FeatureBalance) -> torch.Tensor:
    """The inverse: x = Rᵀ·(y ⊙ s) + μ on `[B, C, H, W]` or `[B, C]` (e.g. a student's estimate of the teacher)."""
    dtype = _check_channels(features, balance)
    if balance.method == "none":
        return features
    scaled = features.to(dtype) * _broadcast(balance.scale.to(features.device, dtype), features)
    rotated = scaled if balance.rotation is None else _along_channels(balance.rotation.to(scaled).T, scaled)
    return rotated + _broadcast(balance.mean.to(scaled), features)


def save_balances(path: str | Path, balances: Sequence[FeatureBalance]) -> None:
    """Write one balance per teacher, in teacher order, to a safetensors file (tensors + metadata, no pickle)."""
    save_tensor_records(path, [(balance.tensors(), balance.metadata()) for balance in balances], _FORMAT)


def load_balances(path: str | Path) -> list[FeatureBalance]:
    """The balances `save_balances` wrote, in teacher order."""
    return [FeatureBalance.from_tensors(tensors, facts) for tensors, facts in load_tensor_records(path, _FORMAT)]
