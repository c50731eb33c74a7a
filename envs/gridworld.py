"""The adapter shared by the ``lbf`` and ``rware`` worlds: a gymnasium multi-agent package env (one Tuple of
per-agent observations, a list of actions, a list of rewards, one ``done``) as an RLlib ``MultiAgentEnv``.

The package env is built once and kept (``self.raw``); every reset and step is exactly the package's: the
wrapper only renames agents (``agent_0`` .. ``agent_{n-1}``, package index order), passes the package's own
per-agent observation and action spaces and arrays through unchanged, turns rewards into floats, and splits
the package's single ``done`` into RLlib's terminated / truncated (each world says how). A seeded reset reseeds
the package's generator (``raw.reset(seed=seed)``); an unseeded one continues its stream, as in the package.
Every agent acts every step; ``__all__`` is sent every step.
"""

from __future__ import annotations

import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv


class PackageMultiAgentEnv(MultiAgentEnv):
    """Base of envs.lbf.LBFEnv and envs.rware.RWAREEnv; subclasses build ``raw`` and define the episode's
    end (``_ends``) and business counters (``_begin``, ``_count``, ``_metrics``, ``_log_record``)."""

    def __init__(self, raw, num_agents: int):
        super().__init__()
        self.raw = raw
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: raw.observation_space[i] for i, a in enumerate(self.possible_agents)}
        self.action_spaces = {a: raw.action_space[i] for i, a in enumerate(self.possible_agents)}
        self._no_infos = {agent: {} for agent in self.possible_agents}
        self._return = 0.0
        self._steps = 0
        self._log: list[dict] = []

    # ------------------------------------------------------------------ MultiAgentEnv
    def reset(self, *, seed=None, options=None):
        self._before_reset()
        observations, _ = self.raw.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._return, self._steps, self._log = 0.0, 0, []
        self._begin()
        return dict(zip(self.possible_agents, observations)), {agent: {} for agent in self.possible_agents}

    def step(self, action_dict):
        try:
            actions = [int(action_dict[agent]) for agent in self.possible_agents]
        except KeyError:
            missing = [agent for agent in self.possible_agents if agent not in action_dict]
            raise ValueError(f"every agent acts every step; no action for {missing[:5]}") from None
        before = self._snapshot()
        observations, rewards, done, _, _ = self.raw.step(actions)
        rewards = [float(r) for r in rewards]
        total = float(np.sum(rewards))
        self._return += total
        self._steps += 1
        self._log.append({"step": self._steps, "reward": total, **self._count(before, rewards)})
        terminated, truncated = self._ends(bool(done))
        return (dict(zip(self.possible_agents, observations)), dict(zip(self.possible_agents, rewards)),
                {agent: terminated for agent in self.possible_agents} | {"__all__": terminated},
                {agent: truncated for agent in self.possible_agents} | {"__all__": truncated},
                {agent: {} for agent in self.possible_agents})

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
        return list(self._log)

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
