"""DyPS at evaluation: the trained group policies, with a group per agent drawn at each episode's start by
the trained selector (Eq. 13), exactly as in training -- h_n from the VLSTM over agent n's previous episode
in this evaluation stream (zeros in the first), z_m from the CVAE, g_n ~ P[n] (seeded by the episode seed),
or argmax_m P[n, m] when evaluating deterministically. The mapping is fixed for the episode.

The histories are the actor's own record of what it saw: each step's observation and chosen action, and the
per-agent rewards of the previous step that the worlds leave on their decision view (the package gridworlds'
``rlcs_last_rewards``, envs.gridworld; the cell worlds' ``last_rewards``, envs.ridehailing / envs.vaccine; 0
where a world does neither). The episode's final observation and rewards come after the last ``act`` call and
are not seen: the history ends one step early.

On CSC (the selector module's ``histories`` is ``decisions``, policies.dyps.csc) a history is the worker's own
decisions, and CSC's decision view carries no rewards: there ``prepare(env)`` has the env report each step's
rewards and observations to the actor (its ``step`` wrapped on that env instance), which sums a worker's
rewards between two of its decisions and keeps the final observation the world gives every worker that
acted -- the same (s, a, r) sequence RLlib recorded in training, final observation included.
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
        self._drawn = False
        self.decisions = self.selector.model_config.get("histories") == "decisions"
        """Histories of decisions with rewards read from the env's steps (CSC; module docstring)."""
        self._earned: dict[int, float] = {}
        """decisions: per agent, the reward it received since its last action."""

    def reset(self, seed: int | None) -> None:
        for agent, steps in self._current.items():
            t = len(steps["rewards"])  # actions whose outcome (the next observation and its reward) was seen
            if t >= 1:  # obs s_0..s_t, the t actions and rewards between them
                self._history[agent] = (np.stack(steps["obs"][: t + 1]), np.asarray(steps["actions"][:t]),
                                        np.asarray(steps["rewards"], np.float32))
        self._current, self._earned = {}, {}
        self._drawn = False
        super().reset(seed)

    def prepare(self, env) -> None:
        """Before an episode (rl_cs.evaluation.run_episode): on CSC, have ``env`` report its steps to this actor."""
        if not self.decisions:
            return
        if getattr(env, "_dyps_actor", None) is None:
            step = env.step

            def reporting_step(actions):
                result = step(actions)
                env._dyps_actor.observe_step(*result[:4])
                return result

            env.step = reporting_step
        env._dyps_actor = self

    def observe_step(self, obs: dict, rewards: dict, terminateds: dict, truncateds: dict) -> None:
        """decisions: one env step's outcome -- rewards summed per agent until its next action; at the episode's
        end each agent's final observation and the reward of its last action close its history."""
        for agent, reward in rewards.items():
            i = agent_index(agent)
            self._earned[i] = self._earned.get(i, 0.0) + float(reward)
        if not (terminateds.get("__all__") or truncateds.get("__all__")):
            return
        for agent, observation in obs.items():
            steps = self._current.get(agent_index(agent))
            if steps is not None and len(steps["obs"]) == len(steps["actions"]):
                steps["rewards"].append(self._earned.pop(agent_index(agent), 0.0))
                steps["obs"].append(self._state(observation))

    def assign(self, agents: list) -> dict:
        if not self._drawn:  # one draw per episode, for every agent (some act only later in it)
            n = self.selector.num_agents
            self.record = self.selector.select([self._history.get(i) for i in range(n)], self.generator,
                                               deterministic=self.deterministic)
            self._drawn = True
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
                if self.decisions:
                    steps["rewards"].append(self._earned.get(i, 0.0))
                else:
                    steps["rewards"].append(float(rewards[i]) if rewards is not None else 0.0)
            self._earned[i] = 0.0
            steps["obs"].append(self._state(obs[agent]))
            steps["actions"].append(int(action))
        return actions

    def _state(self, observation) -> np.ndarray:
        return np.asarray(observation, np.float32).ravel()[: self.selector.state_dim]
