"""A PettingZoo Parallel view of any RLlib ``MultiAgentEnv`` (so PettingZoo tools, e.g. ``parallel_api_test``,
run on this repository's worlds unchanged).

RLlib and PettingZoo disagree on one thing that matters for event-driven worlds. In RLlib an agent acts in a
step exactly when it is in the observation dict, and it may skip any number of steps between decisions (a busy
CSC worker, a subtask agent waiting for its inputs). PettingZoo's Parallel API has no "live but not acting this
step": every agent in ``agents`` gets an observation and is asked for an action each step, and an agent that
leaves ``agents`` must be terminated or truncated and may never come back (``parallel_api_test`` asserts both).
The view therefore maps:

* ``agents``: every agent that has had an observation this episode and is not done yet (in order of first
  appearance). An agent joins when the world first observes it and leaves when the world terminates or
  truncates it (its own flag or ``__all__``); ``__all__`` itself is stripped.
* ``acting_agents``: the agents the world observed in its last reset/step, i.e. those RLlib would ask for an
  action. Only their actions are forwarded to the world; actions of waiting agents are dropped.
* observations: the world's fresh observation for acting agents, the agent's last observation again for
  waiting ones; ``infos[agent]["acting"]`` tells which (infos are shallow copies of the world's, plus this key).
* rewards: every reward the world returns for a live agent is delivered in the same step, whether or not the
  agent has an observation (waiting agents stay live, so nothing has to be held back). A reward for an agent
  not yet observed is held and added to its reward in the step it first appears (RLlib likewise holds it until
  its first observation). A reward PettingZoo cannot deliver (the agent already left, or it never appeared
  before the episode ended) is never dropped silently: it is added to ``undelivered_rewards`` (RLlib itself
  raises on data for an agent that is done), which conformance checks report as a lost reward.
* An observation for an agent that already left (a reused id) raises ``ValueError``: PettingZoo forbids
  reviving an agent and RLlib raises on it too.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from pettingzoo import ParallelEnv

ACTING = "acting"
"""Key added to each agent's infos: True when its observation is fresh (the world asks for its action)."""


class ParallelView(ParallelEnv):
    """``ParallelView(env)``: the PettingZoo Parallel API over an RLlib MultiAgentEnv (see module docstring)."""

    metadata = {"name": "rllib_parallel_view", "render_modes": []}

    def __init__(self, env: Any):
        self.env = env
        self.possible_agents = list(env.possible_agents)
        self.agents: list = []
        self.acting_agents: list = []
        self.undelivered_rewards: dict = {}
        self.last_raw_step: tuple | None = None
        """The world's own (obs, rewards, terminateds, truncateds, infos) of the last step, for diagnostics."""
        self._observation_spaces: dict = {}
        self._action_spaces: dict = {}
        self._last_obs: dict = {}
        self._done: set = set()
        self._pending: dict = {}

    # ------------------------------------------------------------------ spaces (one object per agent, cached)
    def observation_space(self, agent) -> gym.Space:
        if agent not in self._observation_spaces:
            getter = getattr(self.env, "get_observation_space", None)
            self._observation_spaces[agent] = getter(agent) if getter else self.env.observation_spaces[agent]
        return self._observation_spaces[agent]

    def action_space(self, agent) -> gym.Space:
        if agent not in self._action_spaces:
            getter = getattr(self.env, "get_action_space", None)
            self._action_spaces[agent] = getter(agent) if getter else self.env.action_spaces[agent]
        return self._action_spaces[agent]

    @property
    def observation_spaces(self) -> dict:
        return {agent: self.observation_space(agent) for agent in self.possible_agents}

    @property
    def action_spaces(self) -> dict:
        return {agent: self.action_space(agent) for agent in self.possible_agents}

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents, self._last_obs, self._done, self._pending = [], {}, set(), {}
        self.undelivered_rewards, self.last_raw_step = {}, None
        for agent in obs:
            self.agents.append(agent)
            self._last_obs[agent] = obs[agent]
        self.acting_agents = list(obs)
        return dict(obs), self._infos(infos, set(obs))

    def step(self, actions: dict):
        acting = set(self.acting_agents)
        forwarded = {agent: action for agent, action in actions.items() if agent in acting}
        obs, rewards, terminateds, truncateds, infos = result = self.env.step(forwarded)
        self.last_raw_step = result
        all_terminated = bool(terminateds.get("__all__", False))
        all_truncated = bool(truncateds.get("__all__", False))
        ended = all_terminated or all_truncated

        for agent in obs:
            if agent in self._done:
                raise ValueError(f"agent id {agent!r} was observed again after it left the episode (terminated or "
                                 "truncated); PettingZoo cannot revive an agent and RLlib rejects it too")
            if agent not in self.agents:
                self.agents.append(agent)
        live = list(self.agents)

        out_rewards = {agent: 0.0 for agent in live}
        for agent in live:
            if agent in self._pending:
                out_rewards[agent] += self._pending.pop(agent)
        for agent, reward in rewards.items():
            if agent == "__all__":
                continue
            if agent in out_rewards:
                out_rewards[agent] += float(reward)
            elif agent in self._done:
                self.undelivered_rewards[agent] = self.undelivered_rewards.get(agent, 0.0) + float(reward)
            else:
                self._pending[agent] = self._pending.get(agent, 0.0) + float(reward)

        out_terminated = {a: bool(terminateds.get(a, False)) or all_terminated for a in live}
        out_truncated = {a: bool(truncateds.get(a, False)) or all_truncated for a in live}
        out_obs = {}
        for agent in live:
            if agent in obs:
                self._last_obs[agent] = obs[agent]
            out_obs[agent] = self._last_obs[agent]
        out_infos = self._infos(infos, set(obs), live)

        # agents flagged done before they were ever observed are out of the episode too (RLlib drops them)
        for agent in set(terminateds) | set(truncateds):
            if agent != "__all__" and agent not in out_terminated and (terminateds.get(agent) or truncateds.get(agent)):
                self._done.add(agent)
                self._pending_to_undelivered(agent)
        finished = {a for a in live if out_terminated[a] or out_truncated[a]}
        self._done |= finished
        self.agents = [a for a in live if a not in finished]
        self.acting_agents = [a for a in obs if a in self.agents]
        if ended:
            for agent in list(self._pending):
                self._pending_to_undelivered(agent)
        return out_obs, out_rewards, out_terminated, out_truncated, out_infos

    def _pending_to_undelivered(self, agent) -> None:
        if agent in self._pending:
            self.undelivered_rewards[agent] = self.undelivered_rewards.get(agent, 0.0) + self._pending.pop(agent)

    def _infos(self, infos: dict, fresh: set, agents: list | None = None) -> dict:
        out = {}
        for agent in (self.agents if agents is None else agents):
            info = dict(infos.get(agent) or {})
            info[ACTING] = agent in fresh
            out[agent] = info
        if "__common__" in infos:
            out["__common__"] = infos["__common__"]
        return out

    # ------------------------------------------------------------------ the rest of the API
    def render(self):
        render = getattr(self.env, "render", None)
        return render() if render else None

    def close(self):
        close = getattr(self.env, "close", None)
        if close:
            close()

    def state(self):
        state = getattr(self.env, "global_state", None) or getattr(self.env, "state", None)
        if not callable(state):
            return super().state()
        return state()
