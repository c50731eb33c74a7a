"""Typed configuration of the multi-robot warehouse world (``rware``): the PyPI package rware 2.0.0, sized as
in DyPS (paper 002) Table 1.

A size is a named preset (``size: rware1`` or ``rware2``); both use the package's ``small`` layout (2 shelf
rows x 3 shelf columns, column height 8: a 20 x 10 grid = Table 1's 200 grids) and a request queue of half
the agents (the package's ``-hard`` difficulty). The other fields are the package's constructor arguments,
with the defaults of its registered ``rware-<size>-<n>ag-v2`` environments.
"""

from __future__ import annotations

from dataclasses import dataclass

from rl_cs.errors import closest, require

REWARD_TYPES = ("individual", "global", "two_stage")
"""The package's RewardType: +1 to the delivering agent / +1 to every agent per delivery / 0.5 for the
delivery and 0.5 for putting the shelf back."""


@dataclass(frozen=True)
class RWARESize:
    """One of DyPS's RWARE scenarios (Table 1: #Grids, #Resources = robots, #Demands = requested shelves)."""

    shelf_columns: int
    shelf_rows: int
    column_height: int
    n_agents: int
    request_queue_size: int

    @property
    def grid_cells(self) -> int:
        """Cells of the package's grid: ((column_height + 1) * shelf_rows + 2) x (3 * shelf_columns + 1)."""
        return ((self.column_height + 1) * self.shelf_rows + 2) * (3 * self.shelf_columns + 1)


RWARE_SIZES = {
    "rware1": RWARESize(shelf_columns=3, shelf_rows=2, column_height=8, n_agents=8, request_queue_size=4),
    "rware2": RWARESize(shelf_columns=3, shelf_rows=2, column_height=8, n_agents=16, request_queue_size=8),
}
"""DyPS Table 1: RWARE (1) 200 grids, 8 robots, 4 requests; RWARE (2) 200 grids, 16 robots, 8 requests."""


@dataclass(frozen=True)
class RWAREConfig:
    """One RWARE world: a Table 1 preset plus the package's episode, sensor and reward settings."""

    size: str = "rware1"
    """Preset of DyPS Table 1: rware1 (8 robots, request queue 4) or rware2 (16 robots, request queue 8)."""
    max_steps: int = 500
    """Steps per episode (the package's registered default, 500); the episode is then truncated."""
    sensor_range: int = 1
    """Cells seen around a robot in each direction (package default 1: a 3 x 3 window)."""
    reward_type: str = "individual"
    """individual (package default), global or two_stage (see REWARD_TYPES)."""
    max_inactivity_steps: int = 0
    """Cut the episode after this many steps without a delivery; 0 = never (package default None)."""

    @property
    def preset(self) -> RWARESize:
        return RWARE_SIZES[self.size]

    @property
    def num_agents(self) -> int:
        return self.preset.n_agents

    def validate(self, where: str = "world") -> "RWAREConfig":
        require(self.size in RWARE_SIZES, f"{where}.size", f"unknown RWARE size '{self.size}'",
                closest(str(self.size), RWARE_SIZES) + " (DyPS Table 1: rware1 = RWARE (1), rware2 = RWARE (2))")
        require(1 <= self.max_steps <= 1_000_000, f"{where}.max_steps",
                f"must be in [1, 1000000], got {self.max_steps}")
        require(1 <= self.sensor_range <= 5, f"{where}.sensor_range", f"must be in [1, 5], got {self.sensor_range}")
        require(self.reward_type in REWARD_TYPES, f"{where}.reward_type", f"unknown reward type '{self.reward_type}'",
                closest(str(self.reward_type), REWARD_TYPES))
        require(self.max_inactivity_steps >= 0, f"{where}.max_inactivity_steps",
                f"must be >= 0 (0: never), got {self.max_inactivity_steps}")
        return self

    def package_kwargs(self) -> dict:
        """Keyword arguments of ``rware.warehouse.Warehouse`` for this world."""
        from rware.warehouse import ObservationType, RewardType

        preset = self.preset
        return {
            "shelf_columns": preset.shelf_columns, "column_height": preset.column_height,
            "shelf_rows": preset.shelf_rows, "n_agents": preset.n_agents, "msg_bits": 0,
            "sensor_range": self.sensor_range, "request_queue_size": preset.request_queue_size,
            "max_inactivity_steps": self.max_inactivity_steps or None, "max_steps": self.max_steps,
            "reward_type": RewardType[self.reward_type.upper()], "observation_type": ObservationType.FLATTENED,
        }
