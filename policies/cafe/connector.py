"""What CAFE writes into the policy's train batch before GAE (§4.3-4.6), via policies.shaping.RewriteRewards.

Once per training iteration, on the whole train batch, under torch.no_grad():
1. CMI_t^i with the credit VAE (Eq. 3);
2. the batch's contributions: which decision rows contributed to which completed task, and what the world
   paid them (policies.cafe.credit.contributions);
3. the fine-tuning schedule sees the iteration's training revenue (payments per env step); the batch's
   per-trajectory linear returns join the rolling buffer; if fine-tuning is on (Algorithm 1, lines 5-6),
   phi <- the pulled-back Newton step of Eq. 19 on the buffer's L_Lambda (policies.cafe.finetune);
4. the rewards PPO trains on: r(phi) (Eq. 5 as reinterpreted in policies.cafe.credit: only realised
   payments are redistributed, tau_0 rows get 0);
5. the advantage basis for the learner's differentiable J(theta^l, phi) (Eq. 14): GAE is linear in the
   rewards, so with D(x) the GAE of rewards x at zero values, A(phi) = A_OFFSET + phi_1 D(dr/dphi_1)
   + phi_2 D(dr/dphi_2), exactly for the linear "mix" redistribution and to first order at the batch's phi
   (hence with the exact Eq. 14 gradient there) for "weights";
6. the payment advantages A_PAY = GAE(eta rho) at the critic's values, for the outer objective J_out;
7. RLlib's own GAE columns for PPO (Postprocessing.ADVANTAGES, standardised over the batch, and
   VALUE_TARGETS), computed exactly as GeneralAdvantageEstimation would from the same rewards, from the critic
   values step 5 needs anyway: CAFE's learner (policies.cafe.learner.GivenAdvantageEstimation) then skips
   RLlib's second critic pass over the train batch for this module (issue 9). Not for a stateful (padded)
   policy, which RLlib's GAE handles itself.

L_Lambda (Eq. 6) takes one trajectory lambda per multi-agent episode chunk: the summed redistributed rewards
of all its workers against eta times the platform payments it realised.
"""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from policies.cafe.credit import contributions, redistribute, reward_jacobian
from policies.cafe.finetune import newton_step
from policies.cafe.regulariser import linear_return_gap, linear_returns
from policies.shaping.connector import ENV_REWARD, batch_gae, fact

CMI = "cafe_cmi"
"""CMI_t^i of Eq. 3 per step (0 on the appended bootstrap step)."""
REVENUE_TARGET = "cafe_revenue_target"
"""The decoder's target: revenue realised near the decision, standardised over the train batch (Eq. 4)."""
D_PHI_1, D_PHI_2, A_OFFSET = "cafe_d_phi_1", "cafe_d_phi_2", "cafe_a_offset"
"""The advantage basis: A(phi) = A_OFFSET + phi_1 * D_PHI_1 + phi_2 * D_PHI_2."""
A_PAY = "cafe_a_pay"
"""GAE of eta x the world's payments at the critic's values: the outer objective's advantages."""


def batch_contributions(batch: dict):
    """policies.cafe.credit.Contributions of a policy batch's rows, from its facts columns."""
    return contributions(batch[ENV_REWARD].float(), batch[fact("episode")], batch[fact("event_task")],
                         batch[fact("event_weight")], batch[fact("valid")])


def gae_targets(batch: dict, values: torch.Tensor, rewards: torch.Tensor, gamma: float, lambda_: float) -> np.ndarray:
    """GAE value targets of ``rewards`` at ``values``, exactly as RLlib's GeneralAdvantageEstimation computes
    them (float32 numpy, its recursion, the batch's episode-chunk boundaries); advantages = targets - values."""
    numpy = [x.detach().cpu().numpy().astype(np.float32) for x in (values, rewards, batch[Columns.TERMINATEDS],
                                                                   batch[Columns.TRUNCATEDS])]
    return compute_value_targets(*numpy, gamma=gamma, lambda_=lambda_)


def ppo_gae_columns(targets: np.ndarray, values: torch.Tensor) -> dict[str, torch.Tensor]:
    """RLlib's GeneralAdvantageEstimation output for a non-stateful module from its value targets: the
    advantages standardised over the batch (numpy, as RLlib does) and the value targets, as tensors."""
    advantages = targets - values.detach().cpu().numpy().astype(np.float32)
    advantages = (advantages - advantages.mean()) / max(1e-4, advantages.std())
    return {Postprocessing.ADVANTAGES: torch.as_tensor(advantages, device=values.device),
            Postprocessing.VALUE_TARGETS: torch.as_tensor(targets, device=values.device)}


