"""CAFE's mathematical core (paper 000, §4.3-4.6), independent of RLlib.

credit.py        CMI credit VAE and the redistributed reward (Eq. 1-5)
regulariser.py   return-equivalence regulariser L_Lambda (Eq. 6)
hypergradient.py implicit bi-level gradient of phi (Eq. 7-14)
finetune.py      Newton fine-tuning of phi and its schedule (Eq. 15-19, Algorithm 1)
finite.py        NaN/inf guard naming where a bad value appeared

Their RLlib wiring (imported on demand, not from here): credit_module.py (the VAE as an RLModule holding
phi), connector.py (what CAFE writes into the batch before GAE), learner.py (the phi updates).
"""

from policies.cafe.credit import CreditConfig, CreditModel, VAELoss, gaussian_kl, redistribute
from policies.cafe.finetune import FinetuneSchedule, PhiConfig, newton_step
from policies.cafe.finite import NonFiniteError, check_finite
from policies.cafe.hypergradient import (
    Hypergradient,
    ImplicitGradConfig,
    conjugate_gradient,
    implicit_hypergradient,
    inverse_hvp,
    neumann_series,
    select_parameters,
)
from policies.cafe.regulariser import return_gap_loss

__all__ = [
    "CreditConfig", "CreditModel", "VAELoss", "gaussian_kl", "redistribute",
    "FinetuneSchedule", "PhiConfig", "newton_step",
    "NonFiniteError", "check_finite",
    "Hypergradient", "ImplicitGradConfig", "conjugate_gradient", "implicit_hypergradient", "inverse_hvp",
    "neumann_series", "select_parameters",
    "return_gap_loss",
]
