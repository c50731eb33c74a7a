"""Typed configuration of the vaccine-allocation world (``vaccine``): DyPS (paper 002) §4.1's Medical scenario
(COVID-19 vaccines over Atlanta's census tracts, whose data is not public) rebuilt as a metapopulation SIR model
over the cells of a city grid (envs.vaccine states the model). Defaults are stated here, each with its source."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from envs.ridehailing_grid import MAX_GRID_SIDE
from rl_cs.data.city import SyntheticCityConfig
from rl_cs.data.tasks import SyntheticTasksConfig, TaskRules
from rl_cs.errors import closest, require

REWARD_MODES = ("shared", "local")
MAX_DAYS = 100_000
MAX_POPULATION = 1e10


@dataclass(frozen=True)
class VaccineConfig:
    """One vaccine world. Times in days, distances in metres, people and doses as (fractional) counts."""

    grid_rows: int = 6
    """Rows of the grid over the city (cells = agents; DyPS's Medical scenario has 3,130 census tracts)."""
    grid_cols: int = 6
    """Columns of the grid over the city."""
    population: float = 1_000_000.0
    """Residents of the whole city (central Chengdu's districts hold a few million; 1M keeps numbers readable)."""
    demand_weight: float = 0.5
    """Residents are spread over cells by this weight on the cell's share of the request pick-ups (where people
    are) and 1 - it on its share of road nodes (where the city is)."""
    days: int = 120
    """Steps (days) per episode."""
    r0: float = 2.5
    """Basic reproduction number R0 = beta / gamma (COVID-19's ancestral strain: 2-3)."""
    infectious_days: float = 7.0
    """Mean infectious period 1 / gamma, days."""
    travel_fraction: float = 0.05
    """Share of their contacts residents make outside their own cell (commuting; they return home daily). Low
    enough that the epidemic travels across the city as a wave (cells peak between days ~30 and ~50) instead of
    peaking everywhere at once, which would leave allocation nothing to decide."""
    travel_scale_m: float = 1000.0
    """Distance scale of travel: the contacts made away from home fall off as exp(-road metres / this)."""
    outbreak_cells: int = 1
    """Cells where the epidemic starts (drawn with the episode's seed, in proportion to residents)."""
    initial_infected: float = 100.0
    """Infectious residents in each outbreak cell at day 0."""
    doses_share: float = 0.63
    """Doses delivered over the episode as a share of the population: DyPS Table 1's Medical scenario has 4.53M
    vaccines for 7.19M people (0.63). They arrive evenly over the days, in each cell in proportion to residents."""
    capacity_per_day: float = 0.02
    """Most residents a cell can vaccinate in a day, as a share of its residents (doses beyond wait in stock);
    2% is about the fastest national roll-outs of 2021. Doses arrive at 0.53% a day, so capacity binds only
    where a policy concentrates them about 4-fold."""
    efficacy: float = 0.9
    """Share of vaccinated susceptibles who become immune (the rest stay susceptible)."""
    reward: str = "shared"
    """shared: every cell gets the city's infections averted this step / num_cells (the objective is the
    city's); local: each cell gets the infections averted among its own residents."""
    reward_scale: float = 0.001
    """Rewards are infections averted times this (per thousand by default)."""
    rules: TaskRules = field(default_factory=TaskRules)
    """How requests are read (only their pick-ups are used here: where people are)."""
    city: SyntheticCityConfig = field(default_factory=SyntheticCityConfig)
    """The synthetic city (used when no data folder is given)."""
    synthetic_tasks: SyntheticTasksConfig = field(default_factory=SyntheticTasksConfig)
    """The synthetic request stream (used when no data folder is given): it spreads the residents."""

    @property
    def rows(self) -> int:
        return self.grid_rows

    @property
    def cols(self) -> int:
        return self.grid_cols

    @property
    def num_agents(self) -> int:
        """Agents of the world: one per cell, void cells included."""
        return self.rows * self.cols

    @property
    def beta(self) -> float:
        """Transmission rate per day: R0 times the daily recovery probability 1 - exp(-gamma), so that in this
        daily model (infectious for 1 / (1 - exp(-gamma)) days on average) one case in a susceptible city causes
        R0 others."""
        return self.r0 * -math.expm1(-self.gamma)

    @property
    def gamma(self) -> float:
        """Recovery rate per day."""
        return 1.0 / self.infectious_days

    def validate(self, where: str = "world") -> "VaccineConfig":
        for name in ("grid_rows", "grid_cols"):
            value = getattr(self, name)
            require(1 <= value <= MAX_GRID_SIDE, f"{where}.{name}", f"must be in [1, {MAX_GRID_SIDE}], got {value}")
        require(self.grid_rows * self.grid_cols >= 2, f"{where}.grid_rows/grid_cols",
                "a 1 x 1 grid has one cell: there is nowhere to send vaccines", "use at least 2 cells")
        for name in ("population", "demand_weight", "r0", "infectious_days", "travel_fraction", "travel_scale_m",
                     "initial_infected", "doses_share", "capacity_per_day", "efficacy", "reward_scale"):
            value = getattr(self, name)
            require(math.isfinite(value), f"{where}.{name}", f"must be a finite number, got {value!r}")
        require(1 <= self.population <= MAX_POPULATION, f"{where}.population",
                f"must be in [1, {MAX_POPULATION:g}], got {self.population}")
        require(0 <= self.demand_weight <= 1, f"{where}.demand_weight", f"must be in [0, 1], got {self.demand_weight}")
        require(1 <= self.days <= MAX_DAYS, f"{where}.days", f"must be in [1, {MAX_DAYS:,}], got {self.days}")
        require(0 <= self.r0 <= 100, f"{where}.r0", f"must be in [0, 100], got {self.r0}")
        require(self.infectious_days >= 1, f"{where}.infectious_days",
                f"must be >= 1 day (one step is a day), got {self.infectious_days}")
        require(0 <= self.travel_fraction < 1, f"{where}.travel_fraction",
                f"must be in [0, 1), got {self.travel_fraction}")
        require(self.travel_scale_m > 0, f"{where}.travel_scale_m", f"must be > 0, got {self.travel_scale_m}")
        require(self.outbreak_cells >= 1, f"{where}.outbreak_cells", f"must be >= 1, got {self.outbreak_cells}")
        require(self.initial_infected > 0, f"{where}.initial_infected", f"must be > 0, got {self.initial_infected}")
        require(0 <= self.doses_share <= 10, f"{where}.doses_share", f"must be in [0, 10], got {self.doses_share}")
        require(0 < self.capacity_per_day <= 1, f"{where}.capacity_per_day",
                f"must be in (0, 1], got {self.capacity_per_day}")
        require(0 <= self.efficacy <= 1, f"{where}.efficacy", f"must be in [0, 1], got {self.efficacy}")
        require(self.reward in REWARD_MODES, f"{where}.reward", f"unknown reward mode '{self.reward}'",
                closest(self.reward, REWARD_MODES))
        require(self.reward_scale > 0, f"{where}.reward_scale", f"must be > 0, got {self.reward_scale}")
        self.rules.validate(f"{where}.rules")
        self.city.validate(f"{where}.city")
        self.synthetic_tasks.validate(f"{where}.synthetic_tasks")
        return self
