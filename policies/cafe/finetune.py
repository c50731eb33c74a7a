"""CAFE's swift fine-tuning of phi (§4.5, Eq. 15-19) and Algorithm 1's schedule for switching it on.

Eq. 15 expands L_Lambda to second order around phi-hat (the phi reached by the Eq. 14 updates);
setting the derivative of that expansion to zero (Eq. 16-18) gives one Newton step (Eq. 19):

    phi^* = phi-hat - [d2L_Lambda/dphi2 (phi-hat)]^-1 dL_Lambda/dphi (phi-hat).

Our reading, and what it adds to the paper:
- Pull-back (from implicit MAML, Rajeswaran et al. 2019, which §4.4 builds on): the step minimises
  L_Lambda(phi) + (kappa / 2) ||phi - phi-hat||^2, i.e. solves (H + kappa I) step = g. Before issue 9 the
  damping was relative to H's diagonal (1e-4) and did not hold phi near phi-hat: phi jumped
  (1, 0) -> (4.8, 0.95) -> (16.7, 0.15) within three batches. kappa = PhiConfig.newton_damping, on the
  normalised L_Lambda's scale (policies.cafe.regulariser); a singular H + kappa I (kappa = 0) is solved by
  pseudo-inverse, the smallest step onto the set of minimisers.
- Multi-trajectory fit (Eq. 15: "optimal multi-trajectory optimization"): L_Lambda is taken over a rolling
  buffer of the last PhiConfig.finetune_buffer trajectories, not the 6-8 of one batch, whose two regressors
  move together. With r(phi) linear in phi ("mix") L_Lambda is exactly quadratic, so Eq. 15 is exact and the
  step lands on the pulled-back least-squares phi; the buffer keeps each trajectory's linear returns.
- When (Algorithm 1, line 5, "if phi has been sufficiently trained", and §5.2, "once the model training
  stabilises"): FinetuneSchedule switches fine-tuning on once the CA-noFE training revenue has plateaued,
  and never before. The old criterion (phi's relative change below 1e-2, while an Adam step moves phi by
  about 1e-3) held from the second batch.
"""

from __future__ import annotations

from typing import Callable

import torch

from policies.cafe.config import PhiConfig
from policies.cafe.finite import check_finite


def newton_step(loss: Callable[[torch.Tensor], torch.Tensor], phi_hat: torch.Tensor,
                damping: float) -> torch.Tensor:
    """phi^* of Eq. 19 with the pull-back: argmin of the second-order expansion of
    loss(phi) + (damping / 2) ||phi - phi_hat||^2 at phi_hat, from loss's exact gradient and Hessian.

    Solves (H + damping I) step = g, by pseudo-inverse when that matrix is singular.
    """
    if damping < 0:
        raise ValueError(f"the fine-tuning damping must be >= 0, got {damping}")
    phi_hat = check_finite("phi", phi_hat).detach()
    grad = torch.autograd.functional.jacobian(loss, phi_hat)
    hessian = torch.autograd.functional.hessian(loss, phi_hat)
    check_finite("Hessian of L_Lambda", hessian)
    damped = hessian + damping * torch.eye(len(phi_hat), dtype=hessian.dtype, device=hessian.device)
    step = torch.linalg.pinv(damped, hermitian=True) @ check_finite("gradient of L_Lambda", grad)
    return check_finite("phi after Newton fine-tuning", phi_hat - step)


def push_rows(storage: torch.Tensor, count: int, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A rolling buffer of fixed capacity (storage's first dim): the valid rows are the last ``count`` of
    ``storage``; appending ``rows`` drops the oldest. Returns the new storage and count."""
    capacity = len(storage)
    merged = torch.cat([storage, rows.to(storage.dtype)])[-capacity:]
    return merged, min(count + len(rows), capacity)


class FinetuneSchedule:
    """Algorithm 1, line 5: fine-tuning starts once the training revenue has plateaued (§5.2).

    Call ``observe(revenue)`` once per training iteration with that iteration's training revenue (the train
    batch's payments per env step). It counts iterations without a new best -- a value above the best so far
    by more than ``tolerance`` of it -- and switches fine-tuning on when there have been ``patience`` such
    iterations in a row, after at least ``finetune_after`` iterations. Once on, it stays on.

    ``finetune`` is not a PhiConfig field because the method decides it, not the user: True for CAFE,
    False for CA-noFE (rl_cs.experiment.shaping.cafe_config), whose schedule never switches on.
    """

    def __init__(self, config: PhiConfig, finetune: bool = True):
        self.config, self.finetune = config, finetune
        self.iterations = 0
        self.stale = 0
        self.best = 0.0
        """The best training revenue so far (meaningless before the first iteration)."""
        self.active = False

    def observe(self, revenue: float) -> bool:
        """Record one training iteration's revenue; return whether fine-tuning is on from now on."""
        revenue = float(revenue)
        if revenue != revenue or revenue in (float("inf"), float("-inf")):
            raise ValueError(f"the training revenue must be finite, got {revenue}")
        if self.iterations == 0 or revenue > self.best + self.config.tolerance * abs(self.best):
            self.stale = 0
        else:
            self.stale += 1
        self.best = revenue if self.iterations == 0 else max(self.best, revenue)
        self.iterations += 1
        self.active = self.active or (self.finetune and self.plateaued)
        return self.active

    @property
    def plateaued(self) -> bool:
        return self.iterations >= self.config.finetune_after and self.stale >= self.config.patience

    def state_dict(self) -> dict:
        """Checkpointable state (plain Python values)."""
        return {"iterations": self.iterations, "stale": self.stale, "best": self.best, "active": self.active}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned."""
        self.iterations, self.stale = int(state["iterations"]), int(state["stale"])
        self.best, self.active = float(state["best"]), bool(state["active"])
