"""What CAFE writes into the policy's train batch before GAE (§4.3-4.5), via policies.shaping.RewriteRewards.

For every decision of the batch, under torch.no_grad():
1. CMI_t^i with the credit VAE (Eq. 3);
2. if fine-tuning is on (Algorithm 1, lines 5-6): phi <- the Newton step of Eq. 19 on this batch's L_Lambda;
3. the rewards PPO trains on: r^i(phi) = phi_1 CMI_t^i + phi_2 (Eq. 5);
4. the advantage basis for the learner's differentiable J(theta^l, phi) (Eq. 14): GAE is linear in the
   rewards, so with D(x) the GAE of rewards x at zero values and A_V the GAE of zero rewards at the
   critic's values, A(phi) = phi_1 D(CMI) + phi_2 D(1) + A_V exactly (before PPO's standardisation).

L_Lambda (Eq. 6) takes one trajectory lambda per multi-agent episode chunk: the summed redistributed
rewards of all its workers against eta times the platform payments (the split rewards) it realised.
"""

from __future__ import annotations

import torch

from policies.cafe.credit import redistribute
from policies.cafe.finetune import newton_step
from policies.cafe.regulariser import return_gap_loss
from policies.shaping.connector import ENV_REWARD, batch_gae, fact

CMI = "cafe_cmi"
"""CMI_t^i of Eq. 3 per step (0 on the appended bootstrap step)."""
REVENUE_TARGET = "cafe_revenue_target"
"""The decoder's target: revenue realised near the decision, standardised over the train batch (Eq. 4)."""
D_CMI, D_ONE, A_V = "cafe_d_cmi", "cafe_d_one", "cafe_a_v"
"""The advantage basis: A(phi) = phi_1 * D_CMI + phi_2 * D_ONE + A_V."""


def advantage_basis(batch: dict, values: torch.Tensor, cmi: torch.Tensor, gamma: float,
                    lambda_: float) -> dict[str, torch.Tensor]:
    """D(CMI), D(1) and A_V with RLlib's own GAE recursion (so that they add up to what GAE computes)."""
    zeros, valid = torch.zeros_like(cmi), batch[fact("valid")].to(cmi.dtype)
    return {D_CMI: batch_gae(batch, zeros, cmi, gamma, lambda_),
            D_ONE: batch_gae(batch, zeros, valid, gamma, lambda_),
            A_V: batch_gae(batch, values, zeros, gamma, lambda_)}


def return_gap(cmi: torch.Tensor, payments: torch.Tensor, segments: torch.Tensor, eta: float):
    """phi -> L_Lambda(phi) (Eq. 6) over the decisions of a batch, with r(phi) of Eq. 5."""
    return lambda phi: return_gap_loss(redistribute(cmi, phi), payments, segments, eta)


def cafe_rewrite(credit, batch: dict, rl_module) -> tuple[torch.Tensor, dict]:
    """Steps 1-4 of the module docstring; ``credit`` is the CreditModule, ``rl_module`` the MultiRLModule."""
    config = credit.model_config
    valid = batch[fact("valid")]
    cmi = credit.cmi(batch)
    credit.last_returns = (cmi[valid], batch[ENV_REWARD][valid].to(cmi.dtype), batch[fact("segment")][valid])
    if credit.finetune_on:
        with torch.enable_grad():
            phi = newton_step(return_gap(*credit.last_returns, credit.phi_config.eta), credit.phi,
                              credit.phi_config.newton_damping)
        credit.phi.copy_(phi)
    rewards = redistribute(cmi, credit.phi)
    revenue = batch[fact("near_revenue")].to(cmi.dtype)
    mean, std = revenue[valid].mean(), revenue[valid].std().nan_to_num(1.0).clamp_min(1e-6)
    values = rl_module[config["policy"]].compute_values(batch)
    basis = advantage_basis(batch, values, cmi, config["gamma"], config["lambda_"])
    return rewards, {CMI: cmi, REVENUE_TARGET: (revenue - mean) / std, **basis}
