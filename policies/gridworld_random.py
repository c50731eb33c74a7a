"""The floor on the package gridworlds (``lbf``, ``rware``): every agent picks one of its actions uniformly
at random each step, as the packages' own random agents do (lbforaging's ``RandomAgent``, rware's README
loop over ``action_space.sample()``). Actions the package deems invalid become its no-op, as they do for
every policy."""

from __future__ import annotations

import numpy as np


class UniformRandom:
    """Uniform over each agent's Discrete actions; seeded per episode by ``reset(seed)``."""

    name = "uniform"

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, view, obs: dict) -> dict:
        """``view`` is the package env (read-only): its per-agent action spaces give the action counts."""
        spaces = view.action_space
        return {agent: int(self.rng.integers(spaces[int(agent.rsplit("_", 1)[1])].n)) for agent in obs}
