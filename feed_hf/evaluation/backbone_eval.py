"""A model judged as a backbone: k-NN and linear-probe top-1 on its frozen pooled features (how a label-free
student is judged, and its teachers beside it).

- **Features**: the model's pre-logits `[B, D]` (timm: `forward_head(forward_features(x), pre_logits=True)`,
  `PreLogits`), or any module/callable returning `[B, D]`; extracted batch by batch in eval mode without autograd
  (`extract_features`), the module's train/eval mode restored afterwards.
- **k-NN** (`knn_top1`): DINO's weighted k-NN (Caron et al., "Emerging Properties in Self-Supervised Vision
  Transformers", ICCV 2021, after Wu et al., CVPR 2018): features L2-normalised, cosine similarity to every train
  feature, the k most similar vote for their class with weight exp(sim/T); defaults k = 20, T = 0.07 as there.
- **Linear probe** (`linear_probe_top1`): multinomial logistic regression (scikit-learn, L2, lbfgs) on standardised
  features (mean/std of the training part only). The inverse regularisation C is chosen by accuracy on a held-out
  part of the *train* split (stratified, `holdout_fraction`, seeded), never on test; ties go to the smaller C (the
  stronger regularisation). The probe is then refitted on the whole train split with that C and scored on test.

Accuracies are in percent, as the rest of feed-hf reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

__all__ = [
    "DEFAULT_REGULARIZATIONS",
    "PreLogits",
    "evaluate_backbone",
    "extract_features",
    "knn_top1",
    "linear_probe_top1",
]

DEFAULT_REGULARIZATIONS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # scikit-learn's C: inverse L2 strength


class PreLogits(nn.Module):
    """A timm model's pre-logits as a module: `[B, 3, H, W]` → `[B, D]`, the features its classifier reads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not hasattr(model, "forward_head"):
            raise ValueError(
                f"{type(model).__name__} has no forward_head (not a timm model); pass a module or callable that "
                "returns the pooled features [B, D] instead"
            )
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(pixel_values), pre_logits=True)


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        labels = batch.get("labels", batch.get("label"))
        if "pixel_values" not in batch or labels is None:
            raise ValueError(f"a batch with keys {sorted(batch)}: expected 'pixel_values' and 'labels' (or 'label')")
        return batch["pixel_values"], torch.as_tensor(labels)
    pixel_values, labels = batch
    return pixel_values, torch.as_tensor(labels)


