"""Orthogonal matrices that give every dimension of a PCA-rotated distribution the same variance (PHI-S's rotation).

If the data are already rotated onto their principal axes (covariance diag(λ)), any orthogonal R gives the
covariance R·diag(λ)·Rᵀ, whose diagonal is Σ_k R_ik² λ_k. A *normalised Hadamard matrix* (entries ±1/√C) makes
every R_ik² = 1/C, so every diagonal entry is mean(λ) whatever λ is: that is the PHI-S rotation (Ranzinger et al.,
2024). Hadamard matrices exist only for C = 1, 2 and multiples of 4, and a construction is known for many but not
all of those. This module builds:

- **Sylvester** (C a power of two, incl. 1 and 2): H_{2n} = [[H_n, H_n], [H_n, −H_n]].
- **Sylvester ⊗ Paley I** (C = 2^a·(q + 1), q a prime ≡ 3 mod 4; e.g. 12, 20, 24, 384, 768, 1152, 1280): Paley's
  matrix I + S with S = [[0, 1ᵀ], [−1, Q]] and Q the Jacobsthal matrix Q_ij = χ(j − i) (χ the Legendre symbol
  mod q), then a Kronecker product with a Sylvester matrix.
- **Givens equal-diagonal rotation** for every other C (odd C, 28, 36, …): no Hadamard matrix is available, so the
  equal diagonal is reached for the given λ instead. Since the vector mean(λ)·1 is majorised by λ, such an
  orthogonal matrix exists (Schur–Horn); it is built by at most C − 1 plane rotations, each setting one diagonal
  entry above the mean to exactly the mean against one below it (the construction of Bendel & Mickey, 1978, and
  Davies & Higham, 2000). The result has the property PHI-S needs (equal variances, orthogonal, invertible) but,
  unlike a Hadamard matrix, depends on λ and does not spread every component over every output dimension.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

__all__ = ["RotationKind", "equal_diagonal_rotation", "hadamard_matrix", "isotropic_rotation"]

RotationKind = Literal["sylvester", "sylvester_paley", "givens"]


def _is_prime(number: int) -> bool:
    return number >= 2 and all(number % divisor for divisor in range(2, math.isqrt(number) + 1))


def _sylvester(order: int) -> torch.Tensor:
    matrix = torch.ones(1, 1, dtype=torch.float64)
    while matrix.shape[0] < order:
        matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)], 0)
    return matrix


def _paley(prime: int) -> torch.Tensor:
    """Paley construction I: a ±1 matrix H of order q + 1 with H·Hᵀ = (q + 1)·I, for a prime q ≡ 3 (mod 4)."""
    residues = {(value * value) % prime for value in range(1, prime)}
    legendre = torch.tensor([0.0] + [1.0 if value in residues else -1.0 for value in range(1, prime)])
    index = torch.arange(prime)
    jacobsthal = legendre[(index[None, :] - index[:, None]) % prime].double()
    skew = torch.zeros(prime + 1, prime + 1, dtype=torch.float64)
    skew[0, 1:], skew[1:, 0], skew[1:, 1:] = 1.0, -1.0, jacobsthal
    return torch.eye(prime + 1, dtype=torch.float64) + skew


def hadamard_matrix(order: int) -> tuple[torch.Tensor, RotationKind] | None:
    """A ±1 matrix H `[order, order]` (float64) with H·Hᵀ = order·I, and its construction; None if none is built here.

    Sylvester for powers of two; Sylvester ⊗ Paley I for order = 2^a·(q + 1) with q a prime ≡ 3 (mod 4).
    """
    if order < 1:
        raise ValueError(f"order={order}: a Hadamard matrix needs order ≥ 1")
    if order & (order - 1) == 0:
        return _sylvester(order), "sylvester"
    power = 1
    while order % power == 0:
        paley_order = order // power
        if paley_order % 4 == 0 and _is_prime(paley_order - 1) and (paley_order - 1) % 4 == 3:
            return torch.kron(_sylvester(power), _paley(paley_order - 1)), "sylvester_paley"
        power *= 2
    return None


def _plane_tangent(above: float, coupling: float, below: float) -> float:
    """tan θ of the plane rotation that moves the diagonal entry `above` (> 0, relative to the target) to 0.

    Solves (below)·t² + 2·coupling·t + above = 0 (real roots since above·below < 0), taking the root that
    avoids cancellation.
    """
    root = math.sqrt(coupling * coupling - above * below)
    return -above / (coupling + math.copysign(root, coupling) if coupling != 0 else root)


def equal_diagonal_rotation(eigenvalues: torch.Tensor, tolerance: float = 1e-12) -> torch.Tensor:
    """An orthogonal G `[C, C]` (float64) with diag(G·diag(λ)·Gᵀ) = mean(λ) for every entry, for any C.

    eigenvalues: λ `[C]`, non-negative. At most C − 1 Givens rotations (see the module docstring).
    """
    values = eigenvalues.detach().to(device="cpu", dtype=torch.float64).numpy()
    size = values.size
    target = float(values.mean())
    rotation = np.eye(size)
    diagonal = values.copy()  # diag(G·diag(λ)·Gᵀ), updated in closed form after each plane rotation
    slack = tolerance * max(abs(target), 1e-300)
    for _ in range(2 * size):  # NumPy, not torch: thousands of tiny steps, where per-op overhead dominates
        gaps = diagonal - target
        first, second = int(gaps.argmax()), int(gaps.argmin())
        if gaps[first] <= slack or gaps[second] >= -slack:
            return torch.from_numpy(rotation)
        coupling = float(rotation[first] @ (rotation[second] * values))  # (G·diag(λ)·Gᵀ)[first, second]
        tangent = _plane_tangent(float(gaps[first]), coupling, float(gaps[second]))
        cosine = 1.0 / math.sqrt(1.0 + tangent * tangent)
        sine = tangent * cosine
        rotation[first], rotation[second] = (
            cosine * rotation[first] + sine * rotation[second],
            cosine * rotation[second] - sine * rotation[first],
        )
        diagonal[first], diagonal[second] = target, diagonal[first] + diagonal[second] - target  # trace is kept
    raise RuntimeError(f"equal-diagonal rotation did not converge for {size} eigenvalues (max gap {abs(gaps).max()})")


def isotropic_rotation(eigenvalues: torch.Tensor) -> tuple[torch.Tensor, RotationKind]:
    """The orthogonal R `[C, C]` (float64) that equalises the variances of PCA coordinates with variances λ `[C]`.

    The normalised Hadamard matrix H/√C when one is built here (independent of λ), else the Givens
    equal-diagonal rotation for this λ. Returns (R, how it was built).
    """
    size = eigenvalues.numel()
    found = hadamard_matrix(size)
    if found is not None:
        matrix, kind = found
        return matrix / math.sqrt(size), kind
    return equal_diagonal_rotation(eigenvalues), "givens"
