"""MPI, multi-attribute priority integration (§4.2, Eq. 6-8)."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def estimated_loss(residuals: np.ndarray, delta: float, scale: np.ndarray) -> np.ndarray:
    """Eq. 8: (A,) inverse CDF at ``delta`` of a normal fitted to each attribute's |CS - IS| (NaN = no value).

    The residuals are the world's leave-one-out ones (IS at a sensed cell is otherwise CS itself, and
    |CS - IS| would be 0). The loss is divided by ``scale`` (the attribute's spread as seen so far) so one
    eta fits every attribute, like Gamma_a makes Eq. 2's errors comparable. An attribute with fewer than two
    residuals gets loss 0 (no information, no update).
    """
    counts = (~np.isnan(residuals)).sum(-1)
    enough = counts >= 2
    safe = np.where(enough[:, None], residuals, 0.0)
    mean = np.nanmean(safe, -1)
    std = np.nanstd(safe, -1, ddof=1)
    quantile = norm.ppf(delta, loc=mean, scale=np.maximum(std, 1e-12))
    return np.where(enough, quantile / np.where(scale > 0, scale, 1.0), 0.0)


def exponential_weights(weights: np.ndarray, loss: np.ndarray, eta: float) -> np.ndarray:
    """Eq. 7: w_{y+1}^a = w_y^a exp(-eta loss^a), renormalised to sum 1 (the ranking in Eq. 6 is unchanged;
    shifting the losses by their minimum first changes nothing after renormalising and avoids underflow)."""
    updated = weights * np.exp(-eta * (loss - loss.min()))
    return updated / updated.sum()


def unified_priority(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Eq. 6: (X,) UPS_x = sum_a w^a PS_x^a."""
    return weights @ scores


class AttributeWeights:
    """The attribute weights w_y^a of Eq. 6-7, updated once per cycle from the last cycle's residuals."""

    def __init__(self, num_attributes: int):
        self.weights = np.full(num_attributes, 1.0 / num_attributes)

    def update(self, residuals: np.ndarray, collected: np.ndarray, eta: float, delta: float) -> np.ndarray:
        """Apply Eq. 7 with Eq. 8's loss; ``collected`` (cycles, A, X) gives each attribute's observed spread."""
        if collected.shape[0] > 0:
            scale = np.nanstd(collected.transpose(1, 0, 2).reshape(collected.shape[1], -1), -1)
            self.weights = exponential_weights(self.weights, estimated_loss(residuals, delta, scale), eta)
        return self.weights
