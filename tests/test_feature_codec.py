"""The compressed teacher-map code (issue 22 item 1): truncation error = dropped variance, 8-bit error within its
bound, bytes per map, records that reload to the same decode."""

import pytest
import torch

from feed_hf.method.balancing import load_balances
from feed_hf.method.feature_moments import ChannelMoments, channel_vectors
from feed_hf.method.losses import feed_distance
from feed_hf.store.codec import (
    FeatureCodec,
    decode_maps,
    encode_maps,
    fit_feature_codec,
    kept_components,
    load_codecs,
    project_maps,
    reconstruct_maps,
    save_codecs,
)


def _low_rank_maps(channels: int = 32, rank: int = 6, seed: int = 0) -> list[torch.Tensor]:
    """Maps whose channel vectors lie exactly in a `rank`-dimensional affine subspace, components of unequal scale."""
    generator = torch.Generator().manual_seed(seed)
    basis = torch.randn(channels, rank, generator=generator) * torch.logspace(1, -1, rank)
    offset = torch.randn(channels, generator=generator).view(1, -1, 1, 1)
    return [
        torch.einsum("cr,brhw->bchw", basis, torch.randn(8, rank, 4, 4, generator=generator)).double() + offset
        for _ in range(3)
    ]


def test_kept_components_is_the_smallest_count_reaching_the_energy_share():
    eigenvalues = torch.tensor([5.0, 3.0, 1.5, 0.5])  # cumulative shares 0.5, 0.8, 0.95, 1.0
    shares = (0.5, 0.51, 0.8, 0.9, 0.95, 0.99, 1.0)
    assert [kept_components(eigenvalues, share) for share in shares] == [1, 2, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match="energy_share=1.5"):
        kept_components(eigenvalues, 1.5)


def test_truncation_error_is_exactly_the_dropped_variance():
    generator = torch.Generator().manual_seed(1)
    maps = torch.randn(16, 10, 4, 4, generator=generator) * torch.logspace(1, -1, 10).view(1, -1, 1, 1)
    moments = ChannelMoments(10).update(maps)
    eigenvalues, eigenvectors = moments.principal_axes()
    kept = kept_components(eigenvalues, 0.9)
    rotation = eigenvectors[:, :kept].T
    reconstructed = reconstruct_maps(project_maps(maps, moments.mean, rotation), moments.mean, rotation)
    squared_error = channel_vectors(reconstructed.double() - maps.double()).pow(2).sum(1).mean()
    assert 1 < kept < 10
    assert squared_error.item() == pytest.approx(eigenvalues[kept:].sum().item(), rel=1e-4)


def test_low_rank_maps_keep_their_rank_and_int8_error_stays_within_half_a_step_per_code():
    maps = _low_rank_maps()
    codec = fit_feature_codec(maps, energy_share=0.999999)
    assert codec.kept_channels == 6 and codec.stored_dtype == torch.uint8
    sample = torch.cat(maps)
    codes = encode_maps(sample, codec)
    steps = codec.scale.view(1, -1, 1, 1)
    dequantised = (codes.float() - codec.zero_point.view(1, -1, 1, 1)) * steps
    coefficients = project_maps(sample, codec.mean, codec.rotation)
    assert torch.all((dequantised - coefficients).abs() <= steps / 2 * (1 + 1e-4))  # every code within half a step
    decoded = decode_maps(codes, codec)
    # x̂ − x = Rᵀ(ẑ − z) with |ẑ_k − z_k| ≤ scale_k/2 inside the calibrated range (this is the calibration sample).
    bound = (codec.rotation.abs().double().T @ (codec.scale.double() / 2)).view(1, -1, 1, 1)
    assert torch.all((decoded.double() - sample).abs() <= bound + 1e-4)
    assert decoded.dtype == torch.float32 and decoded.shape == sample.shape
    assert codec.bytes_per_map(4, 4) == 6 * 16 and 32 * 16 * 2 / codec.bytes_per_map(4, 4) == pytest.approx(32 / 3)


