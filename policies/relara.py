"""ReLara baseline (Ma et al., ICML 2024): a reward agent (RA) that learns to propose rewards to the
policy agent (PA).

The RA sees the PA's observation and action, (o_t^i, one-hot a_t^i), and emits a proposed reward
r_P in [-1, 1]; the RA is trained on the environment reward; the PA (our shared PPO policy) trains on
r_E + beta * r_P (beta 0.2 as in ReLara), with r_P re-sampled from the current RA on the train batch
(ReLara re-samples r_P from the current RA on each critic batch too).

Simplified from the paper, and why:
- ReLara's RA is a SAC agent with its own replay buffer, twin critics and entropy tuning, over the
  continuous single-agent MDP whose states are (s, a). Here the RA is one network shared by all workers,
  trained on-policy by regression: its target is tanh of the standardised env-return advantage of the
  PA's action, G_t - b(o_t), with G_t the discounted env return to the end of the episode chunk and b a
  learned baseline of G. So the RA rewards actions whose env return beats the usual, which is what its
  SAC critic (rewarded by r_E) drives it to, without a second off-policy learner inside RLlib's PPO.
- Gaussian noise (std ``noise``, clipped to [-1, 1]) on r_P replaces SAC's stochastic policy.
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from envs.csc_observation import ObsLayout
from policies.shaping.connector import ENV_REWARD, RewardShaper, batch_gae, fact
from rl_cs.experiment.shaping_config import ReLaraSettings

PROPOSAL = "relara_proposal"
"""r_P given to the policy at each step (0 on the bootstrap step)."""
RETURN = "relara_return"
"""Discounted env return G_t to the end of the episode chunk, standardised over the train batch."""


class RewardAgent(RewardShaper, TorchRLModule):
    """model_config: layout, gamma, relara (ReLaraSettings fields: the YAML ``relara:`` section)."""

    def setup(self):
        self.layout = ObsLayout(**self.model_config["layout"])
        self.settings = relara = ReLaraSettings(**self.model_config["relara"])
        relara.validate("relara")
        hidden, self.beta, self.noise = relara.hidden_dim, relara.beta, relara.noise
        self.proposer = nn.Sequential(nn.Linear(self.layout.size + self.layout.num_actions, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Tanh())
        self.baseline = nn.Sequential(nn.Linear(self.layout.size, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def propose(self, batch: dict) -> torch.Tensor:
        """The RA's mean proposal r_P(o_t^i, a_t^i) in [-1, 1], shape (N,)."""
        one_hot = nn.functional.one_hot(batch[Columns.ACTIONS].long(), self.layout.num_actions).float()
        return self.proposer(torch.cat([batch[Columns.OBS], one_hot], dim=-1)).squeeze(-1)

    def rewrite(self, batch: dict, rl_module):
        """r_E + beta * r_P, r_P sampled around the RA's proposal; also the RA's training target G_t."""
        valid = batch[fact("valid")]
        proposal = (self.propose(batch) + self.noise * torch.randn(valid.shape, device=valid.device)).clamp(-1, 1)
        proposal = torch.where(valid, proposal, torch.zeros_like(proposal))
        env = batch[ENV_REWARD].float()
        returns = batch_gae(batch, torch.zeros_like(env), env, self.model_config["gamma"], 1.0)
        scale = returns[valid].std().nan_to_num(1.0).clamp_min(1e-6)
        return env + self.beta * proposal, {PROPOSAL: proposal, RETURN: returns / scale}

    def shaping_loss(self, batch: dict):
        """Baseline regression of G_t, and the proposal's regression onto tanh(standardised G_t - b(o_t))."""
        valid = batch[fact("valid")]
        returns = batch[RETURN][valid]
        baseline = self.baseline(batch[Columns.OBS][valid]).squeeze(-1)
        advantage = (returns - baseline).detach()
        target = torch.tanh(advantage / advantage.std().nan_to_num(1.0).clamp_min(1e-6))
        proposal_loss = (self.propose(batch)[valid] - target).pow(2).mean()
        baseline_loss = (baseline - returns).pow(2).mean()
        return proposal_loss + baseline_loss, {"proposal_loss": proposal_loss.detach(),
                                               "baseline_loss": baseline_loss.detach(),
                                               "proposal_mean": batch[PROPOSAL][valid].mean()}
