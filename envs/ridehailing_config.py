"""Typed configuration of the ride-hailing world (``ridehailing``): DyPS (paper 002) §4.1 and Table 1,
Ride-Hailing (1) and (2), on the request stream of rl_cs.data (the synthetic city, or central Chengdu with
``--data-dir``).

Drivers are scaled to keep the paper's orders per driver. The paper's public simulator (GitHub
tsinghua-fib-lab/DyPS, tools/create_envs.py) runs a day of 144 ten-minute steps with 10 drivers per cell, which
is where Table 1's figures come from: Ride-Hailing (1) 30,000 orders / 360 drivers over 144 steps = 0.579
orders per driver per step, Ride-Hailing (2) 70,000 / 1,000 / 144 = 0.486. Our request file is far smaller
(Chengdu: 1,628 requests in 3 hours, 1,134 inside the map; the synthetic pool: one request every 6 s), so
``num_drivers`` defaults to (orders per 10-minute step of the scenario's pool) / that ratio: about 109 drivers
on Chengdu for Ride-Hailing (1) and 130 for (2). We keep the ratio per step rather than per episode because our
episode is 3 hours, not the paper's day: the per-episode ratio (83 orders per driver) would leave 14 drivers
for 36 cells, each with an eighth of the paper's time to serve its orders. Set ``num_drivers`` to override.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from envs.ridehailing_grid import MAX_GRID_SIDE
from rl_cs.data.city import SyntheticCityConfig
from rl_cs.data.tasks import SyntheticTasksConfig, TaskRules
from rl_cs.errors import closest, require

REWARD_MODES = ("dispatch", "shared")
MAX_DRIVERS = 100_000
"""Largest num_drivers (Table 1's largest is 1,000)."""
MAX_STEPS = 100_000
"""Largest episode_steps (the paper's episode is 144)."""
PAPER_STEPS = 144
"""Steps of the paper's episode (a day of 10-minute steps in its public simulator)."""


@dataclass(frozen=True)
class RideHailingSize:
    """One of DyPS's ride-hailing scenarios (Table 1: #Grids = agents, #Resources = drivers, #Demands = orders)."""

    grid_rows: int
    grid_cols: int
    drivers: int
    orders: int

    @property
    def orders_per_driver_step(self) -> float:
        return self.orders / PAPER_STEPS / self.drivers


RIDEHAILING_SIZES = {
    "rh1": RideHailingSize(grid_rows=6, grid_cols=6, drivers=360, orders=30_000),
    "rh2": RideHailingSize(grid_rows=10, grid_cols=10, drivers=1_000, orders=70_000),
}
"""DyPS Table 1: Ride-Hailing (1) 36 cells, 360 drivers, 30,000 orders; Ride-Hailing (2) 100, 1,000, 70,000."""


@dataclass(frozen=True)
class RideHailingConfig:
    """One ride-hailing world. Times in minutes or seconds as named, distances in metres, fares in CNY."""

    size: str = "rh1"
    """Preset of DyPS Table 1: rh1 = Ride-Hailing (1) (6 x 6 cells), rh2 = Ride-Hailing (2) (10 x 10 cells)."""
    grid_rows: int = 0
    """Rows of the grid over the city (0: the preset's)."""
    grid_cols: int = 0
    """Columns of the grid over the city (0: the preset's)."""
    orders_per_driver_step: float = 0.0
    """Orders per driver per step kept from the paper (0: the preset's, 0.579 for rh1, 0.486 for rh2; module
    docstring); sets num_drivers when that is 0."""
    num_drivers: int = 0
    """Drivers in the city (0: the scenario's orders per step / orders_per_driver_step, rounded)."""
    episode_steps: int = 18
    """Dispatch steps per episode: 18 x 10 minutes = 3 hours, the span of the Chengdu request file (the paper's
    public simulator runs 144, a day)."""
    step_minutes: float = 10.0
    """Length of one step (DyPS: 10 minutes); the orders created in a step are dispatched at its start."""
    speed_mps: float = 7.0
    """Driving speed on the road network (25 km/h, urban traffic): pick-up, trip and repositioning times."""
    max_wait_steps: int = 1
    """Steps an order waits for a driver before it is lost (1: only the step it is created in)."""
    reward: str = "dispatch"
    """dispatch: each cell earns the fares of the orders its own idle drivers served this step (where they
    were sent), so a cell's return is what its decisions earned; shared: the step's whole GMV / num_cells."""
    reward_scale: float = 0.01
    """Rewards are fares (CNY) times this: hundreds of CNY, so that a cell's return is a few units (what PPO's
    critics learn well); the business metrics (GMV) stay in CNY."""
    rules: TaskRules = field(default_factory=TaskRules)
    """How a recorded trip becomes an order (fare = TaskRules.fare of the trip length)."""
    city: SyntheticCityConfig = field(default_factory=SyntheticCityConfig)
    """The synthetic city (used when no data folder is given)."""
    synthetic_tasks: SyntheticTasksConfig = field(default_factory=SyntheticTasksConfig)
    """The synthetic request stream (used when no data folder is given)."""

    @property
    def preset(self) -> RideHailingSize:
        return RIDEHAILING_SIZES[self.size]

    @property
    def rows(self) -> int:
        return self.grid_rows or self.preset.grid_rows

    @property
    def cols(self) -> int:
        return self.grid_cols or self.preset.grid_cols

    @property
    def num_agents(self) -> int:
        """Agents of the world: one per cell, void cells included (Table 1's #Agents = #Grids)."""
        return self.rows * self.cols

    @property
    def ratio(self) -> float:
        """Orders per driver per step that sets the number of drivers."""
        return self.orders_per_driver_step or self.preset.orders_per_driver_step

    def validate(self, where: str = "world") -> "RideHailingConfig":
        require(self.size in RIDEHAILING_SIZES, f"{where}.size", f"unknown ride-hailing size '{self.size}'",
                closest(str(self.size), RIDEHAILING_SIZES) + " (DyPS Table 1: rh1 = Ride-Hailing (1), rh2 = (2))")
        for name in ("grid_rows", "grid_cols"):
            value = getattr(self, name)
            require(0 <= value <= MAX_GRID_SIDE, f"{where}.{name}", f"must be in [1, {MAX_GRID_SIDE}] (0: the "
                    f"preset's), got {value}", "DyPS Table 1 uses 6 x 6 and 10 x 10")
        require(self.rows * self.cols >= 2, f"{where}.grid_rows/grid_cols",
                f"a {self.rows} x {self.cols} grid has one cell: there is nowhere to dispatch to",
                "use at least 2 cells")
        for name in ("orders_per_driver_step", "step_minutes", "speed_mps", "reward_scale"):
            value = getattr(self, name)
            require(math.isfinite(value), f"{where}.{name}", f"must be a finite number, got {value!r}")
        require(self.orders_per_driver_step >= 0, f"{where}.orders_per_driver_step",
                f"must be > 0 (0: the preset's), got {self.orders_per_driver_step}")
        require(0 <= self.num_drivers <= MAX_DRIVERS, f"{where}.num_drivers",
                f"must be in [1, {MAX_DRIVERS:,}] (0: derived from orders_per_driver_step), got {self.num_drivers}")
        require(1 <= self.episode_steps <= MAX_STEPS, f"{where}.episode_steps",
                f"must be in [1, {MAX_STEPS:,}], got {self.episode_steps}")
        require(0 < self.step_minutes <= 1440, f"{where}.step_minutes",
                f"must be in (0, 1440], got {self.step_minutes}")
        require(self.speed_mps > 0, f"{where}.speed_mps", f"must be > 0 m/s, got {self.speed_mps}")
        require(self.reward_scale > 0, f"{where}.reward_scale", f"must be > 0, got {self.reward_scale}",
                "0.01: rewards in hundreds of CNY")
        require(1 <= self.max_wait_steps <= 1000, f"{where}.max_wait_steps",
                f"must be in [1, 1000], got {self.max_wait_steps}")
        require(self.reward in REWARD_MODES, f"{where}.reward", f"unknown reward mode '{self.reward}'",
                closest(self.reward, REWARD_MODES))
        self.rules.validate(f"{where}.rules")
        self.city.validate(f"{where}.city")
        self.synthetic_tasks.validate(f"{where}.synthetic_tasks")
        return self
