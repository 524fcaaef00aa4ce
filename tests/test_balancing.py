"""Teachers on a common scale: streaming moments, Hadamard/Givens rotations, standardize and PHI-S, their records."""

import pytest
import torch

from feed_hf.method.balancing import (
    FeatureBalance,
    balance_features,
    fit_balance,
    fit_balance_from_batches,
    load_balances,
    save_balances,
    unbalance_features,
)
from feed_hf.method.feature_moments import ChannelMoments, channel_vectors
from feed_hf.method.isotropic_rotation import equal_diagonal_rotation, hadamard_matrix, isotropic_rotation


def _teacher_maps(channels: int, seed: int = 0, batches: int = 3) -> list[torch.Tensor]:
    """Correlated, skewed maps whose channels differ in scale by 10³ (a foundation teacher's spread)."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=generator) * torch.logspace(0, 3, channels)
    return [
        torch.einsum("dc,bchw->bdhw", mixing, torch.randn(6, channels, 3, 3, generator=generator)).relu() + 4.0
        for _ in range(batches)
    ]


def test_streaming_moments_equal_the_moments_of_all_maps_at_once():
    maps = _teacher_maps(5)
    moments = ChannelMoments(5)
    for batch in maps:
        moments.update(batch)
    vectors = channel_vectors(torch.cat(maps)).double()
    assert moments.count == vectors.shape[0] == 3 * 6 * 9
    assert torch.allclose(moments.mean, vectors.mean(0), rtol=1e-12)
    assert torch.allclose(moments.covariance(), torch.cov(vectors.T, correction=0), rtol=1e-10)
    with pytest.raises(ValueError, match="4 channels.*5 channels"):
        moments.update(torch.zeros(1, 4, 2, 2))


@pytest.mark.parametrize("order", [1, 2, 4, 8, 12, 20, 24, 384, 1152])
def test_hadamard_matrices_are_orthogonal_with_unit_entries(order):
    matrix, kind = hadamard_matrix(order)
    assert kind == ("sylvester" if order & (order - 1) == 0 else "sylvester_paley")
    assert torch.equal(matrix.abs(), torch.ones(order, order))
    assert torch.equal(matrix @ matrix.T, order * torch.eye(order, dtype=torch.float64))


@pytest.mark.parametrize("order", [3, 7, 28, 36])
def test_orders_without_a_built_hadamard_matrix_use_the_equal_diagonal_rotation(order):
    assert hadamard_matrix(order) is None
    eigenvalues = torch.linspace(10.0, 0.0, order, dtype=torch.float64) ** 3  # one zero eigenvalue (low rank)
    rotation, kind = isotropic_rotation(eigenvalues)
    assert kind == "givens"
    assert torch.allclose(rotation @ rotation.T, torch.eye(order, dtype=torch.float64), atol=1e-12)
    diagonal = (rotation @ torch.diag(eigenvalues) @ rotation.T).diagonal()
    assert torch.allclose(diagonal, eigenvalues.mean().expand(order), rtol=1e-10)
    assert torch.equal(equal_diagonal_rotation(torch.full((order,), 2.0)), torch.eye(order, dtype=torch.float64))


def test_standardize_gives_every_channel_mean_zero_std_one_and_inverts():
    maps = _teacher_maps(6)
    balance = fit_balance_from_batches(maps, "standardize")
    balanced = torch.cat([balance_features(batch.double(), balance) for batch in maps])
    vectors = channel_vectors(balanced)
    assert torch.allclose(vectors.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(vectors.std(0, correction=0), torch.ones(6, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(unbalance_features(balanced, balance), torch.cat(maps).double(), rtol=1e-5)


def test_standardize_leaves_a_constant_channel_centred_not_amplified():
    maps = _teacher_maps(4)
    for batch in maps:
        batch[:, 2] = 3.0
    balance = fit_balance_from_batches(maps, "standardize")
    assert balance.info["constant_channels"] == "1" and balance.scale[2] == 1.0
    assert torch.all(balance_features(maps[0], balance)[:, 2] == 0)


@pytest.mark.parametrize("channels", [8, 12, 7])  # Sylvester, Sylvester ⊗ Paley, Givens
def test_phi_s_equalises_the_variances_with_one_scale_and_inverts(channels):
    maps = _teacher_maps(channels, seed=channels)
    balance = fit_balance_from_batches(maps, "phi_s")
    sample = torch.cat(maps).double()
    balanced = balance_features(sample, balance)
    covariance = torch.cov(channel_vectors(balanced).T, correction=0)
    assert torch.allclose(covariance.diagonal(), torch.ones(channels, dtype=torch.float64), atol=1e-4)
    assert covariance.sub(torch.diag(covariance.diagonal())).abs().max() > 0.05  # isotropic scaling, not whitening
    assert torch.all(balance.scale == balance.scale[0])  # one scalar α for every dimension
    rotation = balance.rotation.double()
    assert torch.allclose(rotation @ rotation.T, torch.eye(channels, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(unbalance_features(balanced, balance), sample, rtol=1e-5, atol=1e-3)
    summaries = sample.mean(dim=(2, 3))  # summaries [B, D] go through the same transform
    assert torch.allclose(unbalance_features(balance_features(summaries, balance), balance), summaries, rtol=1e-5)


def test_phi_s_on_a_low_rank_teacher_stays_finite_where_whitening_would_divide_by_zero():
    basis = torch.randn(8, 2)  # 8 channels, rank 2: six eigenvalues are zero
    maps = [torch.einsum("cr,brhw->bchw", basis, torch.randn(5, 2, 3, 3)) for _ in range(2)]
    balance = fit_balance_from_batches(maps, "phi_s")
    balanced = balance_features(torch.cat(maps), balance)
    assert torch.isfinite(balanced).all()
    variance = channel_vectors(balanced).var(0, correction=0)
    assert torch.allclose(variance, torch.ones(8), atol=1e-4)


def test_none_is_feed_as_published_and_unknown_methods_are_refused():
    maps = _teacher_maps(3)
    balance = fit_balance_from_batches(maps, "none")
    assert balance_features(maps[0], balance) is maps[0]
    with pytest.raises(ValueError, match="'whiten'.*phi_s"):
        fit_balance(ChannelMoments(3).update(maps[0]), "whiten")
    with pytest.raises(ValueError, match="3 channels"):
        balance_features(torch.zeros(1, 4, 2, 2), balance)


def test_balances_are_recorded_and_reload_to_the_same_transform(tmp_path):
    settings = [(8, "phi_s"), (5, "standardize"), (3, "none"), (7, "phi_s")]
    fitted = [fit_balance_from_batches(_teacher_maps(channels), method) for channels, method in settings]
    save_balances(tmp_path / "balance.safetensors", fitted)
    reloaded = load_balances(tmp_path / "balance.safetensors")
    assert [balance.method for balance in reloaded] == ["phi_s", "standardize", "none", "phi_s"]
    assert reloaded[3].info["rotation"] == "givens" and reloaded[0].info["rotation"] == "sylvester"
    for original, loaded in zip(fitted, reloaded, strict=True):
        maps = _teacher_maps(original.num_channels, seed=9)[0]
        assert torch.equal(balance_features(maps, original), balance_features(maps, loaded))
    with pytest.raises(ValueError, match="format"):
        FeatureBalance.from_tensors(fitted[0].tensors(), {"method": "phi_s"})
