"""Hyper-parameters of QCO-TA (§4). The paper gives ranges, not values; the defaults are our stated choices."""

from __future__ import annotations

from dataclasses import dataclass

from rl_cs.errors import closest, require

REPRESENTATIVENESS = ("set", "per_cell")
LEARNING_RATES = ("hedge", "fixed")


@dataclass(frozen=True)
class QcotaConfig:
    """SPE, MPI and NTS parameters, shared by QCO-TA and the baselines that use the same priorities."""

    representativeness: str = "set"
    """SPE's reading (§4.1): "set" scores a cell by the expected error of the world's inference it removes
    given the cells already chosen (TE = its own expected error, SMI = the others' error it removes;
    policies/qcota/representativeness.py), so chosen cells spread and well-predicted cells rank low;
    "per_cell" is Eq. 3-4 literally (temporal entropy of a cell's IS series, its MI summed over all cells).
    Chosen by principle and on the synthetic field, not by tuning on the Piemonte tables (its estimate of D
    was validated on Piemonte: see representativeness.py)."""
    alpha_te: float = 0.5
    """alpha_TE of Eq. 5: weight of TE (per_cell: min-max normalised temporal entropy)."""
    alpha_smi: float = 0.5
    """alpha_SMI of Eq. 5: weight of SMI (per_cell: min-max normalised spatial mutual information)."""
    pair_prior_cycles: float = 5.0
    """kappa, representativeness "set": weight, in co-collected cycles, of the linear variogram fitted over all
    pairs in each pair's estimate of the fluctuation of v_i - v_j (policies/qcota/representativeness.py)."""
    learning_rate: str = "hedge"
    """Eq. 7's learning rate: "hedge" = sqrt(8 ln A / Y), whose regret against the best attribute in hindsight
    is at most sqrt(Y ln A / 2) for losses in [0, 1] (Cesa-Bianchi & Lugosi 2006, Thm 2.2; anytime
    sqrt(8 ln A / y) when Y is unknown, Thm 2.3); "fixed" = ``eta``."""
    eta: float = 1.0
    """eta of Eq. 7 when learning_rate is "fixed" (1.0 made the weights collapse within 4-11 cycles)."""
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
        require(self.representativeness in REPRESENTATIVENESS, f"{where}.representativeness",
                f"unknown reading '{self.representativeness}'", closest(self.representativeness, REPRESENTATIVENESS))
        require(self.learning_rate in LEARNING_RATES, f"{where}.learning_rate",
                f"unknown learning rate '{self.learning_rate}'", closest(self.learning_rate, LEARNING_RATES))
        for name in ("alpha_te", "alpha_smi", "eta", "gamma", "pair_prior_cycles"):
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
