"""A compressed code for one teacher's maps: channel rotation + truncation, then 8-bit per-channel quantisation.

Issue 22 item 1, the math only (no store wiring). Per teacher, fitted once on a sample of its maps:

1. **Rotation and truncation.** Centre each channel vector x `[C]` (one per spatial position) on the sample mean μ
   and rotate it onto the PCA axes; keep the K leading components, K the smallest count whose variance holds at
   least `energy_share` of the total (Σ_{k<K} λ_k ≥ share·Σ λ). Coefficients z = R·(x − μ), R `[K, C]` with
   orthonormal rows; decoding is x̂ = μ + Rᵀ·ẑ. The squared error this adds, per position and on average over the
   sample, is exactly the dropped variance Σ_{k≥K} λ_k.
   With `rotation="phi_s"` the K kept coefficients are also rotated by the PHI-S rotation of
   `feed_hf/method/isotropic_rotation.py` (a normalised Hadamard matrix of order K, or the equal-diagonal rotation), so
   every stored channel has the same variance and quantisation error is spread evenly instead of concentrated in
   the first components. (The full-space PHI-S rotation of `feed_hf/method/balancing.py` mixes every component into
   every channel, so truncation must happen before it; balancing, when on, is applied to the decoded map.)
2. **Quantisation per kept channel**, calibrated on the sample (a second pass: min/max of each coefficient):
   - `int8`: asymmetric affine 8-bit, q = clamp(round(z/scale) + zero_point, 0, 255) stored as uint8 (torch's
     quint8 convention; the teacher store's safetensors dtype table already carries U8), ẑ = (q − zero_point)·scale
     with scale = (max − min)/255. For a value inside the calibrated range |ẑ − z| ≤ scale/2; values outside it
     saturate.
   - `float8_e4m3fn`: symmetric, scale = max|z|/448 (e4m3's largest finite value), about 2⁻⁴ relative error.
3. **Decoding** `[B, K, H, W]` codes → `[B, C, H, W]` fp32 on the codes' device (`decode_maps`).

Bytes per map: K·H·W (one byte per code) against C·H·W·2 for today's bf16 store, a ratio of 2C/K; the codec's own
parameters (μ, R, scale, zero point: (C + 1)·K + C floats) are stored once per teacher, not per map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch

from ..method.feature_moments import ChannelMoments, channel_vectors
from ..method.isotropic_rotation import isotropic_rotation
from .tensor_records import checked_facts, load_tensor_records, save_tensor_records

__all__ = [
    "CodeDtype",
    "CodecRotation",
    "FeatureCodec",
    "decode_maps",
    "encode_maps",
    "fit_codec_rotation",
    "fit_feature_codec",
    "kept_components",
    "load_codecs",
    "project_maps",
    "reconstruct_maps",
    "save_codecs",
]

CodeDtype = Literal["int8", "float8_e4m3fn"]
CodecRotation = Literal["pca", "phi_s"]
_FORMAT = "feed_hf.feature_codec/1"  # a file format name, kept when the module moved (issue 20)
_FP8_MAX = 448.0  # torch.finfo(torch.float8_e4m3fn).max
_STORED_DTYPES = {"int8": torch.uint8, "float8_e4m3fn": torch.float8_e4m3fn}


@dataclass(frozen=True)
class FeatureCodec:
    """One teacher's code: mean `[C]`, rotation `[K, C]`, per-kept-channel scale and zero point `[K]` (float32)."""

    mean: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    code_dtype: CodeDtype
    info: dict[str, str] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return self.rotation.shape[1]

    @property
    def kept_channels(self) -> int:
        return self.rotation.shape[0]

    @property
    def stored_dtype(self) -> torch.dtype:
        return _STORED_DTYPES[self.code_dtype]

    def bytes_per_map(self, height: int, width: int) -> int:
        """Bytes one encoded `[C, H, W]` map takes: K·H·W codes of one byte."""
        return self.kept_channels * height * width * self.stored_dtype.itemsize

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "rotation": self.rotation, "scale": self.scale, "zero_point": self.zero_point}

    def metadata(self) -> dict[str, str]:
        return {"format": _FORMAT, "code_dtype": self.code_dtype, **self.info}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> FeatureCodec:
        info = checked_facts(metadata, _FORMAT, "code_dtype", get_args(CodeDtype))
        names = ("mean", "rotation", "scale", "zero_point")
        return cls(*(tensors[name] for name in names), metadata["code_dtype"], info)


