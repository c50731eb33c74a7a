"""Typed configuration of the level-based foraging world (``lbf``): the PyPI package lbforaging 2.0.0,
sized as in DyPS (paper 002) Table 1.

A size is a named preset (``size: lbf1`` or ``lbf2``); the other fields are the package's own constructor
arguments, with the defaults of its registered ``Foraging-<s>x<s>-<p>p-<f>f-v3`` environments (full
observability, no cooperative-only food, no penalty, 50 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rl_cs.errors import closest, require


@dataclass(frozen=True)
class LBFSize:
    """One of DyPS's LBF scenarios (Table 1: #Grids, #Resources = agents, #Demands = food)."""

    field_size: int
    """Side of the square grid (Table 1: 100 grids = 10 x 10)."""
    players: int
    """Agents (foraging workers)."""
    max_num_food: int
    """Food items spawned at reset (the package may place fewer when it cannot find room: see envs.lbf)."""


LBF_SIZES = {
    "lbf1": LBFSize(field_size=10, players=6, max_num_food=4),
    "lbf2": LBFSize(field_size=10, players=12, max_num_food=10),
}
"""DyPS Table 1: LBF (1) 10x10 grid, 6 agents, 4 food; LBF (2) 10x10 grid, 12 agents, 10 food."""


@dataclass(frozen=True)
class LBFConfig:
    """One LBF world: a Table 1 preset plus the package's episode and observation settings."""

    size: str = "lbf1"
    """Preset of DyPS Table 1: lbf1 (6 agents, 4 food) or lbf2 (12 agents, 10 food), both on 10 x 10."""
    max_episode_steps: int = 50
    """Steps before the episode is cut (truncated): the package's registered default, 50."""
    sight: int = 0
    """Observation radius in cells; 0 = the whole field (the package's full-observability setting, ids
    without ``-2s``). DyPS does not say; full observability is the package's default."""
    force_coop: bool = False
    """Every food at the highest level, so only groups can load it (the package's ``-coop`` ids)."""
    min_player_level: int = 1
    """Lowest agent level (package default 1)."""
    max_player_level: int = 2
    """Highest agent level (package default 2); food levels default to the sum of the three lowest agents'."""
    penalty: float = 0.0
    """Reward subtracted from each agent of a failed loading attempt (package default 0)."""

    @property
    def preset(self) -> LBFSize:
        return LBF_SIZES[self.size]

    @property
    def num_agents(self) -> int:
        return self.preset.players

    def validate(self, where: str = "world") -> "LBFConfig":
        require(self.size in LBF_SIZES, f"{where}.size", f"unknown LBF size '{self.size}'",
                closest(str(self.size), LBF_SIZES) + " (DyPS Table 1: lbf1 = LBF (1), lbf2 = LBF (2))")
        field = self.preset.field_size
        require(1 <= self.max_episode_steps <= 1_000_000, f"{where}.max_episode_steps",
                f"must be in [1, 1000000], got {self.max_episode_steps}")
        require(0 <= self.sight <= field, f"{where}.sight", f"must be in [0, {field}] (0: the whole field), "
                f"got {self.sight}")
        require(1 <= self.min_player_level <= self.max_player_level <= 100,
                f"{where}.min_player_level/max_player_level",
                f"need 1 <= min <= max <= 100, got {self.min_player_level} and {self.max_player_level}")
        require(math.isfinite(self.penalty) and self.penalty >= 0, f"{where}.penalty",
                f"must be a finite number >= 0, got {self.penalty}")
        return self

    def package_kwargs(self) -> dict:
        """Keyword arguments of ``lbforaging.foraging.environment.ForagingEnv`` for this world."""
        preset = self.preset
        return {
            "players": preset.players, "min_player_level": self.min_player_level,
            "max_player_level": self.max_player_level, "min_food_level": 1, "max_food_level": None,
            "field_size": (preset.field_size, preset.field_size), "max_num_food": preset.max_num_food,
            "sight": self.sight or preset.field_size, "max_episode_steps": self.max_episode_steps,
            "force_coop": self.force_coop, "normalize_reward": True, "grid_observation": False,
            "observe_agent_levels": True, "penalty": self.penalty,
        }
