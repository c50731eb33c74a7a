"""The learner connector piece that rewrites the rewards PPO trains on, before advantage estimation.

Inserted right before RLlib's GeneralAdvantageEstimation (see policies.shaping.learner), it works on the
policy module's tensor batch: it adds the world's per-step facts as columns (policies.shaping.facts), asks
the shaper module (an RLModule inside the same MultiRLModule, so it is trained, synced and checkpointed
with the policy) for new rewards, and writes them under Columns.REWARDS. The environment's own rewards
are kept in ENV_REWARD. Nothing else in the batch changes; GAE then runs unchanged on the new rewards.
CAFE (Eq. 5), ICES (intrinsic bonus) and ReLara (reward agent) differ only in their RewardShaper.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from policies.shaping.facts import episode_facts

ENV_REWARD = "env_reward"
"""The world's reward (CSC split payments), before rewriting."""
FACT_COLUMNS = ("neighbour_actions", "neighbour_mask", "near_revenue", "state", "next_state", "segment", "episode",
                "valid", "event_task", "event_weight")
"""StepFacts fields added to the batch, each as column "facts_<name>"."""


def fact(name: str) -> str:
    return f"facts_{name}"


def batch_gae(batch: dict, values: torch.Tensor, rewards: torch.Tensor, gamma: float, lambda_: float) -> torch.Tensor:
    """GAE advantages of ``rewards`` at ``values`` over a policy batch's rows, with RLlib's own recursion
    (episode-chunk boundaries from the batch's terminateds/truncateds), as GeneralAdvantageEstimation does."""
    numpy = [x.detach().cpu().numpy().astype(np.float32) for x in (values, rewards, batch[Columns.TERMINATEDS],
                                                                   batch[Columns.TRUNCATEDS])]
    advantages = compute_value_targets(*numpy, gamma=gamma, lambda_=lambda_) - numpy[0]
    return torch.as_tensor(advantages, device=rewards.device)


class RewardShaper(abc.ABC):
    """What an RLModule must provide to rewrite the policy's rewards (mixed into a TorchRLModule)."""

    @abc.abstractmethod
    def rewrite(self, batch: dict, rl_module) -> tuple[torch.Tensor, dict[str, Any]]:
        """New rewards (N,) for the policy batch (only rows with facts_valid are used) and extra columns
        to add to it. Called under torch.no_grad(); ``rl_module`` is the whole MultiRLModule."""

    @abc.abstractmethod
    def shaping_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The shaper's own training loss on a (mini)batch of the policy module, and metrics to log."""

    def note_sampling(self, env_steps: int) -> None:
        """Called by RewriteRewards before ``rewrite`` with the env steps of the episodes behind the batch
        (CAFE's fine-tuning schedule reads the training revenue per env step). Default: nothing."""

    rewrite_metrics: dict | None = None
    """Scalars about the last ``rewrite`` that RewriteRewards logs under the shaper's id (None: none)."""

    def _forward(self, batch, **kwargs):
        """No agent maps to a shaper: RLlib's forward passes never need it."""
        return {}


class RewriteRewards(ConnectorV2):
    """Learner piece: facts columns + the shaper's rewards for ``policy_id``'s batch (see module docstring)."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, policy_id: str, shaper_id: str,
                 num_near_workers: int, **kwargs):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.policy_id, self.shaper_id, self.num_near_workers = policy_id, shaper_id, num_near_workers

    def __call__(self, *, rl_module, batch: dict, episodes: list, metrics=None, **kwargs):
        if self.policy_id not in batch:
            return batch
        module_batch = batch[self.policy_id]
        sa_episodes = [e for e in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
                       if e.module_id in (None, self.policy_id)]
        facts = episode_facts(sa_episodes, self.num_near_workers)
        rewards = module_batch[Columns.REWARDS]
        assert len(facts.valid) == len(rewards), (len(facts.valid), len(rewards))
        for name in FACT_COLUMNS:
            module_batch[fact(name)] = torch.as_tensor(np.asarray(getattr(facts, name)), device=rewards.device)
        module_batch[ENV_REWARD] = rewards
        shaper = rl_module[self.shaper_id]
        shaper.note_sampling(sum(len(e) for e in episodes))
        with torch.no_grad():
            new_rewards, columns = shaper.rewrite(module_batch, rl_module)
        valid = module_batch[fact("valid")]
        module_batch[Columns.REWARDS] = torch.where(valid, new_rewards.to(rewards.dtype), torch.zeros_like(rewards))
        module_batch.update(columns)
        if metrics is not None and bool(valid.any()):
            # how far the rewrite moved the world's reward, and how often the policy chose tau_0 (action 0)
            change = (module_batch[Columns.REWARDS] - rewards)[valid].abs().mean()
            metrics.log_value((self.shaper_id, "reward_change_abs_mean"), float(change), window=1)
            idle = (module_batch[Columns.ACTIONS][valid] == 0).float().mean()
            metrics.log_value((self.shaper_id, "tau0_share"), float(idle), window=1)
            for key, value in (shaper.rewrite_metrics or {}).items():
                metrics.log_value((self.shaper_id, key), float(value), window=1)
        return batch