@torch.no_grad()
def extract_features(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[Any],
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features `[N, D]` (fp32, CPU) and labels `[N]` (int64) of every batch, in order.

    batches: dicts with `pixel_values` and `labels`/`label`, or (pixel_values, labels) pairs. A module is put in
    eval mode for the pass (restored after); inputs go to `device`, by default the module's parameters' device.
    """
    module = model if isinstance(model, nn.Module) else None
    was_training = module.training if module is not None else False
    if device is None and module is not None:
        device = next((parameter.device for parameter in module.parameters()), None)
    if module is not None:
        module.eval()
    features, labels = [], []
    try:
        for batch in batches:
            pixel_values, batch_labels = _split_batch(batch)
            output = model(pixel_values.to(device) if device is not None else pixel_values)
            if not isinstance(output, torch.Tensor) or output.ndim != 2:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(f"the feature extractor returned {shape}; expected pooled features [B, D]")
            features.append(output.float().cpu())
            labels.append(batch_labels.long().cpu())
    finally:
        if module is not None:
            module.train(was_training)
    if not features:
        raise ValueError("no batches: the split to extract features from is empty")
    return torch.cat(features), torch.cat(labels)


def _check_pairs(features: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0] or features.shape[0] == 0:
        raise ValueError(
            f"{name} features {tuple(features.shape)} and labels {tuple(labels.shape)}: expected [N, D] and [N] "
            "with N ≥ 1"
        )


def knn_top1(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> float:
    """Weighted k-NN top-1 (%) of test on train (module docstring). Features `[N, D]`, labels `[N]` int."""
    _check_pairs(train_features, train_labels, "train")
    _check_pairs(test_features, test_labels, "test")
    if not 1 <= k <= train_features.shape[0]:
        raise ValueError(
            f"k={k} but the train split has {train_features.shape[0]} samples; choose 1 ≤ k ≤ "
            f"{train_features.shape[0]} (or use a larger train split)"
        )
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: expected > 0 (DINO uses 0.07)")
    bank = F.normalize(train_features.float(), dim=1)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = 0
    for start in range(0, test_features.shape[0], chunk_size):
        queries = F.normalize(test_features[start : start + chunk_size].float(), dim=1)
        similarity, index = (queries @ bank.T).topk(k, dim=1)
        votes = torch.zeros(queries.shape[0], num_classes).scatter_add_(
            1, train_labels[index].long(), (similarity / temperature).exp()
        )
        correct += int((votes.argmax(dim=1) == test_labels[start : start + chunk_size]).sum())
    return 100.0 * correct / test_features.shape[0]


def _fit_probe(features: np.ndarray, labels: np.ndarray, regularization: float, max_iter: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=max_iter))
    return probe.fit(features, labels)


def _holdout_split(labels: np.ndarray, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    held_count = int(np.ceil(holdout_fraction * labels.size))
    classes = int((counts > 0).sum())
    # Stratified when every class can be split and every class fits in the held-out part; random otherwise.
    splittable = counts[counts > 0].min() >= 2 and classes <= min(held_count, labels.size - held_count)
    stratify = labels if splittable else None
    fit, held = train_test_split(
        np.arange(labels.size), test_size=holdout_fraction, random_state=seed, stratify=stratify
    )
    return fit, held


def linear_probe_top1(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    regularizations: Sequence[float] = DEFAULT_REGULARIZATIONS,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 1000,
) -> dict[str, Any]:
    """Linear-probe top-1 (%) on test, C chosen on a held-out part of train (module docstring).

    Returns {"top1", "regularization" (the chosen C), "holdout_top1" {C: %}, "holdout_fraction", "converged"}.
    """
    _check_pairs(train_features, train_labels, "train")
    _check_pairs(test_features, test_labels, "test")
    if not 0.0 < holdout_fraction < 1.0 or not regularizations:
        raise ValueError(
            f"holdout_fraction={holdout_fraction} with regularizations={list(regularizations)}: expected a "
            "fraction in (0, 1) and at least one C > 0"
        )
    features, labels = train_features.double().numpy(), train_labels.long().numpy()
    fit, held = _holdout_split(labels, holdout_fraction, seed)
    holdout_top1 = {}
    for regularization in sorted(regularizations):
        probe = _fit_probe(features[fit], labels[fit], regularization, max_iter)
        holdout_top1[regularization] = 100.0 * float((probe.predict(features[held]) == labels[held]).mean())
    chosen = max(holdout_top1, key=lambda value: (holdout_top1[value], -value))  # ties: the stronger regularisation
    probe = _fit_probe(features, labels, chosen, max_iter)
    predictions = probe.predict(test_features.double().numpy())
    return {
        "top1": 100.0 * float((predictions == test_labels.long().numpy()).mean()),
        "regularization": chosen,
        "holdout_top1": holdout_top1,
        "holdout_fraction": holdout_fraction,
        "converged": bool((probe[-1].n_iter_ < max_iter).all()),
    }


def evaluate_backbone(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    train_dataset: Any,
    test_dataset: Any,
    protocols: Sequence[str] = ("knn", "linear"),
    batch_size: int = 128,
    k: int = 20,
    temperature: float = 0.07,
    seed: int = 0,
) -> dict[str, Any]:
    """k-NN and/or linear-probe top-1 (%) of `model`'s features on two map-style datasets.

    The datasets yield `pixel_values` (already in the model's input format) and `labels`/`label`, as dicts or
    pairs; a timm model is read at its pre-logits (`PreLogits`), anything else must return `[B, D]` itself.
    """
    unknown = sorted(set(protocols) - {"knn", "linear"})
    if unknown or not protocols:
        raise ValueError(f"protocols {list(protocols)}: expected 'knn' and/or 'linear'")
    extractor = PreLogits(model) if isinstance(model, nn.Module) and hasattr(model, "forward_head") else model
    train = extract_features(extractor, DataLoader(train_dataset, batch_size=batch_size, shuffle=False))
    test = extract_features(extractor, DataLoader(test_dataset, batch_size=batch_size, shuffle=False))
    report: dict[str, Any] = {"num_train": len(train[1]), "num_test": len(test[1]), "feature_dim": train[0].shape[1]}
    if "knn" in protocols:
        top1 = knn_top1(*train, *test, k=k, temperature=temperature)
        report["knn"] = {"top1": top1, "k": k, "temperature": temperature}
    if "linear" in protocols:
        report["linear"] = linear_probe_top1(*train, *test, seed=seed)
    return report
