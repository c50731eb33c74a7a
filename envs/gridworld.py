"""The adapter shared by the ``lbf`` and ``rware`` worlds: a gymnasium multi-agent package env (one Tuple of
per-agent observations, a list of actions, a list of rewards, one ``done``) as an RLlib ``MultiAgentEnv``.

The package env is built once and kept (``self.raw``); every reset and step is exactly the package's: the
wrapper only renames agents (``agent_0`` .. ``agent_{n-1}``, package index order), passes the package's own
per-agent observation and action spaces and arrays through unchanged, turns rewards into floats, and splits
the package's single ``done`` into RLlib's terminated / truncated (each world says how). A seeded reset reseeds
the package's generator (``raw.reset(seed=seed)``); an unseeded one continues its stream, as in the package.
Every agent acts every step; ``__all__`` is sent every step.

Options for learned methods (env_config keys beside ``world``; all off by default, and then every
observation and reward is the package's own, unchanged):

* ``agent_id``: each agent's observation gets its one-hot index appended (N floats): PS-id's input.
* ``global_state``: each agent's observation gets every agent's observation appended (agent order, the
  ids above included when on): MAPPO's agent-specific global state [o_i, s] for a centralised critic; the
  actor reads only the leading part (policies.sharing.modules.MLPActorCritic ``actor_inputs``).
* ``team_reward``: every agent receives the sum of all agents' rewards (MAPPO's shared reward, DyPS §4.4);
  ``episode_metrics()["return"]`` is still the sum of the package's rewards.

After each step the package env also holds the step's per-agent rewards as ``rlcs_last_rewards`` (read-only
for actors that keep trajectory histories, e.g. DyPS's role encoder at evaluation).
"""

from __future__ import annotations

import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv


