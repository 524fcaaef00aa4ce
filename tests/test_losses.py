import pytest
import torch

from feed_hf.method.losses import ensemble_kd_loss, feed_distance, feed_loss, normalize_feature_map


def _maps(seed=0, shape=(4, 8, 3, 3)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_zero_for_identical_maps(p, reduction):
    student, _ = _maps()
    assert feed_distance(student, student.clone(), p=p, reduction=reduction).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_invariant_to_positive_scaling_of_either_map(reduction):
    student, teacher = _maps()
    reference = feed_distance(student, teacher, reduction=reduction)
    torch.testing.assert_close(feed_distance(student * 7.5, teacher, reduction=reduction), reference)
    torch.testing.assert_close(feed_distance(student, teacher * 0.01, reduction=reduction), reference)


def test_equals_hand_computation_of_eq2():
    student = torch.tensor([[[[3.0, 4.0]]], [[[1.0, 0.0]]]])  # [B=2, C=1, H=1, W=2]
    teacher = torch.tensor([[[[0.0, 2.0]]], [[[0.0, 5.0]]]])
    # sample 0: (0.6, 0.8) vs (0, 1) → |0.6| + |−0.2| = 0.8; sample 1: (1, 0) vs (0, 1) → 2.0
    assert feed_distance(student, teacher, reduction="sum").item() == pytest.approx((0.8 + 2.0) / 2)
    assert feed_distance(student, teacher, reduction="mean").item() == pytest.approx((0.4 + 1.0) / 2)
    # p = 2: sample 0: 0.36 + 0.04 = 0.4; sample 1: 1 + 1 = 2
    assert feed_distance(student, teacher, p=2, reduction="sum").item() == pytest.approx((0.4 + 2.0) / 2)


def test_sum_is_mean_times_chw():
    student, teacher = _maps(shape=(2, 5, 4, 4))
    mean = feed_distance(student, teacher, reduction="mean")
    torch.testing.assert_close(feed_distance(student, teacher, reduction="sum"), mean * 5 * 4 * 4)


def test_normalisation_is_per_sample_fp32_and_safe_for_zero_maps():
    maps = torch.zeros(2, 3, 2, 2, dtype=torch.bfloat16)
    maps[1] = 2.0
    normalised = normalize_feature_map(maps)
    assert normalised.dtype == torch.float32
    assert torch.isfinite(normalised).all()
    torch.testing.assert_close(normalised[1].norm(), torch.tensor(1.0))
    assert feed_distance(torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)).isfinite()


def test_gradients_reach_student_and_connector_only():
    student_map = torch.randn(2, 4, 3, 3, requires_grad=True)
    connector = torch.nn.Conv2d(4, 6, 1)
    teacher_map = torch.randn(2, 6, 3, 3)  # produced under no_grad by a frozen teacher
    feed_distance(connector(student_map), teacher_map).backward()
    assert student_map.grad is not None and student_map.grad.abs().sum() > 0
    assert connector.weight.grad is not None and connector.weight.grad.abs().sum() > 0
    assert teacher_map.grad is None and not teacher_map.requires_grad


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4, 3, 3\).*\(2, 6, 3, 3\)"):
        feed_distance(torch.randn(2, 4, 3, 3), torch.randn(2, 6, 3, 3))


def test_feed_loss_weights_and_sums_teachers():
    s0, t0 = _maps(1)
    s1, t1 = _maps(2)
    total, per_teacher = feed_loss([s0, s1], [t0, t1], betas=[2.0, 3.0])
    torch.testing.assert_close(per_teacher[0], feed_distance(s0, t0))
    torch.testing.assert_close(total, 2.0 * per_teacher[0] + 3.0 * per_teacher[1])


def test_kd_is_zero_when_student_matches_the_teacher_average():
    a, b = torch.randn(4, 10), torch.randn(4, 10)
    assert ensemble_kd_loss((a + b) / 2, [a, b], temperature=4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert ensemble_kd_loss(a, [b], temperature=4.0).item() > 0
