"""Neuron geometry: the weight vectors of a two-layer net's hidden neurons and the dimension of
the set they occupy (Ferbach, Goujaud, Gidel, Dieuleveut 2024), and how much of a spectrum its
leading values hold.
"""

from __future__ import annotations

import numpy as np
import torch

from ..permutation.apply import Params


def neuron_matrix(params: Params) -> np.ndarray:
    """One row per hidden neuron: its incoming weights, bias and outgoing weights (float64)."""
    w_in, bias, w_out = params["layers.0.weight"], params["layers.0.bias"], params["layers.1.weight"]
    return torch.cat([w_in, bias[:, None], w_out.T], dim=1).detach().double().cpu().numpy()


def covariance_spectrum(rows: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending) of the covariance of the rows, up to a factor: squared singular
    values of the centred matrix. Centring keeps a common offset from counting as a dimension."""
    s = np.linalg.svd(rows - rows.mean(axis=0), compute_uv=False)
    return s**2


def spectrum_participation_ratio(lam) -> float:
    """(sum lam)^2 / sum lam^2 of non-negative eigenvalues: k for k equal ones, 1 for a single one; 0 for none."""
    lam = np.asarray(lam, dtype=float)
    return float(lam.sum() ** 2 / (lam**2).sum()) if lam.sum() > 0 else 0.0


def participation_ratio(rows: np.ndarray) -> float:
    """tr(S)^2 / tr(S^2) of the covariance S of the rows: k for k equally spread directions, 1 for a
    line. This is the paper's approximate dimension of the neurons' support."""
    return spectrum_participation_ratio(covariance_spectrum(rows))


def weight_participation_ratio(weight: torch.Tensor) -> float:
    """Participation ratio of the eigenvalues of the uncentred W^T W (squared singular values of W):
    Ferbach et al.'s approximate dimension of a layer (Figure 2 protocol, PUBLISHED.md)."""
    s = torch.linalg.svdvals(weight.detach().double().cpu())
    return spectrum_participation_ratio((s**2).numpy())


def weighted_participation_ratio(weight: torch.Tensor, inputs: torch.Tensor) -> float:
    """The same for W Sigma_in W^T, Sigma_in = X^T X / n the uncentred second moment of the layer's
    inputs X: the eigenvalues are the squared singular values of X W^T / sqrt(n)."""
    z = inputs.detach().double().cpu() @ weight.detach().double().cpu().T
    s = torch.linalg.svdvals(z) / np.sqrt(max(1, len(z)))
    return spectrum_participation_ratio((s**2).numpy())


def energy_count(values, energy: float) -> int:
    """How many of the leading (descending, non-negative) values hold `energy` of their sum; 0 when all are 0."""
    v = np.asarray(values, dtype=float)
    if v.sum() <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(v) / v.sum(), energy - 1e-12) + 1)


def energy_rank(rows: np.ndarray, energy: float) -> int:
    """Number of covariance eigenvalues of the rows holding `energy` of their sum."""
    return energy_count(covariance_spectrum(rows), energy)