def kept_components(eigenvalues: torch.Tensor, energy_share: float) -> int:
    """The smallest K whose K leading eigenvalues (descending `[C]`) hold at least `energy_share` of their sum."""
    if not 0.0 < energy_share <= 1.0:
        raise ValueError(f"energy_share={energy_share}: expected a share in (0, 1], e.g. 0.99")
    cumulative = eigenvalues.double().cumsum(0)
    if float(cumulative[-1]) <= 0.0:
        return 1  # every channel constant: the mean alone reconstructs the sample; keep one (zero-variance) code
    shortfall = cumulative < energy_share * cumulative[-1] * (1 - 1e-12)  # float slack so share 1.0 is reachable
    return min(int(shortfall.sum()) + 1, eigenvalues.numel())


def fit_codec_rotation(
    moments: ChannelMoments, energy_share: float = 0.99, rotation: CodecRotation = "pca"
) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    """(mean `[C]`, rotation `[K, C]` with orthonormal rows, facts) for the sample whose moments are given."""
    if rotation not in get_args(CodecRotation):
        raise ValueError(f"codec rotation {rotation!r}: expected one of {get_args(CodecRotation)}")
    eigenvalues, eigenvectors = moments.principal_axes()
    kept = kept_components(eigenvalues, energy_share)
    matrix = eigenvectors[:, :kept].T
    facts = {"rotation": "pca", "energy_share": repr(energy_share), "sample_vectors": str(moments.count)}
    if rotation == "phi_s":
        isotropic, kind = isotropic_rotation(eigenvalues[:kept])
        matrix, facts["rotation"] = isotropic @ matrix, f"phi_s:{kind}"
    total = float(eigenvalues.sum())
    facts["kept_energy"] = repr(float(eigenvalues[:kept].sum()) / total if total > 0 else 1.0)
    return moments.mean.float(), matrix.float(), facts


