"""MPI, multi-attribute priority integration (§4.2, Eq. 6-8).

Eq. 7's update w_{y+1}^a = w_y^a exp(-eta l_y^a) from equal weights is the exponentially weighted average
forecaster ("Hedge") over the A attributes: w_{y+1}^a is proportional to exp(-eta L_y^a), L the cumulative
loss. For losses in [0, 1] and a horizon of Y cycles, eta = sqrt(8 ln A / Y) bounds its regret against the
best single attribute in hindsight by sqrt(Y ln A / 2) (Cesa-Bianchi & Lugosi 2006, Theorem 2.2); the
anytime rate eta_y = sqrt(8 ln A / y) at cycle y, used when Y is not known, by 2 sqrt(Y ln A / 2) +
sqrt(ln A / 8) (Theorem 2.3). A fixed eta = 1 (the previous default) made one attribute's weight pass 0.99
within 4-11 cycles on Piemonte.

Eq. 8's loss is put in Gamma_a units (the objective's own normalisation, Eq. 2 / 15) and clipped to [0, 1],
the range the bound above assumes.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def estimated_loss(residuals: np.ndarray, delta: float, scale: np.ndarray) -> np.ndarray:
    """Eq. 8: (A,) inverse CDF at ``delta`` of a normal fitted to each attribute's |CS - IS| (NaN = no value),
    divided by ``scale`` (Gamma_a's divisor, so the loss is in the units of Eq. 15's sum) and clipped to
    [0, 1].

    The residuals are the world's leave-one-out ones (IS at a sensed cell is otherwise CS itself, and
    |CS - IS| would be 0, so read literally Eq. 8 never moves the weights). An attribute with fewer than two
    residuals gets loss 0 (no information).
    """
    counts = (~np.isnan(residuals)).sum(-1)
    enough = counts >= 2
    safe = np.where(enough[:, None], residuals, 0.0)
    mean = np.nanmean(safe, -1)
    std = np.nanstd(safe, -1, ddof=1)
    quantile = norm.ppf(delta, loc=mean, scale=np.maximum(std, 1e-12))
    loss = np.where(enough, quantile / np.where(scale > 0, scale, 1.0), 0.0)
    return np.clip(loss, 0.0, 1.0)


def hedge_rate(num_attributes: int, horizon: int) -> float:
    """eta = sqrt(8 ln A / Y): the learning rate of Eq. 7 with the regret bound sqrt(Y ln A / 2)
    (Cesa-Bianchi & Lugosi 2006, Theorem 2.2) for losses in [0, 1] over Y cycles."""
    return float(np.sqrt(8.0 * np.log(num_attributes) / max(horizon, 1)))


def exponential_weights(weights: np.ndarray, loss: np.ndarray, eta: float) -> np.ndarray:
    """Eq. 7: w_{y+1}^a = w_y^a exp(-eta loss^a), renormalised to sum 1 (the ranking in Eq. 6 is unchanged;
    shifting the losses by their minimum first changes nothing after renormalising and avoids underflow)."""
    updated = weights * np.exp(-eta * (loss - loss.min()))
    return updated / updated.sum()


def unified_priority(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Eq. 6: (X,) UPS_x = sum_a w^a PS_x^a."""
    return weights @ scores


class AttributeWeights:
    """The attribute weights w_y^a of Eq. 6-7, from the cumulative Eq. 8 losses of the cycles so far.

    ``rate``: "hedge" (eta = sqrt(8 ln A / Y) when the horizon Y is known, else the anytime eta_y =
    sqrt(8 ln A / y)) or "fixed" (``eta``). With a fixed eta this equals Eq. 7 applied once per cycle.
    """

    def __init__(self, num_attributes: int, rate: str = "hedge", eta: float = 1.0, horizon: int | None = None):
        self.num_attributes, self.rate, self.eta, self.horizon = num_attributes, rate, eta, horizon
        self.cumulative = np.zeros(num_attributes)
        self.rounds = 0
        self.weights = np.full(num_attributes, 1.0 / num_attributes)

    def learning_rate(self) -> float:
        """eta for the weights used in the next cycle (round ``rounds + 1``)."""
        if self.rate == "fixed":
            return self.eta
        return hedge_rate(self.num_attributes, self.horizon or self.rounds + 1)

    def record(self, loss: np.ndarray) -> np.ndarray:
        """Add one cycle's losses (A,) and return the weights for the next cycle."""
        self.cumulative = self.cumulative + loss
        self.rounds += 1
        exponent = -self.learning_rate() * (self.cumulative - self.cumulative.min())
        updated = np.exp(exponent)
        self.weights = updated / updated.sum()
        return self.weights

    def update(self, residuals: np.ndarray, delta: float, scale: np.ndarray) -> np.ndarray:
        """Eq. 7 with Eq. 8's loss from the last cycle's leave-one-out ``residuals`` (A, X); no update
        before the first cycle (all residuals NaN)."""
        if not np.isnan(residuals).all():
            self.record(estimated_loss(residuals, delta, scale))
        return self.weights
