"""``lbf``: level-based foraging from the PyPI package lbforaging 2.0.0 (never re-implemented), as an RLlib
MultiAgentEnv, sized as in DyPS (paper 002) Table 1 (envs.lbf_config).

env_config (plain data, as Tune passes it): ``{"world": LBFConfig or its dict}``, plus the learned methods'
options ``agent_id``, ``global_state``, ``team_reward`` (envs.gridworld; all off by default).

The world (the package's ``ForagingEnv``): agents with levels (1..max_player_level) and food items with
levels on a square grid; food never spawns on the border or next to other food. Agents: ``agent_0`` ..
``agent_{n-1}`` in the package's player order; all act every step.

Observation (per agent, the package's vector observation, ``grid_observation=False``): a float32 vector of
length 3 * max_num_food + 3 * players:

* food slots: for each food the agent sees, (row, col, level), in row-major order of the visible window;
  unused slots are (-1, -1, 0);
* player slots: the agent itself first, then the other agents it sees in player order, each (row, col,
  level); unseen agents are (-1, -1, 0).

Coordinates are those of the agent's view window, clipped at the border (the package's
``_transform_to_neighborhood``); with ``sight = 0`` (the whole field, the default) the window is the whole
grid and coordinates are absolute. The observation space is the package's own Box (low -1, high the
largest coordinate / level).

Action: Discrete(6), the package's ``Action``: 0 none, 1 north (row - 1), 2 south (row + 1), 3 west
(col - 1), 4 east (col + 1), 5 load. An action the package deems invalid (a move off the grid or onto food,
load with no adjacent food) is silently replaced by none; agents moving onto the same cell all stay.

Reward (the package's, ``normalize_reward=True``): when the loading agents adjacent to a food have total
level >= the food's level, the food is removed and each of them gets ``level_i * food_level /
(sum of their levels * sum of all food levels spawned at reset)``; so the rewards of all agents over an
episode sum to the share of spawned food (by level) collected, in [0, 1] (DyPS Table 2's LBF "Return").
A failed load costs each loader ``penalty`` (0 by default).

Reset: the package places each agent on a cell that is free of food and of every agent's position --
including the positions the not-yet-placed agents held in the previous episode -- so the package's own
reset(seed) on a used env does not repeat the episode it gives on a fresh env. Before each reset this wrapper
clears the agents' positions (what a fresh package env has), so reset(seed) always gives the package's
fresh-env episode for that seed (RLlib reuses envs; the conformance suite checks it).

Episode end: the package returns one ``done`` both when every food is collected and when
``max_episode_steps`` is reached; this wrapper reports the first as terminated and the second (food left)
as truncated, for every agent and ``__all__``. Business numbers (``episode_metrics``): return, food items
collected, food items spawned (LBF (2)'s 10 food on 10 x 10 sometimes get only 9: the package gives up
placing food after 1,000 attempts, and so does this world), share of spawned food levels collected, steps.
"""

from __future__ import annotations

import numpy as np

from envs.gridworld import PackageMultiAgentEnv
from envs.lbf_config import LBFConfig
from rl_cs.config import from_dict


def make_package_env(config: LBFConfig):
    """The package's env for ``config`` (what the wrapper steps; also the raw baseline of `rl-cs bench`)."""
    from lbforaging.foraging.environment import ForagingEnv

    return ForagingEnv(**config.package_kwargs())


class LBFEnv(PackageMultiAgentEnv):
    """See the module docstring for observation, action, reward and episode end."""

    def __init__(self, config: dict | None = None):
        config = dict(config or {})
        self.config = from_dict(LBFConfig, config.get("world"), "world").validate("world")
        super().__init__(make_package_env(self.config), self.config.num_agents, config)
        self._spawned_items = 0
        self._spawned_level = 0.0
        self._collected_items = 0

    def _before_reset(self) -> None:
        for player in self.raw.players:  # a fresh package env's players have no position (module docstring)
            player.position = None

    def _ends(self, done: bool) -> tuple[bool, bool]:
        if not done:
            return False, False
        cleared = not self.raw.field.any()
        return cleared, not cleared

    def _begin(self) -> None:
        field = self.raw.field
        self._spawned_items = int(np.count_nonzero(field))
        self._spawned_level = float(field.sum())
        self._collected_items = 0

    def _snapshot(self):
        return int(np.count_nonzero(self.raw.field))

    def _count(self, before, rewards):
        left = int(np.count_nonzero(self.raw.field))
        collected = before - left
        self._collected_items += collected
        return {"food_collected": collected, "food_left": left}

    def _metrics(self) -> dict[str, float]:
        left_level = float(self.raw.field.sum())
        share = 1.0 - left_level / self._spawned_level if self._spawned_level else 0.0
        return {"food_collected": float(self._collected_items), "food_spawned": float(self._spawned_items),
                "food_share": share}


def env_config(world: LBFConfig) -> dict:
    """The RLlib env_config of an LBF world (plain data only)."""
    from rl_cs.config import to_dict

    return {"world": to_dict(world)}
