"""``vaccine``: COVID-19 vaccine allocation (DyPS, paper 002, §4.1's Medical scenario, whose Atlanta data is not
public) as a metapopulation SIR model over the cells of a city grid, an RLlib MultiAgentEnv.

env_config (plain data, as Tune passes it): ``{"world": VaccineConfig or its dict, "data_dir": folder or None,
"cache_dir": folder or None}``.

The city and its people. The city of rl_cs.data (the synthetic city, or central Chengdu with ``--data-dir``) is
cut into ``grid_rows`` x ``grid_cols`` cells (envs.ridehailing_grid; void cells, without roads, hold nobody).
Every cell is an agent (``cell_<index>``) and all act every step; a step is a day. Cell i has N_i residents:
``population`` spread by ``demand_weight`` x its share of the request pick-ups + (1 - demand_weight) x its share
of road nodes. Residents make a share 1 - tau of their contacts at home and tau (``travel_fraction``) elsewhere,
in cell j with weight exp(-d_ij / L) (d_ij: road metres between the cells' hubs, from the city's distance
oracle; L = ``travel_scale_m``), and return home every day (commuting: nobody moves house). The mixing matrix
is M_ii = 1 - tau, M_ij = tau exp(-d_ij / L) / sum_{k != i} exp(-d_ik / L); every row sums to 1.

The epidemic (deterministic mean-field SIR per cell, one step = one day; S_i + I_i + R_i = N_i always):

    P_j = sum_i M_ij N_i                              people present in cell j during the day
    lambda_j = beta * sum_i M_ij I_i / P_j            force of infection in cell j
    Lambda_i = sum_j M_ij lambda_j                    force felt by a resident of cell i
    new_i = S_i * (1 - exp(-Lambda_i))                new infections among residents of i
    rec_i = I_i * (1 - exp(-gamma))                   recoveries
    S_i <- S_i - new_i,  I_i <- I_i + new_i - rec_i,  R_i <- R_i + rec_i

with gamma = 1 / ``infectious_days`` and beta = R0 * (1 - exp(-gamma)): a case stays infectious for
1 / (1 - exp(-gamma)) days on average in this daily model, so one case in a susceptible city causes R0 others
(defaults R0 = 2.5, 7 days: COVID-19's ancestral strain). Without travel or vaccines a cell's final attack rate z
solves z = 1 - exp(-R0 z) (tests/test_vaccine.py checks it). At day 0, ``initial_infected`` residents are
infectious in each of ``outbreak_cells`` cells drawn with the episode's seed in proportion to residents; everyone
else is susceptible. The seed only places the outbreak.

Vaccines. Doses (``doses_share`` x population over the episode: 0.63, DyPS Table 1's 4.53M vaccines for 7.19M
people) arrive evenly each day before the decision, in each cell in proportion to its residents, into the cell's
stock. Each cell then decides (action, Discrete(10)): 0 hold (its stock waits; the cell vaccinates nobody
today, not even doses sent to it), 1 use here, k = 2..9 send its whole stock to the neighbour in direction
DIRECTIONS[k - 2] (N, NE, E, SE, S, SW, W, NW; masked when outside the grid or void: such an action holds and
counts in ``invalid_actions``). Every cell that does not hold then vaccinates u_i = min(stock_i, capacity_per_day
* N_i, S_i) of its susceptibles (doses reach susceptibles only: a stated simplification); ``efficacy`` of them
become immune (S -> R), the doses are used up; what is left waits in the stock. Vaccination happens before the
day's infections.

Metric and reward. Infections averted = infections without any vaccine (the same seeded epidemic replayed with
no doses, computed at reset: the model is deterministic, so the comparison has no noise) - infections with this
episode's allocation; doing nothing averts exactly 0. Reward (``reward``): ``shared`` (default) gives every cell
the city's infections averted that day / num_cells; ``local`` gives each cell those averted among its own
residents; both times ``reward_scale`` (per thousand). The episode terminates after ``days`` steps.

Parameters and their defaults (envs.vaccine_config, each with its source there): population 1,000,000, R0 = 2.5,
1 / gamma = 7 days, tau = 0.05, L = 1,000 m, one outbreak cell with 100 infectious residents, 0.63 doses per
resident over 120 days, a daily capacity of 2% of a cell's residents, efficacy 0.9.

``episode_metrics()["return"]`` is the sum over cells and days of the rewards (DyPS's group selector learns
from it). Options for learned methods (env_config keys ``agent_id``, ``global_state``, ``team_reward``;
envs.ridehailing_grid.CellOptions): PS-id's one-hot cell id, MAPPO's global state (every cell's own six features
and the day) and team reward; off by default.

Observation (per cell, float32, 55 = 9 x 6 + 1): for the cell and its 8 neighbours in DIRECTIONS order, the
susceptible, infectious x 10 and recovered shares of residents, the stock in days of vaccination capacity, the
previous day's new infections per 100 residents, and 1 if the cell has residents (0 for void cells and outside
the grid: all features 0); then day / days. The action mask is read from it (``action_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.ridehailing_grid import (DIRECTIONS, CellOptions, CityGrid, cell_id, extend_cell_observations, grid_for,
                                   scenario_for)
from envs.vaccine_config import VaccineConfig
from rl_cs.config import from_dict, to_dict
from envs.csc_view import frozen

CELL_FEATURES = ("susceptible", "infectious_x10", "recovered", "stock_days", "new_per_100", "has_residents")
HOLD, USE = 0, 1
NUM_ACTIONS = 2 + len(DIRECTIONS)
OBS_SIZE = (1 + len(DIRECTIONS)) * len(CELL_FEATURES) + 1
TIME_INDEX = OBS_SIZE - 1
"""Index of the day / days feature in an observation."""
ACTION_MASK_LAYOUT = {"first": 2, "start": 2 * len(CELL_FEATURES) - 1, "stride": len(CELL_FEATURES),
                      "count": len(DIRECTIONS)}
"""Where ``action_mask`` reads the mask in an observation (as envs.ridehailing.ACTION_MASK_LAYOUT): action
first + k is allowed iff obs[start + k * stride] > 0.5 (the k-th neighbour has residents); hold and use always."""


def env_config(world: VaccineConfig, data_dir: str | None = None, cache_dir: str | None = None) -> dict:
    """The RLlib env_config of a world (plain data; the data folder made absolute: Tune changes directories)."""
    return {"world": to_dict(world), "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "cache_dir": cache_dir}


def action_mask(env, agent, obs) -> np.ndarray:
    """Allowed actions of a cell, read from its observation: hold, use, and each neighbour with residents."""
    obs = np.asarray(obs)
    width = len(CELL_FEATURES)
    mask = np.ones(NUM_ACTIONS, dtype=bool)
    mask[2:] = obs[2 * width - 1:(1 + len(DIRECTIONS)) * width:width] > 0.5
    return mask


def mixing_matrix(grid: CityGrid, travel_fraction: float, travel_scale_m: float) -> np.ndarray:
    """M (module docstring): row i = where residents of cell i make their contacts; rows of void cells are 0."""
    n, valid = grid.num_cells, grid.valid
    weight = np.exp(-grid.hub_road_m / travel_scale_m)  # 0 to and from void cells (inf metres)
    np.fill_diagonal(weight, 0.0)
    total = weight.sum(axis=1, keepdims=True)
    away = np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)
    share = np.where(total[:, 0] > 0, travel_fraction, 0.0)  # a lone cell keeps all contacts at home
    mixing = away * share[:, None]
    mixing[np.arange(n), np.arange(n)] = 1.0 - share
    return mixing * valid[:, None]


def residents(grid: CityGrid, pickup_nodes: np.ndarray, population: float, demand_weight: float) -> np.ndarray:
    """N_i (module docstring): population spread over cells by pick-ups and road nodes."""
    n = grid.num_cells
    pickups = np.bincount(grid.node_cell[pickup_nodes], minlength=n).astype(np.float64)
    nodes = grid.nodes_in_cell.astype(np.float64)
    share = demand_weight * pickups / max(pickups.sum(), 1.0) + (1 - demand_weight) * nodes / nodes.sum()
    share = share * grid.valid
    return population * share / share.sum()


def sir_day(S: np.ndarray, I: np.ndarray, R: np.ndarray, N: np.ndarray, mixing: np.ndarray, beta: float,
            gamma: float) -> np.ndarray:
    """One day of the epidemic, in place (module docstring); returns the new infections per cell."""
    present = mixing.T @ N
    infectious = mixing.T @ I
    force = beta * np.divide(infectious, present, out=np.zeros_like(present), where=present > 0)
    new = S * -np.expm1(-(mixing @ force))
    recovered = I * -np.expm1(-gamma)
    S -= new
    I += new - recovered
    R += recovered
    return new


@dataclass(frozen=True)
class VaccineView:
    """A read-only snapshot of one day for planners (every array is a read-only copy, cell index order)."""

    day: int
    agents: tuple[str, ...]
    """Agent id of every cell (every cell acts every day)."""
    neighbour: np.ndarray
    """(num_cells, 8) the neighbour reached by action k + 2 (DIRECTIONS[k]), -1 where masked."""
    residents: np.ndarray
    """(num_cells,) N_i."""
    susceptible: np.ndarray
    infectious: np.ndarray
    recovered: np.ndarray
    stock: np.ndarray
    """(num_cells,) doses in each cell's stock (today's delivery included)."""
    capacity: np.ndarray
    """(num_cells,) most residents each cell can vaccinate today."""
    last_rewards: np.ndarray | None = None
    """(num_cells,) each cell's reward of the previous day (the world's own, before any team reward; 0 on the
    first day): what a learned actor keeping reward histories reads (policies.dyps.actor)."""

    def rows(self, agents) -> np.ndarray:
        return np.array([int(agent.rsplit("_", 1)[1]) for agent in agents], dtype=np.int64)



class VaccineEnv(MultiAgentEnv):
    """See the module docstring for the model, observation, action, reward and metrics."""

    metadata = {"render_modes": []}
    action_mask_layout = ACTION_MASK_LAYOUT
    """The mask's place in an observation, for learned policies (ACTION_MASK_LAYOUT)."""

    def __init__(self, env_config: dict | None = None):
        super().__init__()
        env_config = dict(env_config or {})
        self.config: VaccineConfig = from_dict(VaccineConfig, env_config.get("world"), "world").validate()
        c = self.config
        data_dir, cache_dir = env_config.get("data_dir"), env_config.get("cache_dir")
        self.scenario = scenario_for(c.rules, c.city, c.synthetic_tasks, data_dir, cache_dir)
        self.grid: CityGrid = grid_for(c.rules, c.city, c.synthetic_tasks, data_dir, cache_dir, c.rows, c.cols)
        grid, n = self.grid, self.grid.num_cells
        self.residents = residents(grid, self.scenario.tasks.node, c.population, c.demand_weight)
        self.mixing = mixing_matrix(grid, c.travel_fraction, c.travel_scale_m)
        self.capacity = c.capacity_per_day * self.residents
        self.delivery = c.doses_share * self.residents / c.days
        self.possible_agents = [cell_id(i) for i in range(n)]
        self.agents = list(self.possible_agents)
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.options = CellOptions.of(env_config)
        obs_space = gym.spaces.Box(0.0, np.inf, (self.options.size(OBS_SIZE, n, len(CELL_FEATURES)),), np.float32)
        act_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        self._last_rewards = np.zeros(n)
        self._return = 0.0
        self._neighbour_index = np.concatenate(
            [np.arange(n)[:, None], np.where(grid.neighbour >= 0, grid.neighbour, n)], axis=1)
        self._rng = np.random.default_rng(env_config.get("seed"))
        self.day = 0

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        c, n = self.config, self.grid.num_cells
        cells = np.flatnonzero(self.residents > 0)
        outbreak = self._rng.choice(cells, size=min(c.outbreak_cells, len(cells)), replace=False,
                                    p=self.residents[cells] / self.residents[cells].sum())
        infected = np.zeros(n)
        infected[outbreak] = np.minimum(c.initial_infected, self.residents[outbreak])
        self.S, self.I, self.R = self.residents - infected, infected.copy(), np.zeros(n)
        S, I, R = self.S.copy(), self.I.copy(), self.R.copy()
        self.no_vaccine_new = np.stack([sir_day(S, I, R, self.residents, self.mixing, c.beta, c.gamma)
                                        for _ in range(c.days)])
        """(days, num_cells) new infections per day of the same epidemic without vaccines (the baseline)."""
        self.stock = self.delivery.copy()
        self.day = 0
        self._new = np.zeros(n)
        self._infections = self._averted = self._used = self._immunised = 0.0
        self._delivered = float(self.delivery.sum())
        self._peak = float(self.I.sum() / self.residents.sum())
        self._invalid = 0
        self._return = 0.0
        self._last_rewards = np.zeros(n)
        self._log: list[dict] = []
        self.agents = list(self.possible_agents)
        return self._observe(), {agent: {} for agent in self.possible_agents}

    def _observe(self) -> dict:
        n, N = self.grid.num_cells, self.residents
        inhabited = N > 0

        def share(x, scale=1.0):
            return np.divide(x * scale, N, out=np.zeros(n), where=inhabited)

        days_of_stock = np.divide(self.stock, self.capacity, out=np.zeros(n), where=self.capacity > 0)
        features = np.stack([share(self.S), share(self.I, 10.0), share(self.R), days_of_stock, share(self._new, 100.0),
                             inhabited.astype(np.float64)], axis=1)
        features = np.maximum(features, 0.0)  # float rounding of S near 0 must not leave the space
        padded = np.vstack([features, np.zeros((1, len(CELL_FEATURES)))])
        obs = np.concatenate([padded[self._neighbour_index].reshape(n, -1),
                              np.full((n, 1), self.day / self.config.days)], axis=1).astype(np.float32)
        if self.options.agent_id or self.options.global_state:
            obs = self.extend_observations(obs, self.options.agent_id, self.options.global_state)
        return dict(zip(self.possible_agents, obs))

    @staticmethod
    def extend_observations(observations, agent_id: bool, global_state: bool) -> list:
        """The learned methods' options on the world's own observations (cell order; CellOptions)."""
        return extend_cell_observations(observations, agent_id, global_state, len(CELL_FEATURES), TIME_INDEX)

    # ------------------------------------------------------------------ stepping
    def step(self, action_dict: dict):
        c, grid = self.config, self.grid
        n = grid.num_cells
        action = np.full(n, HOLD, dtype=np.int64)
        for agent, value in action_dict.items():
            cell = self._index.get(agent)
            if cell is None:
                continue
            value = int(value)
            if value in (HOLD, USE) or (2 <= value < NUM_ACTIONS and grid.neighbour[cell, value - 2] >= 0):
                action[cell] = value
            else:
                self._invalid += 1
        send = np.flatnonzero(action >= 2)
        targets = grid.neighbour[send, action[send] - 2]
        shipped = self.stock[send].copy()
        self.stock[send] = 0.0
        self.stock += np.bincount(targets, weights=shipped, minlength=n)
        active = action != HOLD
        used = np.where(active, np.minimum(np.minimum(self.stock, self.capacity), np.maximum(self.S, 0.0)), 0.0)
        self.stock -= used
        immune = c.efficacy * used
        self.S -= immune
        self.R += immune
        new = sir_day(self.S, self.I, self.R, self.residents, self.mixing, c.beta, c.gamma)
        averted = self.no_vaccine_new[self.day] - new
        self._new = new
        self._infections += float(new.sum())
        self._averted += float(averted.sum())
        self._used += float(used.sum())
        self._immunised += float(immune.sum())
        self._peak = max(self._peak, float(self.I.sum() / self.residents.sum()))
        self._log.append({"day": self.day, "new_infections": float(new.sum()),
                          "new_infections_no_vaccine": float(self.no_vaccine_new[self.day].sum()),
                          "doses_used": float(used.sum()), "doses_shipped": float(shipped.sum()),
                          "cells_holding": int((action == HOLD).sum()), "infectious": float(self.I.sum())})
        self.day += 1
        done = self.day >= c.days
        if not done:
            self.stock += self.delivery
            self._delivered += float(self.delivery.sum())
        if c.reward == "shared":
            rewards = np.full(n, averted.sum() / n)
        else:
            rewards = averted
        rewards = rewards * c.reward_scale
        self._last_rewards = rewards
        self._return += float(rewards.sum())
        if self.options.team_reward:
            rewards = np.full(n, float(rewards.sum()))
        obs = self._observe()
        reward_dict = {agent: float(rewards[i]) for i, agent in enumerate(self.possible_agents)}
        infos = {agent: {"new_infections": float(new[i]), "doses_used": float(used[i])}
                 for i, agent in enumerate(self.possible_agents)}
        flags = {agent: done for agent in self.possible_agents}
        return obs, reward_dict, {**flags, "__all__": done}, {"__all__": False}, infos

    # ------------------------------------------------------------------ rl-cs world interface
    def decision_view(self) -> VaccineView:
        """A read-only snapshot of the day about to be played, for planners (rl_cs.evaluation)."""
        return VaccineView(day=self.day, agents=tuple(self.possible_agents), neighbour=self.grid.neighbour,
                           residents=frozen(self.residents), susceptible=frozen(self.S),
                           infectious=frozen(self.I), recovered=frozen(self.R), stock=frozen(self.stock),
                           capacity=frozen(self.capacity), last_rewards=frozen(self._last_rewards))

    def episode_metrics(self) -> dict[str, float]:
        """Infections averted (against the same epidemic without vaccines), infections with and without
        vaccines, doses delivered / used / left in stock, immunised residents, peak prevalence, invalid actions."""
        no_vaccine = float(self.no_vaccine_new[:self.day].sum())
        return {"infections_averted": self._averted, "infections": self._infections,
                "infections_no_vaccine": no_vaccine,
                "averted_share": self._averted / no_vaccine if no_vaccine > 0 else 0.0,
                "doses_delivered": self._delivered, "doses_used": self._used,
                "doses_in_stock": float(self.stock.sum()), "immunised": self._immunised,
                "peak_prevalence": self._peak, "invalid_actions": float(self._invalid), "return": self._return}

    def episode_log(self) -> list[dict]:
        """One record per day: new infections with and without vaccines, doses used and shipped, cells holding,
        infectious residents after the day."""
        return list(self._log)

    def compartments(self) -> dict[str, np.ndarray]:
        """Read-only copies of S, I, R and N per cell (S + I + R = N; tests and plots)."""
        return {"S": frozen(self.S), "I": frozen(self.I), "R": frozen(self.R), "N": frozen(self.residents)}
