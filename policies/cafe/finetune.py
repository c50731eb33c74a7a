"""CAFE's swift fine-tuning of phi (§4.5, Eq. 15-19) and Algorithm 1's schedule for switching it on.

Eq. 15 expands L_Lambda to second order around phi-hat (the phi reached by the Eq. 14 updates);
setting the derivative of that expansion to zero (Eq. 16-18) gives one Newton step (Eq. 19):

    phi^* = phi-hat - [d2L_Lambda/dphi2 (phi-hat)]^-1 dL_Lambda/dphi (phi-hat).

Our reading: with r(phi) = phi_1 CMI + phi_2 (Eq. 5), L_Lambda is exactly quadratic in phi, so the
expansion is exact and the step lands on the least-squares phi for the current batch of trajectories.
phi has two entries, so the 2x2 Hessian is formed exactly. A singular Hessian (e.g. one trajectory,
or CMI sums proportional to trajectory lengths) is handled by Levenberg damping plus a pseudo-inverse,
which takes the smallest step onto the set of minimisers; damping also shrinks the step towards phi-hat.

Algorithm 1 (line 5) fine-tunes "if phi has been sufficiently trained": FinetuneSchedule states that
as a criterion. Before it holds, training is CA-noFE; after it holds once, fine-tuning stays on.
"""

from __future__ import annotations

from typing import Callable

import torch

from policies.cafe.config import PhiConfig
from policies.cafe.finite import check_finite


def newton_step(loss: Callable[[torch.Tensor], torch.Tensor], phi_hat: torch.Tensor,
                damping: float) -> torch.Tensor:
    """phi^* of Eq. 19 from the exact gradient and Hessian of `loss` (L_Lambda) at phi_hat.

    Solves (H + mu I) step = g with mu = damping * mean |diag H|, by pseudo-inverse when H is singular.
    """
    phi_hat = check_finite("phi", phi_hat).detach()
    grad = torch.autograd.functional.jacobian(loss, phi_hat)
    hessian = torch.autograd.functional.hessian(loss, phi_hat)
    check_finite("Hessian of L_Lambda", hessian)
    mu = damping * hessian.diagonal().abs().mean()
    damped = hessian + mu * torch.eye(len(phi_hat), dtype=hessian.dtype, device=hessian.device)
    step = torch.linalg.pinv(damped, hermitian=True) @ check_finite("gradient of L_Lambda", grad)
    return check_finite("phi after Newton fine-tuning", phi_hat - step)


class FinetuneSchedule:
    """Algorithm 1, line 5: decides when phi "has been sufficiently trained" to start fine-tuning.

    Call `observe(phi)` after every Eq. 14 update (not after Newton steps). `active` becomes True once
    finetune is on, at least finetune_after updates were seen, and the relative change of phi stayed
    below tolerance for patience consecutive updates; it then stays True.

    ``finetune`` is not a PhiConfig field because the method decides it, not the user: True for CAFE,
    False for CA-noFE (rl_cs.experiment.shaping.cafe_config), whose schedule never switches on.
    """

    def __init__(self, config: PhiConfig, finetune: bool = True):
        self.config, self.finetune = config, finetune
        self.updates = 0
        self.calm_updates = 0
        self.active = False
        self._last = torch.tensor(config.phi_init, dtype=torch.float64)

    def observe(self, phi: torch.Tensor) -> bool:
        """Record one Eq. 14 update of phi; return whether fine-tuning is on from now on."""
        phi = check_finite("phi", phi).detach().to("cpu", torch.float64)
        change = (phi - self._last).norm() / self._last.norm().clamp_min(1e-8)
        self.updates += 1
        self.calm_updates = self.calm_updates + 1 if change < self.config.tolerance else 0
        self._last = phi
        self.active = self.active or (
            self.finetune
            and self.updates >= self.config.finetune_after
            and self.calm_updates >= self.config.patience
        )
        return self.active

    def state_dict(self) -> dict:
        """Checkpointable state (plain Python values)."""
        return {"updates": self.updates, "calm_updates": self.calm_updates, "active": self.active,
                "last_phi": self._last.tolist()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned."""
        self.updates, self.calm_updates, self.active = state["updates"], state["calm_updates"], state["active"]
        self._last = torch.tensor(state["last_phi"], dtype=torch.float64)