class PackageMultiAgentEnv(MultiAgentEnv):
    """Base of envs.lbf.LBFEnv and envs.rware.RWAREEnv; subclasses build ``raw`` and define the episode's
    end (``_ends``) and business counters (``_begin``, ``_count``, ``_metrics``, ``_log_record``)."""

    def __init__(self, raw, num_agents: int, options: dict | None = None):
        super().__init__()
        self.raw = raw
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: raw.observation_space[i] for i, a in enumerate(self.possible_agents)}
        options = options or {}
        self.agent_id, self.global_state = bool(options.get("agent_id")), bool(options.get("global_state"))
        self.team_reward = bool(options.get("team_reward"))
        if self.agent_id or self.global_state:
            self.observation_spaces = self._extended_spaces()
        self.action_spaces = {a: raw.action_space[i] for i, a in enumerate(self.possible_agents)}
        self._done_keys = [*self.possible_agents, "__all__"]
        self._return = 0.0
        self._steps = 0
        self._log: list[tuple] = []  # (step, summed reward, the world's counters): see episode_log

    # ------------------------------------------------------------------ MultiAgentEnv
    def reset(self, *, seed=None, options=None):
        self._before_reset()
        observations, _ = self.raw.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._return, self._steps, self._log = 0.0, 0, []
        self._begin()
        return self._observations(observations), {agent: {} for agent in self.possible_agents}

    def step(self, action_dict):
        agents = self.possible_agents
        try:
            actions = [int(action_dict[agent]) for agent in agents]
        except KeyError:
            missing = [agent for agent in agents if agent not in action_dict]
            raise ValueError(f"every agent acts every step; no action for {missing[:5]}") from None
        before = self._snapshot()
        observations, rewards, done, _, _ = self.raw.step(actions)
        rewards = [float(r) for r in rewards]
        self.raw.rlcs_last_rewards = rewards  # never changed here afterwards (team rewards are a new list)
        total = float(np.sum(rewards))
        self._return += total
        self._steps += 1
        self._log.append((self._steps, total, self._count(before, rewards)))
        terminated, truncated = self._ends(bool(done))
        if self.team_reward:
            rewards = [total] * len(rewards)
        return (self._observations(observations), dict(zip(agents, rewards)),
                dict.fromkeys(self._done_keys, terminated), dict.fromkeys(self._done_keys, truncated),
                {agent: {} for agent in agents})

    # ------------------------------------------------------------------ learned-method options
    def _observations(self, observations) -> dict:
        if not (self.agent_id or self.global_state):
            return dict(zip(self.possible_agents, observations))
        return dict(zip(self.possible_agents, extend_observations(observations, self.agent_id, self.global_state)))

    def _extended_spaces(self) -> dict:
        import gymnasium as gym

        n = len(self.possible_agents)
        bounds = [(np.asarray(self.raw.observation_space[i].low, np.float32).ravel(),
                   np.asarray(self.raw.observation_space[i].high, np.float32).ravel()) for i in range(n)]
        if self.agent_id:
            bounds = [(np.concatenate([low, np.zeros(n, np.float32)]), np.concatenate([high, np.ones(n, np.float32)]))
                      for low, high in bounds]
        if self.global_state:
            low_all, high_all = np.concatenate([b[0] for b in bounds]), np.concatenate([b[1] for b in bounds])
            bounds = [(np.concatenate([low, low_all]), np.concatenate([high, high_all])) for low, high in bounds]
        return {a: gym.spaces.Box(low, high, dtype=np.float32) for a, (low, high) in zip(self.possible_agents, bounds)}

    # ------------------------------------------------------------------ rl-cs world interface
    def decision_view(self):
        """The package env itself, for planners: READ-ONLY use (a planner must not call its reset/step or
        change its state; rl_cs.evaluation steps it through this wrapper only)."""
        return self.raw

    def episode_metrics(self) -> dict[str, float]:
        """``return``: the sum over agents and steps of the package's rewards (the paper's Table 2 figure),
        ``steps``, and the world's business counters."""
        return {"return": self._return, **self._metrics(), "steps": float(self._steps)}

    def episode_log(self) -> list[dict]:
        """One record per step of the episode so far: step, the step's summed reward, the world's counters."""
        return [{"step": step, "reward": reward, **fields} for step, reward, fields in self._log]

    # ------------------------------------------------------------------ per world
    def _before_reset(self) -> None:
        """Undo what would make the package's reset depend on the previous episode (see envs.lbf)."""

    def _ends(self, done: bool) -> tuple[bool, bool]:
        raise NotImplementedError

    def _begin(self) -> None:
        """Reset the business counters (after the package's reset)."""

    def _snapshot(self):
        """What ``_count`` needs from before the package's step."""

    def _count(self, before, rewards: list[float]) -> dict:
        """Update the business counters after a step; the step's log fields."""
        return {}

    def _metrics(self) -> dict[str, float]:
        return {}


def extend_observations(observations, agent_id: bool, global_state: bool) -> list:
    """The learned methods' observation options (module docstring) on the package's per-agent observations
    (agent order): [o_i, one-hot i if agent_id, s = all agents' (extended) o_j if global_state], float32.

    Built as one (agents x features) array per step (its rows are the agents' observations), not agent by
    agent; tests/test_gridworld_speed.py checks it against the agent-by-agent reference."""
    own = [np.asarray(o, dtype=np.float32).ravel() for o in observations]
    n = len(own)
    if n == 0 or any(o.shape != own[0].shape for o in own):  # agents of different observation sizes
        return _extend_observations_by_agent(own, agent_id, global_state)
    width = own[0].size
    extended = width + (n if agent_id else 0)
    out = np.zeros((n, extended * (n + 1) if global_state else extended), dtype=np.float32)
    out[:, :width] = own
    if agent_id:
        out[:, width:extended] = np.eye(n, dtype=np.float32)
    if global_state:
        out[:, extended:] = out[:, :extended].reshape(1, -1)
    return list(out)


def _extend_observations_by_agent(own: list, agent_id: bool, global_state: bool) -> list:
    n = len(own)
    if agent_id:
        own = [np.concatenate([o, np.eye(n, dtype=np.float32)[i]]) for i, o in enumerate(own)]
    if global_state:
        state = np.concatenate(own)
        own = [np.concatenate([o, state]) for o in own]
    return own
