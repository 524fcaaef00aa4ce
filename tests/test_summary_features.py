"""Summary features and the per-teacher distance choice: FEED's Eq. 2 unchanged, cosine and smooth-L1 by value."""

import pytest
import timm
import torch
from torch import nn

from feed_hf.method.losses import feed_distance
from feed_hf.method.summary_features import (
    SummaryConnector,
    feature_distance,
    pooled_summary,
    summary_loss,
    timm_summary,
)


@pytest.mark.parametrize("shape", [(3, 8, 4, 4), (3, 16)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_feed_l1_is_exactly_the_existing_eq2_distance(shape, reduction):
    torch.manual_seed(0)
    student, teacher = torch.randn(shape), torch.randn(shape) * 7 + 1
    expected = feed_distance(student, teacher, p=1, reduction=reduction)
    assert torch.equal(feature_distance(student, teacher, "feed_l1", reduction), expected)
    assert torch.equal(feature_distance(student, teacher, reduction=reduction), expected)  # the default


def test_cosine_distance_known_values_for_summaries_and_maps():
    student = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])  # cos = 1, 0, -1 → distances 0, 1, 2
    assert feature_distance(student, teacher, "cosine").item() == pytest.approx(1.0)
    # A 2-channel map with 2 positions: position 0 aligned (0), position 1 orthogonal (1) → mean 0.5, sum 1.
    student_map = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])  # [1, 2, 1, 2]
    teacher_map = torch.tensor([[[[5.0, 0.0]], [[0.0, 2.0]]]])
    assert feature_distance(student_map, teacher_map, "cosine").item() == pytest.approx(0.5)
    assert feature_distance(student_map, teacher_map, "cosine", reduction="sum").item() == pytest.approx(1.0)


def test_smooth_l1_known_values():
    student = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.5, -2.0, 0.0, 3.0]])  # 0.5·0.25, 2 − 0.5, 0, 3 − 0.5 → 0.125, 1.5, 0, 2.5
    assert feature_distance(student, teacher, "smooth_l1", reduction="sum").item() == pytest.approx(4.125)
    assert feature_distance(student, teacher, "smooth_l1").item() == pytest.approx(4.125 / 4)
    beta_two = 0.5 * 0.25 / 2 + (2 - 1) + 0 + (3 - 1)  # beta = 2: 0.5·x²/β below β, |x| − β/2 above
    assert feature_distance(student, teacher, "smooth_l1", "sum", smooth_l1_beta=2.0).item() == pytest.approx(beta_two)


def test_unknown_distance_and_mismatched_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match="'l2'.*feed_l1"):
        feature_distance(torch.zeros(2, 3), torch.zeros(2, 3), "l2")
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        feature_distance(torch.zeros(2, 3), torch.zeros(2, 4), "cosine")


def test_summary_connector_is_am_radio_head_and_gradients_reach_it_only():
    torch.manual_seed(0)
    connector = SummaryConnector(8, 5, hidden_features=6)
    assert [type(layer) for layer in connector] == [nn.Linear, nn.LayerNorm, nn.GELU, nn.Linear]
    assert [type(layer) for layer in SummaryConnector(8, 5, norm="none")] == [nn.Linear, nn.GELU, nn.Linear]
    teacher = nn.Linear(4, 5)
    student_map = torch.randn(3, 8, 2, 2, requires_grad=True)
    with torch.no_grad():
        teacher_summary = teacher(torch.randn(3, 4))
    for distance in ("feed_l1", "cosine", "smooth_l1"):
        connector.zero_grad()
        total, per_teacher = summary_loss(
            [connector(pooled_summary(student_map))], [teacher_summary], [0.5], [distance]
        )
        assert total.item() == pytest.approx(0.5 * per_teacher[0].item())
        total.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in connector.parameters())
        assert all(p.grad is None for p in teacher.parameters())
        assert not teacher_summary.requires_grad


def test_pooled_and_timm_summaries():
    feature_map = torch.arange(8.0).view(1, 2, 2, 2)
    assert torch.equal(pooled_summary(feature_map), torch.tensor([[1.5, 5.5]]))
    model = timm.create_model("resnet8_cifar", num_classes=10).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, 32, 32))
        summary = timm_summary(model, features)
        assert summary.shape == (2, features.shape[1])
        assert torch.allclose(summary, features.mean(dim=(2, 3)), atol=1e-6)  # a CNN's pre-logits: the pooled map
        assert torch.allclose(model.forward_head(features), model.get_classifier()(summary), atol=1e-6)
    no_pool = timm.create_model("resnet8_cifar", num_classes=0, global_pool="")
    with pytest.raises(ValueError, match="global_pool"):
        timm_summary(no_pool, no_pool.forward_features(torch.randn(1, 3, 32, 32)))
