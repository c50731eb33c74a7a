"""ICES baseline (Li et al., ICML 2024, arXiv 2405.18110): individual contributions as intrinsic rewards.

A conditional VAE world model over the global state predicts the state change Delta s caused by the joint
action; agent i's contribution is the Bayesian surprise of its action, the KL between the prior over z
with all actions and the prior with agent i's action masked, turned into r_int = 1 - exp(-KL) (KL in
bits, averaged over z, as ICES does). Here the policy trains on r_E + beta * r_int, during training only
(the reward is rewritten in the learner; acting and evaluation never see it).

Simplified from the paper, and why:
- ICES is off-policy QMIX with a separate exploration policy pi_int mixed into behaviour; mixing behaviour
  policies breaks PPO's importance ratio in RLlib, so r_int is a reward bonus to the PPO policy instead.
- "Joint action" is agent i's own option slot plus its W_near workers' tasks as slots of i's option
  list (the same neighbourhood CAFE's credit model uses); the full joint action of hundreds of workers has
  no fixed-size encoding. The condition is the global state s_t (envs.csc_observation.STATE_FEATURES)
  together with o_t^i, which gives those slots their meaning.
- One network with a learned masked-action token (trained by masking the own action at random) instead
  of separate "global" and "local" copies; the prior is Enc(s, a), without ICES's baseline Delta s-hat
  input; Adam at the PPO rate instead of ClippedAdam with decay.
"""

from __future__ import annotations

import math

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from envs.csc_observation import STATE_FEATURES, ObsLayout
from policies.cafe.credit import LOGVAR_LIMIT, gaussian_kl
from policies.shaping.connector import ENV_REWARD, RewardShaper, fact
from rl_cs.experiment.shaping_config import ICESSettings

BONUS = "ices_intrinsic"
"""r_int = 1 - exp(-KL) per step (0 on the bootstrap step)."""


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class ICESModule(RewardShaper, TorchRLModule):
    """model_config: layout, ices (ICESSettings fields: the YAML ``ices:`` section)."""

    def setup(self):
        layout = ObsLayout(**self.model_config["layout"])
        self.settings = ices = ICESSettings(**self.model_config["ices"])
        ices.validate("ices")
        hidden, latent, embed = ices.hidden_dim, ices.latent_dim, ices.action_embed_dim
        self.beta, self.mask_prob, self.masked = ices.beta, ices.mask_prob, layout.num_actions
        self.context = nn.Sequential(nn.Linear(layout.size + STATE_FEATURES, hidden), nn.ReLU())
        self.own_action = nn.Embedding(layout.num_actions + 1, embed)
        self.neighbour_action = nn.Embedding(layout.num_actions, embed)
        self.prior = _mlp(hidden + 2 * embed, hidden, 2 * latent)
        self.recognition = _mlp(hidden + 2 * embed + STATE_FEATURES, hidden, 2 * latent)
        self.decoder = _mlp(latent + hidden, hidden, STATE_FEATURES)

    def _condition(self, batch: dict, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.context(torch.cat([batch[Columns.OBS], batch[fact("state")]], dim=-1))
        mask = batch[fact("neighbour_mask")].unsqueeze(-1).float()
        neighbours = (self.neighbour_action(batch[fact("neighbour_actions")].long()) * mask).sum(1)
        return context, torch.cat([context, self.own_action(action), neighbours], dim=-1)

    @staticmethod
    def _gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)

    def rewrite(self, batch: dict, rl_module):
        """r_E + beta * (1 - exp(-KL[p(z | s, a) || p(z | s, a with a_i masked)]))."""
        action = batch[Columns.ACTIONS].long()
        _, with_own = self._condition(batch, action)
        _, without = self._condition(batch, torch.full_like(action, self.masked))
        kl = gaussian_kl(*self._gaussian(self.prior(with_own)), *self._gaussian(self.prior(without)))
        bits = kl / (math.log(2.0) * self.settings.latent_dim)
        bonus = torch.where(batch[fact("valid")], 1.0 - torch.exp(-bits), torch.zeros_like(bits))
        return batch[ENV_REWARD] + self.beta * bonus, {BONUS: bonus}

    def shaping_loss(self, batch: dict):
        """CVAE ELBO: reconstruct Delta s from z ~ q(z | s, a, Delta s), KL to the prior p(z | s, a)."""
        batch = {key: value[batch[fact("valid")]] for key, value in batch.items()}
        action = batch[Columns.ACTIONS].long()
        action = torch.where(torch.rand(action.shape, device=action.device) < self.mask_prob,
                             torch.full_like(action, self.masked), action)
        context, condition = self._condition(batch, action)
        change = batch[fact("next_state")] - batch[fact("state")]
        mu_q, logvar_q = self._gaussian(self.recognition(torch.cat([condition, change], dim=-1)))
        z = mu_q + torch.randn_like(mu_q) * torch.exp(0.5 * logvar_q)
        reconstruction = 0.5 * (self.decoder(torch.cat([z, context], dim=-1)) - change).pow(2).sum(-1).mean()
        kl = gaussian_kl(mu_q, logvar_q, *self._gaussian(self.prior(condition))).mean()
        bonus = batch[BONUS]
        return reconstruction + kl, {"cvae_loss": (reconstruction + kl).detach(), "cvae_kl": kl.detach(),
                                     "intrinsic_mean": bonus.mean(), "intrinsic_max": bonus.max()}
