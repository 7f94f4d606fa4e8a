"""Singular values and singular-vector alignment of weight matrices (Ito et al. 2024, §4).

Conv kernels are reshaped to (out, in * k * k). Signs of singular vectors are
arbitrary and repeated singular values make single vectors ill-defined, so the
alignment measure used for verdicts compares *subspaces*:

    O_k = ||U_k^A^T U_k^B||_F^2 / k        (top-k left singular subspaces; same for V)

which is 1 for identical subspaces and k/n in expectation for random ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..permutation.spec import PermutationSpec


@dataclass(frozen=True)
class WeightMatrix:
    name: str
    matrix: torch.Tensor  # (out, in * k * k), float64
    rows_permuted: bool  # left singular vectors live in a permuted space
    cols_permuted: bool  # right singular vectors live in a permuted space


def _moves(spec: PermutationSpec, name: str, axis: int) -> bool:
    """Whether some permutation acts on this axis: a plain one, or a composite axis (a packed q/k/v
    projection, a concatenation) with a permuted segment."""
    if spec.axes_to_perm[name][axis] is not None:
        return True
    segments = getattr(spec, "composite_axes", {}).get(name, {}).get(axis, ())
    return any(group is not None for group, _, _ in segments)


def weight_matrices(spec: PermutationSpec, params: dict[str, torch.Tensor]) -> list[WeightMatrix]:
    out = []
    for name in spec.axes_to_perm:
        w = params[name]
        if w.dim() < 2:
            continue
        out.append(
            # explicit column count: reshape(0, -1) is ambiguous for zero-width layers
            WeightMatrix(name, w.detach().double().reshape(w.shape[0], math.prod(w.shape[1:])),
                         _moves(spec, name, 0), _moves(spec, name, 1))
        )
    return out


def singular_values(w: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(w.double())


def svd(w: torch.Tensor):
    """Thin SVD: U (m, r), S (r,), V (n, r) with r = min(m, n), S descending."""
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    return u, s, vh.T


def subspace_overlap(ua: torch.Tensor, ub: torch.Tensor, k: int, tail: bool = False) -> float:
    """||Ua_k^T Ub_k||_F^2 / k for the top-k (or bottom-k) columns; 0 < k <= r."""
    if k < 1:
        raise ValueError("k must be at least 1")
    sl = slice(-k, None) if tail else slice(0, k)
    return float((ua[:, sl].T @ ub[:, sl]).pow(2).sum() / k)


def chance_overlap(k: int, n: int) -> float:
    """Expected O_k of two uniformly random k-dimensional subspaces of R^n."""
    return k / n


@dataclass(frozen=True)
class LayerSVD:
    """Thin SVD of one weight matrix, computed once and reused for every k."""

    name: str
    u: torch.Tensor
    s: torch.Tensor
    v: torch.Tensor
    rows_permuted: bool
    cols_permuted: bool

    @property
    def rank(self) -> int:
        return self.s.shape[0]


def layer_svds(spec: PermutationSpec, params: dict[str, torch.Tensor]) -> list[LayerSVD]:
    out = []
    for w in weight_matrices(spec, params):
        u, s, v = svd(w.matrix)
        out.append(LayerSVD(w.name, u, s, v, w.rows_permuted, w.cols_permuted))
    return out


def permuted_svds(spec: PermutationSpec, perms: dict[str, torch.Tensor], params: dict[str, torch.Tensor],
                  svds: list[LayerSVD]) -> list[LayerSVD]:
    """`layer_svds(spec, apply_permutation(spec, perms, params))` from `svds = layer_svds(spec, params)`
    without decomposing again: a permutation moves a weight matrix's rows and columns,
    W' = W[r][:, c] = U[r] S V[c]^T, so U' = U[r], S' = S, V' = V[c] is a thin SVD of W' (the same
    singular values, the vectors moved; a sign or the basis of a repeated singular value may
    differ from a fresh decomposition's, which every alignment statistic is blind to). Each
    matrix's (r, c) is read off by permuting index-coded weights; a matrix the permutation
    changes otherwise than by moving rows and columns is decomposed afresh."""
    from ..permutation.apply import apply_permutation  # permutation.apply needs nothing from here

    coded = {k: torch.arange(v.numel(), dtype=torch.float64, device=v.device).reshape(v.shape)
             if v.is_floating_point() else v for k, v in params.items()}
    moved = {w.name: w.matrix for w in weight_matrices(spec, apply_permutation(spec, perms, coded))}
    fresh = None
    out = []
    for layer in svds:
        index = moved[layer.name].long()
        if index.numel():  # an empty matrix has nothing to move (decomposed below)
            cols = index.shape[1]
            r, c = index[:, 0] // cols, index[0] % cols
            if torch.equal(index, r[:, None] * cols + c[None, :]):
                out.append(LayerSVD(layer.name, layer.u[r], layer.s, layer.v[c], layer.rows_permuted, layer.cols_permuted))
                continue
        if fresh is None:
            fresh = {l.name: l for l in layer_svds(spec, apply_permutation(spec, perms, params))}
        out.append(fresh[layer.name])
    return out


def side_overlaps(a: LayerSVD, b: LayerSVD, k_fraction: float, tail: bool = False) -> list[float]:
    """O_k on each permuted side of one layer, k = ceil(k_fraction * rank); none for a
    layer of rank 0 (a zero-width layer has no subspace to compare)."""
    if a.rank == 0:
        return []
    k = max(1, min(a.rank, math.ceil(k_fraction * a.rank)))
    sides = []
    if a.rows_permuted:
        sides.append(subspace_overlap(a.u, b.u, k, tail))
    if a.cols_permuted:
        sides.append(subspace_overlap(a.v, b.v, k, tail))
    return sides


def vector_cosines(a: LayerSVD, b: LayerSVD) -> torch.Tensor:
    """|cos| between the i-th left singular vectors times |cos| between the i-th right
    ones: per-rank alignment of the rank-one components u_i v_i^T (sign-free)."""
    return (a.u * b.u).sum(0).abs() * (a.v * b.v).sum(0).abs()


def ito_r_terms(a: LayerSVD, b: LayerSVD, gamma: float) -> tuple[float, int]:
    """One layer's share of Ito et al.'s R(theta_a, theta_b) as secondary sources quote it
    (the paper's §4 text was not available here; see claims/test_ito2024_alignment.py):

        R = sum_l sum_{i, j < n_l} (u_i^a . u_j^b) (v_i^a . v_j^b) / sum_l n_l

    with b already permuted and n_l the number of A's singular values of layer l at or
    above gamma * sigma_max (our reading of the paper's threshold gamma). Flipping the sign
    of a pair (u_i, v_i) leaves every term unchanged; R is 1 when the leading singular
    vectors coincide and near 0 for unrelated ones. Returns (sum of terms, n_l)."""
    if a.rank == 0 or a.s[0] <= 0:
        return 0.0, 0
    n = int((a.s >= gamma * a.s[0]).sum())
    terms = (a.u[:, :n].T @ b.u[:, :n]) * (a.v[:, :n].T @ b.v[:, :n])
    return float(terms.sum()), n
