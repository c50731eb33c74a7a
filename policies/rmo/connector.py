"""The learner connector piece of RMO: the columns its learner needs beyond PPO's, from the world's infos.

Inserted right before RLlib's GeneralAdvantageEstimation (policies.rmo.learner), on the acting module's batch
(episodes already extended by the bootstrap step, so row t has infos[t] with its observation and infos[t + 1]
with what its action at t earned):

- STATE: the global state s_t (infos[t]["state"]) the centralised critic reads -- GAE's own value pass
  needs it, hence the position before GAE;
- SHAPED_REWARDS: the shaped reward of Eq. 3 earned by the action at t (infos[t + 1]["shaped"]); the reward
  column keeps the world's sparse reward (theta's MDP);
- SHAPED_ADVANTAGES, SHAPED_TARGETS: GAE (Eq. 17) of the shaped rewards on the critic's shaped head, with
  RLlib's recursion and standardisation: theta-hat's MDP;
- UTILITY, MATCHED: the [u_skill, u_dist, u_time] of the pair the action at t led to (infos[t + 1]["utility"])
  and whether it led to a match: the u of the eta meta-gradient (Eq. 15);
- VALUES: both critic heads on every row (no gradient), reused by GAE instead of a second critic pass.
"""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from policies.rmo.network import STATE, VALUES

SHAPED_REWARDS = "rmo_shaped_rewards"
SHAPED_ADVANTAGES = "rmo_shaped_advantages"
SHAPED_TARGETS = "rmo_shaped_value_targets"
UTILITY = "rmo_utility"
MATCHED = "rmo_matched"


def episode_columns(single_agent_episodes) -> dict[str, np.ndarray]:
    """STATE, SHAPED_REWARDS, UTILITY, MATCHED for the rows of the given episode chunks, in batch order."""
    states, shaped, utility, matched = [], [], [], []
    for episode in single_agent_episodes:
        steps = len(episode)  # real steps + the bootstrap step
        infos = episode.get_infos()
        assert len(infos) == steps + 1, (len(infos), steps)
        if not all("state" in info for info in infos[:steps]):
            raise ValueError("the episodes' infos carry no global state: build the DASC world with "
                             "env_config['global_state'] = True (RMO's builder does)")
        states.append(np.stack([info["state"] for info in infos[:steps]]))
        after = infos[1:]  # what the action at t earned arrives with the observation at t + 1
        real = np.arange(steps) < steps - 1  # the bootstrap row earned nothing
        shaped.append(np.where(real, [float(info.get("shaped", 0.0)) for info in after], 0.0))
        utility.append(np.array([info.get("utility", (0.0, 0.0, 0.0)) if ok else (0.0, 0.0, 0.0)
                                 for info, ok in zip(after, real)], dtype=np.float64).reshape(steps, 3))
        matched.append(np.array([ok and "utility" in info for info, ok in zip(after, real)]))
    return {STATE: np.concatenate(states).astype(np.float32),
            SHAPED_REWARDS: np.concatenate(shaped).astype(np.float32),
            UTILITY: np.concatenate(utility).astype(np.float32), MATCHED: np.concatenate(matched)}


def gae(values: np.ndarray, rewards: np.ndarray, terminateds: np.ndarray, truncateds: np.ndarray, gamma: float,
        lambda_: float) -> tuple[np.ndarray, np.ndarray]:
    """(standardised advantages, value targets) with RLlib's own recursion, as GeneralAdvantageEstimation."""
    targets = compute_value_targets(values=values, rewards=rewards, terminateds=terminateds, truncateds=truncateds,
                                    gamma=gamma, lambda_=lambda_)
    advantages = targets - values
    return (advantages - advantages.mean()) / max(1e-4, float(advantages.std())), targets


class RMOColumns(ConnectorV2):
    """Learner piece adding RMO's columns to ``module_id``'s batch (see the module docstring)."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, module_id: str, gamma: float,
                 lambda_: float, **kwargs):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.module_id, self.gamma, self.lambda_ = module_id, gamma, lambda_

    def __call__(self, *, rl_module, batch: dict, episodes: list, metrics=None, **kwargs):
        if self.module_id not in batch:
            return batch
        module_batch = batch[self.module_id]
        sa_episodes = [e for e in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
                       if e.module_id in (None, self.module_id)]
        columns = episode_columns(sa_episodes)
        rewards = module_batch[Columns.REWARDS]
        assert len(columns[SHAPED_REWARDS]) == len(rewards), (len(columns[SHAPED_REWARDS]), len(rewards))
        device = rewards.device
        for name, values in columns.items():
            module_batch[name] = torch.as_tensor(values, device=device)
        module = rl_module[self.module_id]
        with torch.no_grad():
            values = module.values(module_batch).float()
        module_batch[VALUES] = values
        numpy = [module_batch[key].detach().cpu().numpy().astype(np.float32)
                 for key in (Columns.TERMINATEDS, Columns.TRUNCATEDS)]
        advantages, targets = gae(values[:, 1].cpu().numpy(), columns[SHAPED_REWARDS], *numpy, self.gamma,
                                  self.lambda_)
        module_batch[SHAPED_ADVANTAGES] = torch.as_tensor(advantages, dtype=torch.float32, device=device)
        module_batch[SHAPED_TARGETS] = torch.as_tensor(targets, dtype=torch.float32, device=device)
        if metrics is not None:
            mask = module_batch.get(Columns.LOSS_MASK)
            real = mask.bool().cpu().numpy() if mask is not None else np.ones(len(rewards), dtype=bool)
            actions = module_batch[Columns.ACTIONS].cpu().numpy()[real]
            metrics.log_value((self.module_id, "recommend_share"), float((actions == 1).mean()) if len(actions) else 0.0,
                              window=1)
            metrics.log_value((self.module_id, "matched_share"), float(columns[MATCHED][real].mean()) if real.any()
                              else 0.0, window=1)
            metrics.log_value((self.module_id, "shaped_reward_mean"), float(columns[SHAPED_REWARDS][real].mean())
                              if real.any() else 0.0, window=1)
        return batch
