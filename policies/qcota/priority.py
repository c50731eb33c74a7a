"""SPE, single-attribute priority estimation (§4.1, Eq. 3-5), vectorised over attributes and cells.

Lambda of Eq. 3 is a normal fitted to a cell's IS history, so TE is its differential entropy
0.5 log(2 pi e sigma^2). The mutual information I of Eq. 4 uses the same model: a bivariate normal fitted to
two cells' series, I = -0.5 log(1 - rho^2) with rho their Pearson correlation. (The paper cites Ross 2014's
nearest-neighbour estimator; the Gaussian one is consistent with Eq. 3's normal, exact for Gaussian series,
and costs one correlation matrix per attribute and cycle instead of X^2 neighbour searches.)
"""

from __future__ import annotations

import numpy as np

RHO_SQUARED_MAX = 1.0 - 1e-9
"""Caps rho^2 so identical series give a large, finite MI."""


def temporal_entropy(history: np.ndarray) -> np.ndarray:
    """Eq. 3: (..., X) differential entropy of a normal fitted to each cell's series (axis 0 = cycles).

    A constant series gets the entropy of a tiny variance (1e-12 of the attribute's mean variance).
    """
    variance = history.var(0)
    floor = 1e-12 * np.maximum(variance.mean(-1, keepdims=True), 1e-300)
    return 0.5 * np.log(2.0 * np.pi * np.e * np.maximum(variance, floor))


def gaussian_mutual_information(history: np.ndarray) -> np.ndarray:
    """(..., X, X) pairwise MI of cells' series (axis 0 = cycles) under a fitted bivariate normal; diagonal 0."""
    centred = history - history.mean(0)
    std = centred.std(0)
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    rho = np.einsum("h...x,h...y->...xy", z, z) / history.shape[0]
    info = -0.5 * np.log1p(-np.minimum(rho ** 2, RHO_SQUARED_MAX))
    diagonal = np.arange(history.shape[-1])
    info[..., diagonal, diagonal] = 0.0
    return info


def spatial_mutual_information(history: np.ndarray) -> np.ndarray:
    """Eq. 4: (..., X) each cell's MI summed over every other cell."""
    return gaussian_mutual_information(history).sum(-1)


def min_max(values: np.ndarray) -> np.ndarray:
    """Rescale the last axis to [0, 1]; a constant row becomes 0."""
    low, high = values.min(-1, keepdims=True), values.max(-1, keepdims=True)
    span = high - low
    return np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)


def priority_scores(inferred: np.ndarray, alpha_te: float, alpha_smi: float) -> np.ndarray:
    """Eq. 5: (A, X) PS = alpha_TE TE + alpha_SMI SMI on the IS history (cycles, A, X).

    TE and SMI are min-max normalised over cells first (their units differ: nats of one series vs. a sum of
    X - 1 MIs), so the alphas are comparable and PS lies in [0, alpha_TE + alpha_SMI]. With fewer than 3
    past cycles (no variance or correlation yet) every cell gets 0.
    """
    cycles, attributes, cells = inferred.shape
    if cycles < 3:
        return np.zeros((attributes, cells))
    return alpha_te * min_max(temporal_entropy(inferred)) + alpha_smi * min_max(spatial_mutual_information(inferred))
