"""CAFE's return-equivalence regulariser L_Lambda(phi) (§4.4, Eq. 6), normalised.

    L_Lambda(phi) = E_{lambda ~ Lambda} [ ( sum_t r_t(phi) - eta * sum_t rho_t )^2 ]          (Eq. 6)

keeps the redistributed return of every trajectory lambda equal to eta times the platform payments it
earned, so that redistribution does not change which policy is optimal.

Normalisation (our choice): Eq. 6 is in payment units squared. On the CSC world it was 1e5-5e6 with
|dL/dphi| up to 7e6, against |dJ/dphi| ~ 1e-3 (PPO's surrogate sees standardised advantages): the J terms of
Eq. 14 had no effect on phi. We divide by E_lambda[(eta sum_t rho_t)^2], a constant in phi, which keeps the
minimiser and Eq. 19's Newton step (up to the pull-back's scale) and makes L_Lambda a relative squared
return gap of order 1: for the "mix" redistribution it is exactly (phi_1 + phi_2 - eta)^2 / eta^2 when every
task's contributors are in the batch.

A trajectory is one multi-agent episode chunk (all its workers' rewards against the platform's revenue in
it, our reading of "the undivided rewards").
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from rl_cs.errors import require


class LinearReturns(NamedTuple):
    """Per trajectory (S of them): sum_t r_t(phi) = offset + slope @ phi (exact when r is linear in phi, the
    first-order expansion at the phi it was taken at otherwise), and the payments sum_t rho_t."""

    offset: torch.Tensor
    """(S,)"""
    slope: torch.Tensor
    """(S, 2)"""
    payments: torch.Tensor
    """(S,)"""

    def as_rows(self) -> torch.Tensor:
        """(S, 4) [offset, slope_1, slope_2, payments], the fine-tuning buffer's row format."""
        return torch.cat([self.offset[:, None], self.slope, self.payments[:, None]], 1)

    @staticmethod
    def from_rows(rows: torch.Tensor) -> "LinearReturns":
        return LinearReturns(rows[:, 0], rows[:, 1:3], rows[:, 3])


def per_trajectory(values: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """Sums of ``values`` (N, ...) per trajectory id (any integers), in sorted id order: (S, ...)."""
    segments, index = torch.unique(segment_ids, return_inverse=True)
    out = torch.zeros((len(segments), *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add(0, index, values)


def linear_returns(rewards: torch.Tensor, jacobian: torch.Tensor, phi: torch.Tensor, payments: torch.Tensor,
                   segment_ids: torch.Tensor) -> LinearReturns:
    """LinearReturns of a batch from its rewards r(phi) (N,), their Jacobian dr/dphi (N, 2) at ``phi`` and
    the payments rho (N,)."""
    slope = per_trajectory(jacobian, segment_ids)
    offset = per_trajectory(rewards, segment_ids) - slope @ phi.to(slope.dtype)
    return LinearReturns(offset, slope, per_trajectory(payments.to(rewards.dtype), segment_ids))


def gap_loss(gaps: torch.Tensor, payments: torch.Tensor, eta: float) -> torch.Tensor:
    """Normalised L_Lambda from per-trajectory gaps sum r - eta sum rho and payments sum rho (S,)."""
    require(eta > 0, "cafe.phi.eta", f"must be > 0, got {eta}")
    scale = (eta * payments).pow(2).mean().clamp_min(1e-12)
    return gaps.pow(2).mean() / scale


def return_gap_loss(rewards: torch.Tensor, payments: torch.Tensor, segment_ids: torch.Tensor,
                    eta: float) -> torch.Tensor:
    """Normalised L_Lambda (Eq. 6 / E[(eta sum rho)^2]) over a flat batch of steps.

    rewards      (N,) redistributed rewards r_t(phi), differentiable in phi
    payments     (N,) platform payments rho_t (the undivided reward) of the same steps
    segment_ids  (N,) integer id of the trajectory each step belongs to (any values, need not be sorted)
    eta          reward scale of Eq. 6, > 0
    """
    require(eta > 0, "cafe.phi.eta", f"must be > 0, got {eta}")
    gaps = per_trajectory(rewards - eta * payments.to(rewards.dtype), segment_ids)
    return gap_loss(gaps, per_trajectory(payments.to(rewards.dtype), segment_ids), eta)


def linear_return_gap(returns: LinearReturns, eta: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """phi -> normalised L_Lambda(phi) over the trajectories of ``returns`` (quadratic in phi)."""
    require(eta > 0, "cafe.phi.eta", f"must be > 0, got {eta}")

    def loss(phi: torch.Tensor) -> torch.Tensor:
        offset, slope, payments = (x.to(phi.dtype) for x in returns)
        return gap_loss(offset + slope @ phi - eta * payments, payments, eta)

    return loss