def advantage_basis(batch: dict, values: torch.Tensor, rewards: torch.Tensor, jacobian: torch.Tensor,
                    phi: torch.Tensor, gamma: float, lambda_: float,
                    targets: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """D(dr/dphi_1), D(dr/dphi_2) and A_OFFSET with RLlib's own GAE recursion (so that at the batch's phi
    they add up to what GAE computes on ``rewards``); ``targets``: gae_targets(batch, values, rewards, ...) if
    already computed."""
    zeros = torch.zeros_like(rewards)
    d1 = batch_gae(batch, zeros, jacobian[:, 0], gamma, lambda_)
    d2 = batch_gae(batch, zeros, jacobian[:, 1], gamma, lambda_)
    if targets is None:
        targets = gae_targets(batch, values, rewards, gamma, lambda_)
    full = torch.as_tensor(targets - values.detach().cpu().numpy().astype(np.float32), device=rewards.device)
    return {D_PHI_1: d1, D_PHI_2: d2, A_OFFSET: full - phi[0] * d1 - phi[1] * d2}


def cafe_rewrite(credit, batch: dict, rl_module) -> tuple[torch.Tensor, dict]:
    """Steps 1-6 of the module docstring; ``credit`` is the CreditModule, ``rl_module`` the MultiRLModule."""
    config, phi_config = credit.model_config, credit.phi_config
    eta, form, floor = phi_config.eta, phi_config.redistribution, phi_config.weight_floor
    by_work = phi_config.cmi_split == "cmi_x_work"
    valid = batch[fact("valid")]
    payments = torch.where(valid, batch[ENV_REWARD].float(), torch.zeros_like(batch[ENV_REWARD].float()))
    cmi = credit.cmi(batch)
    parts = batch_contributions(batch)
    segments = batch[fact("segment")]

    def returns_at(phi):
        rewards = redistribute(cmi, phi, parts, eta, form, floor, by_work)
        jacobian = reward_jacobian(cmi, phi, parts, eta, form, floor, by_work)
        return linear_returns(rewards, jacobian, phi, payments, segments)

    # Algorithm 1, lines 4-6: the schedule sees this iteration's training revenue; fine-tune on the buffer
    revenue_rate = float(payments.sum()) / max(credit.pending_env_steps, 1)
    schedule = credit.schedule()
    schedule.observe(revenue_rate)
    credit.store_schedule(schedule)
    phi_hat = credit.phi.clone()
    credit.push_returns(returns_at(phi_hat))
    buffer_loss = linear_return_gap(credit.buffered_returns(), eta)
    newton = {}
    if credit.finetune_on:
        if not bool(credit.finetune_started):
            credit.phi_before_finetune.copy_(phi_hat)
            credit.finetune_started.fill_(True)
        with torch.enable_grad():
            phi = newton_step(buffer_loss, phi_hat.double(), phi_config.newton_damping)
        credit.phi.copy_(phi.clamp(*phi_config.phi_bounds).to(credit.phi.dtype))
        newton = {"newton_step_norm": float((credit.phi - phi_hat).norm()),
                  "L_Lambda_buffer_before": float(buffer_loss(phi_hat.double())),
                  "L_Lambda_buffer_after": float(buffer_loss(credit.phi.double()))}

    phi = credit.phi.clone()
    # 0 on non-decision rows, as policies.shaping.RewriteRewards writes them (the GAE below runs on these)
    rewards = torch.where(valid, redistribute(cmi, phi, parts, eta, form, floor, by_work), 0.0)
    jacobian = reward_jacobian(cmi, phi, parts, eta, form, floor, by_work)
    credit.last_returns = linear_returns(rewards, jacobian, phi, payments, segments)
    revenue = batch[fact("near_revenue")].to(cmi.dtype)
    mean, std = revenue[valid].mean(), revenue[valid].std().nan_to_num(1.0).clamp_min(1e-6)
    policy = rl_module[config["policy"]]
    values = policy.compute_values(batch)
    gamma, lambda_ = config["gamma"], config["lambda_"]
    targets = gae_targets(batch, values, rewards, gamma, lambda_)
    basis = advantage_basis(batch, values, rewards, jacobian, phi, gamma, lambda_, targets)
    pay_advantages = batch_gae(batch, values, eta * payments, gamma, lambda_)
    ppo = {} if policy.is_stateful() else ppo_gae_columns(targets, values)
    credit.rewrite_metrics = rewrite_metrics(batch, cmi, rewards, payments, parts, credit, revenue_rate, schedule,
                                             eta, newton)
    return rewards, {CMI: cmi, REVENUE_TARGET: (revenue - mean) / std, A_PAY: pay_advantages, **basis, **ppo}


def rewrite_metrics(batch, cmi, rewards, payments, parts, credit, revenue_rate, schedule, eta, newton) -> dict:
    """Per-iteration figures logged under the credit module (TensorBoard via the learner's metrics)."""
    valid = batch[fact("valid")]
    idle = valid & (batch[Columns.ACTIONS] == 0)
    task = valid & ~idle
    groups = parts.num_groups
    size = torch.bincount(parts.group, minlength=groups).float() if groups else torch.zeros(1)
    total = float(payments.sum())

    def mean(x, rows):
        return float(x[rows].mean()) if bool(rows.any()) else 0.0

    return {
        "cmi_mean_tau0": mean(cmi, idle), "cmi_mean_task": mean(cmi, task),
        "reward_mean_tau0": mean(rewards, idle), "reward_mean_task": mean(rewards, task),
        "rewarded_share": mean((rewards != 0).float(), valid),
        "reward_sum_over_eta_payments": float(rewards.sum()) / (eta * total) if total else 1.0,
        "contributors_per_task": float(size.mean()) if groups else 0.0,
        "shared_task_share": float((size > 1).float().mean()) if groups else 0.0,
        "training_revenue_per_env_step": revenue_rate, "plateau_stale_iterations": float(schedule.stale),
        "buffer_trajectories": float(credit.buffer_count), **newton,
    }
