"""DyPS at evaluation: the trained group policies, with a group per agent drawn at each episode's start by
the trained selector (Eq. 13), exactly as in training -- h_n from the VLSTM over agent n's previous episode
in this evaluation stream (zeros in the first), z_m from the CVAE, g_n ~ P[n] (seeded by the episode seed),
or argmax_m P[n, m] when evaluating deterministically. The mapping is fixed for the episode.

The histories are the actor's own record of what it saw: each step's observation and chosen action, and the
per-agent rewards of the previous step that the worlds leave on their decision view (the package gridworlds'
``rlcs_last_rewards``, envs.gridworld; the cell worlds' ``last_rewards``, envs.ridehailing / envs.vaccine; 0
where a world does neither). The episode's final observation and rewards come after the last ``act`` call and
are not seen: the history ends one step early.
"""

from __future__ import annotations

import numpy as np

from policies.dyps.rllib import DYPS
from policies.sharing.actor import MultiModuleActor
from policies.sharing.schemes import agent_index, group_module


class DyPSActor(MultiModuleActor):
    """``modules``: the checkpoint's modules (``group_<m>`` and ``dyps``); ``options``: the world options."""

    def __init__(self, modules: dict, options: dict, name: str = "dyps", deterministic: bool = False, **kwargs):
        self.selector = modules[DYPS]
        policies = {mid: module for mid, module in modules.items() if mid != DYPS}
        super().__init__(policies, None, options, name=name, deterministic=deterministic, **kwargs)
        self._history: dict[int, tuple] = {}
        self._current: dict[int, dict] = {}
        self.record: dict | None = None

    def reset(self, seed: int | None) -> None:
        for agent, steps in self._current.items():
            if len(steps["actions"]) >= 2:  # obs s_0..s_{T-1}, the actions and rewards between them
                self._history[agent] = (np.stack(steps["obs"]), np.asarray(steps["actions"][:-1]),
                                        np.asarray(steps["rewards"], np.float32))
        self._current = {}
        super().reset(seed)

    def assign(self, agents: list) -> dict:
        n = self.selector.num_agents
        self.record = self.selector.select([self._history.get(i) for i in range(n)], self.generator,
                                           deterministic=self.deterministic)
        return {agent: group_module(self.record["groups"][agent_index(agent)]) for agent in agents}

    def act(self, view, obs: dict) -> dict:
        actions = super().act(view, obs)
        rewards = getattr(view, "rlcs_last_rewards", None)
        if rewards is None:
            rewards = getattr(view, "last_rewards", None)
        for agent, action in actions.items():
            i = agent_index(agent)
            steps = self._current.setdefault(i, {"obs": [], "actions": [], "rewards": []})
            if steps["actions"]:  # the reward of this agent's previous action arrived with this observation
                steps["rewards"].append(float(rewards[i]) if rewards is not None else 0.0)
            steps["obs"].append(np.asarray(obs[agent], np.float32).ravel()[: self.selector.state_dim])
            steps["actions"].append(int(action))
        return actions