def test_fp8_codes_stay_within_e4m3_relative_precision():
    maps = _low_rank_maps(seed=2)
    codec = fit_feature_codec(lambda: iter(maps), energy_share=0.999999, code_dtype="float8_e4m3fn")
    sample = torch.cat(maps)
    codes = encode_maps(sample, codec)
    assert codes.dtype == torch.float8_e4m3fn
    coefficients = project_maps(sample, codec.mean, codec.rotation).double()
    # e4m3: 3 mantissa bits (relative rounding ≤ 2⁻⁴), subnormal step 2⁻⁹ of the scale.
    step = coefficients.abs() / 16 + codec.scale.double().view(1, -1, 1, 1) * 2.0**-10
    bound = torch.einsum("kc,bkhw->bchw", codec.rotation.abs().double(), step)
    assert torch.all((decode_maps(codes, codec).double() - sample).abs() <= bound + 1e-4)


def test_phi_s_rotation_gives_every_stored_channel_the_same_variance():
    maps = _low_rank_maps(seed=3)
    pca = fit_feature_codec(maps, 0.999999, rotation="pca")
    phi_s = fit_feature_codec(maps, 0.999999, rotation="phi_s")
    assert phi_s.info["rotation"] == "phi_s:givens"  # 6 kept components: no Hadamard matrix of order 6
    rotation = phi_s.rotation.double()
    assert torch.allclose(rotation @ rotation.T, torch.eye(6, dtype=torch.float64), atol=1e-5)
    variances = channel_vectors(project_maps(torch.cat(maps), phi_s.mean, phi_s.rotation)).var(0, correction=0)
    assert torch.allclose(variances, variances.mean().expand(6), rtol=1e-3)
    pca_variances = channel_vectors(project_maps(torch.cat(maps), pca.mean, pca.rotation)).var(0, correction=0)
    assert pca_variances.max() / pca_variances.min() > 10  # what the rotation evens out
    sample = torch.cat(maps)
    assert feed_distance(decode_maps(encode_maps(sample, phi_s), phi_s), sample).item() < 1e-2


def test_codecs_are_recorded_and_reload_to_the_same_decode(tmp_path):
    maps = _low_rank_maps(seed=4)
    codecs = [fit_feature_codec(maps, 0.99), fit_feature_codec(maps, 0.9, "phi_s", "float8_e4m3fn")]
    save_codecs(tmp_path / "codec.safetensors", codecs)
    reloaded = load_codecs(tmp_path / "codec.safetensors")
    for original, loaded in zip(codecs, reloaded, strict=True):
        codes = encode_maps(maps[0], original)
        assert torch.equal(decode_maps(codes, original), decode_maps(codes, loaded))
        assert loaded.info == original.info and loaded.code_dtype == original.code_dtype
    with pytest.raises(ValueError, match="feature_codec.*feature_balance"):
        load_balances(tmp_path / "codec.safetensors")
    with pytest.raises(ValueError, match="code_dtype .int4."):
        FeatureCodec.from_tensors(codecs[0].tensors(), {**codecs[0].metadata(), "code_dtype": "int4"})


def test_wrong_maps_and_codes_are_refused_by_shape_and_dtype():
    codec = fit_feature_codec(_low_rank_maps(seed=5), 0.99)
    with pytest.raises(ValueError, match=r"\[B, 32, H, W\]"):
        encode_maps(torch.zeros(2, 31, 4, 4), codec)
    with pytest.raises(ValueError, match="uint8"):
        decode_maps(torch.zeros(2, codec.kept_channels, 4, 4), codec)
    with pytest.raises(ValueError, match=r"\(4, 32\).*\[B, C, H, W\]"):
        fit_feature_codec([torch.zeros(4, 32)], 0.99)
    with pytest.raises(ValueError, match="code_dtype 'int4'"):
        fit_feature_codec(_low_rank_maps(seed=5), 0.99, code_dtype="int4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_decode_runs_on_the_codes_device():
    maps = _low_rank_maps(seed=6)
    codec = fit_feature_codec(maps, 0.99)
    codes = encode_maps(maps[0], codec)
    on_device = decode_maps(codes.cuda(), codec)
    assert on_device.device.type == "cuda"
    assert torch.allclose(on_device.cpu(), decode_maps(codes, codec), atol=1e-4)