def project_maps(maps: torch.Tensor, mean: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """z = R·(x − μ): maps `[B, C, H, W]` → coefficients `[B, K, H, W]` (fp32), R `[K, C]`, μ `[C]`."""
    centred = maps.float() - mean.to(maps.device, torch.float32).view(1, -1, 1, 1)
    return torch.einsum("kc,bchw->bkhw", rotation.to(centred), centred)


def reconstruct_maps(coefficients: torch.Tensor, mean: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x̂ = μ + Rᵀ·z: coefficients `[B, K, H, W]` → maps `[B, C, H, W]` (fp32, on the coefficients' device)."""
    coefficients = coefficients.float()
    maps = torch.einsum("kc,bkhw->bchw", rotation.to(coefficients), coefficients)
    return maps + mean.to(coefficients).view(1, -1, 1, 1)


def _check_maps(maps: torch.Tensor, num_channels: int) -> None:
    if maps.ndim != 4 or maps.shape[1] != num_channels:
        expected = f"[B, {num_channels}, H, W]" if maps.ndim == 4 else "[B, C, H, W]"
        raise ValueError(f"maps of shape {tuple(maps.shape)}: expected teacher maps {expected} (one teacher per codec)")


def _quantisation_grid(low: torch.Tensor, high: torch.Tensor, code_dtype: CodeDtype) -> tuple[torch.Tensor, ...]:
    """(scale, zero_point) `[K]` covering [low, high] per channel (zero_point 0 for fp8)."""
    tiny = torch.finfo(torch.float32).tiny
    if code_dtype == "float8_e4m3fn":
        scale = (torch.maximum(low.abs(), high.abs()) / _FP8_MAX).clamp_min(tiny)
        return scale.float(), torch.zeros_like(scale).float()
    scale = ((high - low) / 255.0).clamp_min(tiny)
    zero_point = torch.round(-low / scale).clamp(0, 255)
    return scale.float(), zero_point.float()


def _coefficient_ranges(
    batches: Iterable[torch.Tensor], mean: torch.Tensor, rotation: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    low = torch.full((rotation.shape[0],), math.inf, dtype=torch.float64)
    high = torch.full_like(low, -math.inf)
    for maps in batches:
        _check_maps(maps, rotation.shape[1])
        vectors = channel_vectors(project_maps(maps, mean, rotation)).double().cpu()
        low, high = torch.minimum(low, vectors.min(0).values), torch.maximum(high, vectors.max(0).values)
    if not torch.isfinite(low).all():
        raise ValueError("the calibration pass saw no maps; give the same sample the rotation was fitted on")
    return low, high


def fit_feature_codec(
    sample: Callable[[], Iterable[torch.Tensor]] | list[torch.Tensor],
    energy_share: float = 0.99,
    rotation: CodecRotation = "pca",
    code_dtype: CodeDtype = "int8",
) -> FeatureCodec:
    """Fit one teacher's codec on a sample of its maps `[B, C, H, W]`, in two streaming passes.

    sample: a list of batches, or a callable returning a fresh iterable of batches each time (a data loader's
    factory); pass 1 accumulates the moments (rotation, truncation), pass 2 the coefficient ranges (quantisation).
    """
    if code_dtype not in get_args(CodeDtype):
        raise ValueError(f"code_dtype {code_dtype!r}: expected one of {get_args(CodeDtype)}")
    batches = sample if callable(sample) else (lambda: iter(sample))
    moments: ChannelMoments | None = None
    for maps in batches():
        if moments is None:  # the first batch fixes C
            moments = ChannelMoments(maps.shape[1] if maps.ndim == 4 else 1)
        _check_maps(maps, moments.num_channels)
        moments.update(maps)
    if moments is None:
        raise ValueError("no maps to fit the codec on; give at least one batch of teacher maps")
    mean, matrix, facts = fit_codec_rotation(moments, energy_share, rotation)
    scale, zero_point = _quantisation_grid(*_coefficient_ranges(batches(), mean, matrix), code_dtype)
    return FeatureCodec(mean, matrix, scale, zero_point, code_dtype, facts)


def encode_maps(maps: torch.Tensor, codec: FeatureCodec) -> torch.Tensor:
    """maps `[B, C, H, W]` → codes `[B, K, H, W]` (uint8 for int8, float8_e4m3fn for fp8) on the maps' device."""
    _check_maps(maps, codec.num_channels)
    coefficients = project_maps(maps, codec.mean, codec.rotation)
    scale = codec.scale.to(coefficients).view(1, -1, 1, 1)
    if codec.code_dtype == "float8_e4m3fn":
        return (coefficients / scale).clamp(-_FP8_MAX, _FP8_MAX).to(torch.float8_e4m3fn)
    zero_point = codec.zero_point.to(coefficients).view(1, -1, 1, 1)
    return (torch.round(coefficients / scale) + zero_point).clamp(0, 255).to(torch.uint8)


def decode_maps(codes: torch.Tensor, codec: FeatureCodec) -> torch.Tensor:
    """codes `[B, K, H, W]` → maps `[B, C, H, W]` fp32 on the codes' device (the teacher map the loss sees)."""
    if codes.ndim != 4 or codes.shape[1] != codec.kept_channels or codes.dtype != codec.stored_dtype:
        raise ValueError(
            f"codes of shape {tuple(codes.shape)} and dtype {codes.dtype}: this codec decodes "
            f"[B, {codec.kept_channels}, H, W] {codec.stored_dtype} codes (were they encoded with another codec?)"
        )
    scale = codec.scale.to(codes.device).view(1, -1, 1, 1)
    zero_point = codec.zero_point.to(codes.device).view(1, -1, 1, 1)
    coefficients = (codes.float() - zero_point) * scale
    return reconstruct_maps(coefficients, codec.mean, codec.rotation)


def save_codecs(path: str | Path, codecs: list[FeatureCodec]) -> None:
    """Write one codec per teacher, in teacher order, to a safetensors file (tensors + metadata, no pickle)."""
    save_tensor_records(path, [(codec.tensors(), codec.metadata()) for codec in codecs], _FORMAT)


def load_codecs(path: str | Path) -> list[FeatureCodec]:
    """The codecs `save_codecs` wrote, in teacher order."""
    return [FeatureCodec.from_tensors(tensors, facts) for tensors, facts in load_tensor_records(path, _FORMAT)]
