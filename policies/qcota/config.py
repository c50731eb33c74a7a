"""Hyper-parameters of QCO-TA (§4). The paper gives ranges, not values; the defaults are our stated choices."""

from __future__ import annotations

from dataclasses import dataclass

from rl_cs.errors import require


@dataclass(frozen=True)
class QcotaConfig:
    """SPE, MPI and NTS parameters, shared by QCO-TA and the baselines that use the same priorities."""

    alpha_te: float = 0.5
    """alpha_TE of Eq. 5: weight of the (min-max normalised) temporal entropy."""
    alpha_smi: float = 0.5
    """alpha_SMI of Eq. 5: weight of the (min-max normalised) spatial mutual information."""
    eta: float = 1.0
    """eta of Eq. 7: learning rate of the exponential-weights update of the attribute weights."""
    delta: float = 0.95
    """delta of Eq. 8: probability at which the normal fitted to |CS - IS| is inverted (paper: > 0.95)."""
    beta: float = 0.5
    """beta of Eq. 11: discount of the next state's value (paper: below 1)."""
    gamma: float = 1.0
    """gamma of Eq. 10: scale of the travel reward gamma / distance."""
    theta: float = 0.01
    """Theta of Eq. 12: value iteration stops when every value moved by less than this (paper: below 0.1)."""
    distance_offset_km: float = 5.0
    """d_0 added to every distance in Eq. 10 (reward gamma / (d + d_0)), so that staying (d = 0) is finite."""

    def validate(self, where: str = "qcota") -> None:
        for name in ("alpha_te", "alpha_smi", "eta", "gamma"):
            value = getattr(self, name)
            require(value >= 0, f"{where}.{name}", f"{value} < 0", "use a value >= 0")
        require(self.alpha_te + self.alpha_smi > 0, f"{where}.alpha_te", "alpha_te + alpha_smi is 0",
                "give at least one a positive weight")
        require(0.0 < self.delta < 1.0, f"{where}.delta", f"delta = {self.delta} is outside (0, 1)",
                "use a probability such as 0.95")
        require(0.0 <= self.beta < 1.0, f"{where}.beta", f"beta = {self.beta} is outside [0, 1)",
                "use a discount below 1 so value iteration converges")
        require(self.theta > 0, f"{where}.theta", f"{self.theta} <= 0", "use a small positive threshold")
        require(self.distance_offset_km > 0, f"{where}.distance_offset_km", f"{self.distance_offset_km} <= 0",
                "use a positive offset, e.g. 5 km")
