"""CAFE's return-equivalence regulariser L_Lambda(phi) (§4.4, Eq. 6).

    L_Lambda(phi) = E_{lambda ~ Lambda} [ ( sum_t r_t(phi) - eta * sum_t rho_t )^2 ]

keeps the redistributed return of every trajectory lambda equal to eta times the platform payments it
earned, so that redistribution does not change which policy is optimal.
"""

from __future__ import annotations

import torch

from rl_cs.errors import require


def return_gap_loss(rewards: torch.Tensor, payments: torch.Tensor, segment_ids: torch.Tensor,
                    eta: float) -> torch.Tensor:
    """L_Lambda of Eq. 6 over a flat batch of steps, averaged over trajectories.

    rewards      (N,) redistributed rewards r_t(phi) (Eq. 5), differentiable in phi
    payments     (N,) platform payments rho_t (the undivided reward) of the same steps
    segment_ids  (N,) integer id of the trajectory each step belongs to (any values, need not be sorted)
    eta          reward scale of Eq. 6, > 0

    What a trajectory is, is the caller's choice: one id per episode (all agents' rewards against the
    platform's total revenue, our reading of "the undivided rewards") or one per (episode, agent).
    """
    require(eta > 0, "cafe.phi.eta", f"must be > 0, got {eta}")
    segments, index = torch.unique(segment_ids, return_inverse=True)
    gap = torch.zeros(len(segments), dtype=rewards.dtype, device=rewards.device)
    gap = gap.index_add(0, index, rewards - eta * payments)
    return gap.pow(2).mean()
