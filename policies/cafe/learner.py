"""CAFE's PPO learner (§4.4-4.6, Algorithm 1): the credit VAE, the bi-level phi update, fine-tuning.

On top of policies.shaping.ShapingPPOLearner (rewards rewritten by Eq. 5 before GAE, VAE trained by Eq. 4
in the same update), after every PPO minibatch loss (Algorithm 1, line 12) phi takes one step of its own
Adam optimiser (rate phi_lr, 1e-3 in §5.1) along the Eq. 14 hypergradient

    dF/dphi ~ dJ/dphi - dJ/dtheta^l (d2J/dtheta^l2)^-1 d2J/(dtheta^l dphi) - dL_Lambda/dphi,

with J(theta^l, phi) PPO's clipped surrogate (§4.6) on this minibatch, whose advantages are the exact
linear function of phi prepared by policies.cafe.connector (A = phi_1 D(CMI) + phi_2 D(1) + A_V,
standardised over the minibatch as PPO standardises them). Only theta^l (the actor's last layers, by name)
is differentiated: the rest of the actor enters J with detached weights, so the Hessian-vector products
of the inverse-HVP solve only run through theta^l. L_Lambda uses the whole train batch's trajectories.
After each update the FinetuneSchedule decides whether Newton fine-tuning (Eq. 19, applied to every new
batch by the connector) switches on; with finetune off this is CA-noFE.

Reads learner_config_dict["cafe"] = {"implicit": ImplicitGradConfig fields}; phi's settings (PhiConfig) and
whether fine-tuning is on are the credit module's (policies.cafe.credit_module).
Logged under the credit module: phi_1, phi_2, L_Lambda, the three Eq. 14 terms, implicit_step_s,
finetune_on, and (from the VAE loss) vae_loss, vae_reconstruction, vae_kl, cmi_mean/std/max.
A NaN or infinite phi, CMI or Hessian-vector product raises NonFiniteError naming it, before any update
is applied, so the iteration fails and no checkpoint is written for it.
"""

from __future__ import annotations

import time

import torch
from ray.rllib.core.columns import Columns

from policies.cafe.connector import A_V, D_CMI, D_ONE, return_gap
from policies.cafe.finite import check_finite
from policies.cafe.config import ImplicitGradConfig
from policies.cafe.hypergradient import implicit_hypergradient, select_parameters
from policies.shaping.connector import fact
from policies.shaping.learner import ShapingPPOLearner


def surrogate(policy, params: dict, theta_names: list[str], batch: dict, clip: float):
    """J(theta^l, phi): PPO's clipped surrogate (§4.6) with advantages linear in phi (module docstring)."""
    rows = batch[fact("valid")] & batch[Columns.LOSS_MASK].bool()
    obs, actions = batch[Columns.OBS][rows], batch[Columns.ACTIONS][rows].long()
    old_logp = batch[Columns.ACTION_LOGP][rows]
    d_cmi, d_one, a_v = batch[D_CMI][rows], batch[D_ONE][rows], batch[A_V][rows]

    def objective(theta_l, phi):
        weights = {**params, **dict(zip(theta_names, theta_l))}
        logits = torch.func.functional_call(policy, weights, ({Columns.OBS: obs},))[Columns.ACTION_DIST_INPUTS]
        logp = torch.log_softmax(logits, dim=-1).gather(1, actions.unsqueeze(1)).squeeze(1)
        ratio = torch.exp(logp - old_logp)
        advantage = phi[0] * d_cmi + phi[1] * d_one + a_v
        advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-4)
        return torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage).mean()

    return objective


class CAFELearner(ShapingPPOLearner):
    def build(self) -> None:
        super().build()
        cafe = self.config.learner_config_dict["cafe"]
        self._implicit = ImplicitGradConfig(**cafe["implicit"])
        self._implicit.validate()
        policy = self.module[self.shaping["policy"]]
        self._theta_names = list(select_parameters(policy, self._implicit.theta_l_layers))
        credit = self.module[self.shaping["shaper"]]
        self._phi = torch.nn.Parameter(credit.phi.detach().clone())
        self._phi_optimizer = torch.optim.Adam([self._phi], lr=credit.phi_config.phi_lr)

    def compute_losses(self, *, fwd_out, batch):
        losses = super().compute_losses(fwd_out=fwd_out, batch=batch)
        if self.shaping["policy"] in batch:
            self.update_phi(batch[self.shaping["policy"]])
        return losses

    def update_phi(self, batch: dict) -> None:
        """One Eq. 14 step of phi on a minibatch (Algorithm 1, line 12), then the fine-tuning schedule."""
        policy, credit = self.module[self.shaping["policy"]], self.module[self.shaping["shaper"]]
        start = time.perf_counter()
        with torch.no_grad():
            self._phi.copy_(check_finite("phi", credit.phi))  # the connector's Newton step or a restore may move it
        params = {name: p.detach() for name, p in policy.named_parameters()}
        inner = surrogate(policy, params, self._theta_names, batch, self.config.get_config_for_module(
            self.shaping["policy"]).clip_param)
        regulariser = return_gap(*credit.last_returns, credit.phi_config.eta)
        grad = implicit_hypergradient(inner, [params[n] for n in self._theta_names], self._phi, self._implicit,
                                      regulariser=regulariser)
        self._phi_optimizer.zero_grad()
        self._phi.grad = -grad.total  # ascend F (Eq. 7)
        self._phi_optimizer.step()
        with torch.no_grad():
            credit.phi.copy_(check_finite("phi", self._phi))
            schedule = credit.schedule()
            schedule.observe(credit.phi)
            credit.store_schedule(schedule)
            loss = regulariser(credit.phi)
        seconds = time.perf_counter() - start
        shaper = self.shaping["shaper"]
        for key, value in {"L_Lambda": loss, "dJ_dphi_1": grad.direct[0], "implicit_1": grad.implicit[0],
                           "dL_dphi_1": grad.regulariser[0], "dJ_dphi_2": grad.direct[1],
                           "implicit_2": grad.implicit[1], "dL_dphi_2": grad.regulariser[1],
                           "phi_1": credit.phi[0], "phi_2": credit.phi[1], "implicit_step_s": seconds,
                           "finetune_on": credit.finetune_on.float()}.items():
            self.metrics.log_value((shaper, key), value.item() if torch.is_tensor(value) else value, window=1)
