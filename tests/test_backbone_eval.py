"""A model judged as a backbone: weighted k-NN and linear probe with known answers, features in eval mode."""

import math

import pytest
import timm
import torch
from torch import nn
from torch.utils.data import TensorDataset

from feed_hf.evaluation.backbone_eval import PreLogits, evaluate_backbone, extract_features, knn_top1, linear_probe_top1


def _clusters(num_classes: int, per_class: int, dim: int = 16, noise: float = 0.05, seed: int = 0):
    """Features near one orthogonal direction per class: linearly separable, every neighbour of the same class."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    features = torch.eye(dim)[labels] * 5 + noise * torch.randn(labels.numel(), dim, generator=generator)
    return features, labels


def test_knn_and_linear_probe_are_perfect_on_separated_clusters():
    train, test = _clusters(4, 30, seed=0), _clusters(4, 10, seed=1)
    assert knn_top1(*train, *test) == 100.0
    result = linear_probe_top1(*train, *test)
    assert result["top1"] == 100.0 and result["converged"]
    assert set(result["holdout_top1"]) == {1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0}


def test_knn_weights_votes_by_exp_similarity_over_temperature():
    # One class-0 neighbour at cosine 1.0, two class-1 neighbours at cosine 0.9 (k = 3).
    angle = math.acos(0.9)
    train = torch.tensor([[1.0, 0.0], [math.cos(angle), math.sin(angle)], [math.cos(angle), -math.sin(angle)]])
    train_labels, test, test_labels = torch.tensor([0, 1, 1]), torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    # T = 0.07: e^(1/0.07) > 2·e^(0.9/0.07) (ratio e^1.43 ≈ 4.2 > 2): class 0 wins against the majority.
    assert knn_top1(train, train_labels, test, test_labels, k=3, temperature=0.07) == 100.0
    # T = 1: e^1 ≈ 2.72 < 2·e^0.9 ≈ 4.92: the two class-1 neighbours win.
    assert knn_top1(train, train_labels, test, test_labels, k=3, temperature=1.0) == 0.0
    # k = 1: only the nearest neighbour votes.
    assert knn_top1(train, train_labels, test, test_labels, k=1, temperature=1.0) == 100.0


def test_shuffled_labels_give_chance_level_accuracy():
    features, labels = _clusters(5, 80, noise=0.05, seed=2)
    shuffled = labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(3))]
    train, test = (features[:300], shuffled[:300]), (features[300:], shuffled[300:])
    assert 5.0 <= knn_top1(*train, *test) <= 35.0  # chance 20 %, 100 test samples
    assert 5.0 <= linear_probe_top1(*train, *test)["top1"] <= 35.0


def test_k_larger_than_the_train_split_is_refused_clearly():
    features, labels = _clusters(2, 5)
    with pytest.raises(ValueError, match=r"k=20 but the train split has 10 samples; choose 1 ≤ k ≤ 10"):
        knn_top1(features, labels, features, labels, k=20)


def test_linear_probe_regularisation_is_chosen_without_looking_at_test():
    train, test = _clusters(3, 40, noise=2.0, seed=4), _clusters(3, 20, noise=2.0, seed=5)
    first = linear_probe_top1(*train, *test)
    scrambled_test = (torch.randn_like(test[0]), test[1].flip(0))
    second = linear_probe_top1(*train, *scrambled_test)
    assert first["regularization"] == second["regularization"]
    assert first["holdout_top1"] == second["holdout_top1"]
    assert first["top1"] != second["top1"]  # the test data did change what was scored


class _Pooled(nn.Module):
    """A module with dropout and batch norm: its features differ between train and eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.body(pixel_values).mean(dim=(2, 3))


def test_extract_features_runs_in_eval_mode_without_autograd_and_restores_the_mode():
    model = _Pooled().train()
    pixel_values, labels = torch.randn(10, 3, 8, 8), torch.arange(10) % 2
    batches = [{"pixel_values": pixel_values[:6], "labels": labels[:6]}, (pixel_values[6:], labels[6:])]
    features, extracted_labels = extract_features(model, batches)
    assert model.training
    with torch.no_grad():
        expected = model.eval()(pixel_values)
    assert torch.allclose(features, expected, atol=1e-6) and not features.requires_grad
    assert torch.equal(extracted_labels, labels)
    with pytest.raises(ValueError, match=r"\(2, 4, 6, 6\).*\[B, D\]"):
        extract_features(lambda x: model.body(x), [(pixel_values[:2], labels[:2])])


def test_evaluate_backbone_reads_a_timm_model_at_its_pre_logits():
    model = timm.create_model("resnet8_cifar", num_classes=10)
    pixel_values = torch.randn(24, 3, 32, 32)
    labels = torch.arange(24) % 3
    report = evaluate_backbone(
        model, TensorDataset(pixel_values[:18], labels[:18]), TensorDataset(pixel_values[18:], labels[18:]), k=5
    )
    assert report["feature_dim"] == model.num_features and report["num_train"] == 18 and report["num_test"] == 6
    train = extract_features(PreLogits(model), [(pixel_values[:18], labels[:18])])
    test = extract_features(PreLogits(model), [(pixel_values[18:], labels[18:])])
    assert report["knn"] == {"top1": knn_top1(*train, *test, k=5), "k": 5, "temperature": 0.07}
    assert report["linear"] == linear_probe_top1(*train, *test)
    with pytest.raises(ValueError, match="'probe'"):
        evaluate_backbone(model, TensorDataset(pixel_values, labels), TensorDataset(pixel_values, labels), ["probe"])
