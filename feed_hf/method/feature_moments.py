"""Per-channel mean and channel covariance of feature maps, accumulated batch by batch (one pass, bounded memory).

A teacher's map `[B, C, H, W]` is read as B·H·W samples of a C-dimensional vector (one per spatial position), a
summary `[B, D]` as B samples of a D-dimensional vector. `ChannelMoments.update` merges each batch into running
float64 moments with Chan, Golub & LeVeque's pairwise update (numerically stable, order-independent up to
rounding), so the statistics can be gathered over a data loader or a teacher store without holding the maps.
Variances are population variances (divided by the count N, not N − 1): "std 1 on the sample" means
`x.std(unbiased=False) == 1`.
"""

from __future__ import annotations

import torch

__all__ = ["ChannelMoments", "channel_vectors"]


def channel_vectors(features: torch.Tensor) -> torch.Tensor:
    """`[B, C, H, W]` → `[B·H·W, C]` (one row per position), `[B, D]` → `[B, D]`; anything else is refused."""
    if features.ndim == 4:
        return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    if features.ndim == 2:
        return features
    raise ValueError(
        f"features of shape {tuple(features.shape)}: expected a map [B, C, H, W] or a summary [B, D]; pool or "
        "reshape the teacher output to one of them first"
    )


class ChannelMoments:
    """Running count, mean `[C]` and centred second moment `[C, C]` (float64) of the channel vectors seen so far."""

    def __init__(self, num_channels: int) -> None:
        if num_channels < 1:
            raise ValueError(f"num_channels={num_channels}: expected at least 1 channel")
        self.num_channels = num_channels
        self.count = 0
        self.mean = torch.zeros(num_channels, dtype=torch.float64)
        self.centred_sum = torch.zeros(num_channels, num_channels, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> ChannelMoments:
        """Merge one batch (`[B, C, H, W]` or `[B, D]`, any float dtype and device) into the moments; returns self."""
        vectors = channel_vectors(features.detach()).to(device="cpu", dtype=torch.float64)
        if vectors.shape[1] != self.num_channels:
            raise ValueError(
                f"a batch with {vectors.shape[1]} channels was given to moments of {self.num_channels} channels; "
                "accumulate each teacher's maps in its own ChannelMoments"
            )
        if not torch.isfinite(vectors).all():
            raise ValueError("features contain NaN or inf; the statistics would be meaningless (check the teacher)")
        batch_count = vectors.shape[0]
        if batch_count == 0:
            return self
        batch_mean = vectors.mean(dim=0)
        centred = vectors - batch_mean
        batch_centred_sum = centred.T @ centred
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.centred_sum += batch_centred_sum + torch.outer(delta, delta) * (self.count * batch_count / total)
        self.mean += delta * (batch_count / total)
        self.count = total
        return self

    def covariance(self) -> torch.Tensor:
        """The population covariance `[C, C]` (float64) of everything seen; refused before any sample."""
        if self.count == 0:
            raise ValueError("no feature vectors were accumulated; call update() with at least one batch first")
        return self.centred_sum / self.count

    def variance(self) -> torch.Tensor:
        """The per-channel population variance `[C]` (float64)."""
        return self.covariance().diagonal().clone()

    def principal_axes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """PCA of the covariance: eigenvalues `[C]` (descending, ≥ 0) and eigenvectors `[C, C]` (column k = axis k).

        float64. Each axis's sign is fixed (its largest-magnitude entry positive) so a fit is reproducible across
        LAPACK builds, which may return either sign.
        """
        eigenvalues, eigenvectors = torch.linalg.eigh(self.covariance())
        order = torch.argsort(eigenvalues, descending=True)
        eigenvalues, eigenvectors = eigenvalues[order].clamp_min(0.0), eigenvectors[:, order]
        pivots = eigenvectors.abs().argmax(dim=0)
        signs = torch.sign(eigenvectors[pivots, torch.arange(self.num_channels)])
        return eigenvalues, eigenvectors * torch.where(signs == 0, 1.0, signs)
