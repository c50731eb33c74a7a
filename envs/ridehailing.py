"""``ridehailing``: order dispatch in on-demand ride-hailing (DyPS, paper 002, §4.1 and Table 1, Ride-Hailing (1)
and (2)) as an RLlib MultiAgentEnv over the request stream of rl_cs.data (the synthetic city by default, central
Chengdu's recorded requests with ``--data-dir``).

env_config (plain data, as Tune passes it): ``{"world": RideHailingConfig or its dict, "data_dir": folder or
None, "cache_dir": folder or None}``.

The world. The city is cut into a grid (envs.ridehailing_grid: 6 x 6 = 36 cells for Ride-Hailing (1), 10 x 10 =
100 for (2)); every cell is an agent (``cell_<index>``, row-major from the south-west corner), all of them act
every step. Time advances in steps of ``step_minutes`` (10); an episode is ``episode_steps`` steps (18 = 3 hours)
of the scenario's request pool, from a start drawn with the episode's seed (central Chengdu's file spans exactly
3 hours, so there every seed plays the same orders and the seed moves the drivers). The number of drivers keeps
the paper's orders per driver per step (envs.ridehailing_config: 0.579 for (1), 0.486 for (2); about 109 and 130
drivers on Chengdu). At reset every cell with roads gets the same number of idle drivers (the paper's simulator
puts 10 in each cell; the remainder goes to cells drawn with the seed), each at a road node of its cell drawn
with the seed.

Orders. A request of the pool is an order: pick-up node (its cell is the order's cell), fare rho_max (CNY,
rl_cs.data.tasks.TaskRules: 8 CNY for the first 2 km, 1.9 CNY/km after), trip length (from the request's
quantity, TaskRules.work_minutes_per_km). The pool has no drop-off (rl_cs.data keeps pick-ups only), so one is
assumed: the pick-up node of the pool whose road distance from the order's pick-up is closest to the trip
length (deterministic, computed once per scenario); the trip's road distance is then pick-up -> drop-off. The
orders created during step t are revealed at its start and wait ``max_wait_steps`` steps (default 1: only that
step) before they are lost.

One step t (time T = t * step):
1. Dispatch (the agents' actions): each cell sends all of its idle drivers to one target: action 0 keeps them
   in the cell, action k = 1..8 sends them to the neighbour in direction DIRECTIONS[k - 1] (N, NE, E, SE, S, SW,
   W, NW). A neighbour outside the grid or without roads is masked (``action_mask``); such an action, or one
   outside 0..8, keeps the drivers home and counts in ``invalid_actions``.
2. Matching (the world's fixed rule): orders are matched only to drivers dispatched to their own cell (kept
   there or sent there); waiting orders are taken first come, first served, each by the nearest such driver by
   road distance. A matched driver is busy until T + (pick-up + trip road metres) / speed and then idle at the
   drop-off node; the order's fare counts in GMV.
3. Repositioning: an unmatched driver sent to another cell drives to that cell's hub (its road node nearest the
   cell centre) and is idle there from T + road metres / speed (``reposition_km``); one kept home stays.
4. Unserved orders past their wait are lost; time advances to T + step; drivers whose trip or repositioning has
   ended by then are idle where they stopped.

Observation (per cell, float32, 48 = 9 x 5 + 3): for the cell itself, then its 8 neighbours in DIRECTIONS order,
five features: idle drivers / 10, waiting orders / 10, their fares / 100 CNY, drivers busy now who become idle in
the cell within the step / 10, and 1 if the cell has roads (0 for a void cell or outside the grid, whose
features are all 0); then the step / episode_steps, and the cell's row and column scaled to [0, 1]. The action
mask is read from it (``action_mask``: stay, and every neighbour whose road flag is 1).

Reward (``reward``): ``dispatch`` (default) pays each cell the fares of the orders its own idle drivers served
this step, wherever it sent them, so the cells' rewards sum to the step's GMV and a cell's return is what its
decisions earned; ``shared`` pays every cell the step's GMV / num_cells. Both times ``reward_scale`` (0.01:
hundreds of CNY). Infos carry each cell's orders and
served orders of the step. The episode terminates (``__all__``) after ``episode_steps`` steps.

Business metrics (``episode_metrics``, DyPS Table 2 / 7: GMV and ORR): ``gmv`` (sum of the served orders' fares),
``order_response_rate`` (served / orders of the episode), ``gmv_share`` (GMV / the fares of every order of the
episode: how much room the world leaves any method), orders, served, drivers, repositioning and pick-up km,
invalid actions, and ``return`` (the sum over cells and steps of the rewards: GMV x reward_scale in either reward
mode; DyPS's group selector learns from it).

Options for learned methods (env_config keys ``agent_id``, ``global_state``, ``team_reward``;
envs.ridehailing_grid.CellOptions): PS-id's one-hot cell id, MAPPO's global state (every cell's own five
features and the step) and team reward. Off by default: the observation and reward above, unchanged.

Internals are numpy arrays (drivers and orders as columns); the one loop is the matching's, over the step's
waiting orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.ridehailing_config import RideHailingConfig
from envs.ridehailing_grid import (DIRECTIONS, CellOptions, CityGrid, _scenario, cell_id, extend_cell_observations,
                                   grid_for, road_m, scenario_for)
from rl_cs.config import from_dict, to_dict
from envs.csc_view import frozen

CELL_FEATURES = ("idle_drivers", "waiting_orders", "waiting_fares", "arriving_drivers", "has_roads")
COUNT_SCALE = 10.0
FARE_SCALE = 100.0
NUM_ACTIONS = 1 + len(DIRECTIONS)
OBS_SIZE = (1 + len(DIRECTIONS)) * len(CELL_FEATURES) + 3
WAITING, SERVED, LOST = 0, 1, 2
_EPS = 1e-6
TIME_INDEX = (1 + len(DIRECTIONS)) * len(CELL_FEATURES)
"""Index of the step / episode_steps feature in an observation."""
ACTION_MASK_LAYOUT = {"first": 1, "start": 2 * len(CELL_FEATURES) - 1, "stride": len(CELL_FEATURES),
                      "count": len(DIRECTIONS)}
"""Where ``action_mask`` reads the mask in an observation: action first + k is allowed iff
obs[start + k * stride] > 0.5 (the k-th neighbour's road flag); the others always are. Learned policies mask
their logits with it (policies.sharing.modules.MLPActorCritic)."""


@lru_cache(maxsize=4)
def _pool_trips(scenario_key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(drop-off node, trip road metres) of every request of a scenario's pool (module docstring: the drop-off
    is the pool's pick-up node whose road distance from the pick-up is closest to the trip length)."""
    scenario = _scenario(*scenario_key)
    pool, rules, city = scenario.tasks, scenario_key[2], scenario.city
    trip_m = np.asarray(pool.quantity, dtype=np.float64) / rules.work_minutes_per_km * 1000.0
    candidates = np.unique(pool.node)
    origins, row = np.unique(pool.node, return_inverse=True)
    road = city.distance.between(origins, candidates).astype(np.float64)
    choice = np.empty(len(pool), dtype=np.int64)
    for start in range(0, len(pool), 1024):
        part = slice(start, start + 1024)
        gap = np.abs(road[row[part]] - trip_m[part, None])
        gap[~np.isfinite(gap)] = np.inf
        choice[part] = gap.argmin(axis=1)
    drop = candidates[choice]
    drop.setflags(write=False)
    trip = road[row, choice]
    trip.setflags(write=False)
    return drop, trip


def env_config(world: RideHailingConfig, data_dir: str | None = None, cache_dir: str | None = None) -> dict:
    """The RLlib env_config of a world (plain data; the data folder made absolute: Tune changes directories)."""
    return {"world": to_dict(world), "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "cache_dir": cache_dir}


def action_mask(env, agent, obs) -> np.ndarray:
    """Allowed actions of a cell, read from its observation: stay, and each neighbour with roads."""
    obs = np.asarray(obs)
    mask = np.ones(NUM_ACTIONS, dtype=bool)
    width = len(CELL_FEATURES)
    mask[1:] = obs[width + width - 1:(1 + len(DIRECTIONS)) * width:width] > 0.5
    return mask


@dataclass(frozen=True)
class RideHailingView:
    """A read-only snapshot of one dispatch step for planners (every array is a read-only copy)."""

    step: int
    """The step about to be played (0 .. episode_steps - 1)."""
    agents: tuple[str, ...]
    """Agent id of every cell, cell index order (every cell acts every step)."""
    neighbour: np.ndarray
    """(num_cells, 8) the neighbour reached by action k + 1 (DIRECTIONS[k]), -1 where masked."""
    hub_road_m: np.ndarray
    """(num_cells, num_cells) road metres between the cells' hubs (inf for void cells)."""
    idle_drivers: np.ndarray
    """(num_cells,) idle drivers in each cell: what each cell dispatches."""
    arriving_drivers: np.ndarray
    """(num_cells,) busy drivers who become idle in each cell within the step."""
    order_cell: np.ndarray
    """(W,) cell of each waiting order (first come first) -- the orders this step's matching serves."""
    order_fare: np.ndarray
    """(W,) fare of each waiting order, CNY."""
    last_rewards: np.ndarray | None = None
    """(num_cells,) each cell's reward of the previous step (the world's own, before any team reward; 0 at the
    first step): what a learned actor keeping reward histories reads (policies.dyps.actor)."""

    def rows(self, agents) -> np.ndarray:
        """Cell indices of ``agents`` (agent ids)."""
        return np.array([int(agent.rsplit("_", 1)[1]) for agent in agents], dtype=np.int64)



class RideHailingEnv(MultiAgentEnv):
    """See the module docstring for the world, observation, action, reward and metrics."""

    metadata = {"render_modes": []}
    action_mask_layout = ACTION_MASK_LAYOUT
    """The mask's place in an observation, for learned policies (ACTION_MASK_LAYOUT)."""

    def __init__(self, env_config: dict | None = None):
        super().__init__()
        env_config = dict(env_config or {})
        self.config: RideHailingConfig = from_dict(RideHailingConfig, env_config.get("world"), "world").validate()
        c = self.config
        data_dir, cache_dir = env_config.get("data_dir"), env_config.get("cache_dir")
        self.scenario = scenario_for(c.rules, c.city, c.synthetic_tasks, data_dir, cache_dir)
        self.grid: CityGrid = grid_for(c.rules, c.city, c.synthetic_tasks, data_dir, cache_dir, c.rows, c.cols)
        key = (str(data_dir) if data_dir else None, str(cache_dir) if cache_dir else None, c.rules, c.city,
               c.synthetic_tasks)
        self._drop, self._trip_m = _pool_trips(key)
        pool = self.scenario.tasks
        self.step_s = c.step_minutes * 60.0
        span = float(pool.created[-1] - pool.created[0])
        self.orders_per_step = len(pool) * self.step_s / max(span, self.step_s)
        """Mean orders per step of the scenario's pool (what sets the number of drivers)."""
        self.num_drivers = c.num_drivers or max(1, int(round(self.orders_per_step / c.ratio)))
        n = self.grid.num_cells
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
        order = np.argsort(self.grid.node_cell, kind="stable")
        self._cell_nodes = order  # road nodes grouped by cell
        self._cell_start = np.concatenate([[0], np.cumsum(self.grid.nodes_in_cell)[:-1]])
        self._neighbour_index = np.concatenate(
            [np.arange(n)[:, None], np.where(self.grid.neighbour >= 0, self.grid.neighbour, n)], axis=1)
        rc = self.grid.row_col.astype(np.float64)
        self._position = np.stack([rc[:, 0] / max(self.grid.rows - 1, 1), rc[:, 1] / max(self.grid.cols - 1, 1)], 1)
        self._rng = np.random.default_rng(env_config.get("seed"))
        self.t = 0

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        c, rng, grid, pool = self.config, self._rng, self.grid, self.scenario.tasks
        horizon = c.episode_steps * self.step_s
        first, last = float(pool.created[0]), float(pool.created[-1])
        self.start = first + max(0.0, last - first - horizon) * rng.random()
        lo, hi = np.searchsorted(pool.created, [self.start, self.start + horizon], side="left")
        index = np.arange(lo, hi)
        self.o_pool = index
        self.o_node = pool.node[index]
        self.o_cell = grid.node_cell[self.o_node]
        self.o_fare = np.asarray(pool.rho_max[index], dtype=np.float64)
        self.o_drop = self._drop[index]
        self.o_trip_m = self._trip_m[index]
        self.o_bin = np.minimum(((pool.created[index] - self.start) // self.step_s).astype(np.int64),
                                c.episode_steps - 1)
        self.o_state = np.full(len(index), WAITING, dtype=np.int8)
        cells = np.flatnonzero(grid.valid)
        per_cell = np.full(len(cells), self.num_drivers // len(cells))
        extra = self.num_drivers - per_cell.sum()
        per_cell[rng.choice(len(cells), size=extra, replace=False)] += 1
        home = np.repeat(cells, per_cell)
        pick = (rng.random(len(home)) * grid.nodes_in_cell[home]).astype(np.int64)
        self.d_node = self._cell_nodes[self._cell_start[home] + pick]
        self.d_free = np.zeros(len(home))
        self.t = 0
        self._gmv = self._pickup_m = self._reposition_m = 0.0
        self._served = self._repositioned = self._invalid = 0
        self._return = 0.0
        self._last_rewards = np.zeros(grid.num_cells)
        self._log: list[dict] = []
        self.agents = list(self.possible_agents)
        return self._observe(), {agent: {} for agent in self.possible_agents}

    # ------------------------------------------------------------------ state
    @property
    def time_s(self) -> float:
        """Simulated seconds since the episode's start (the start of step t)."""
        return self.t * self.step_s

    def _waiting(self) -> np.ndarray:
        """Orders revealed by step t, not served, not lost (first come first)."""
        return np.flatnonzero((self.o_state == WAITING) & (self.o_bin <= self.t))

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n, cell = self.grid.num_cells, self.grid.node_cell
        now = self.time_s
        idle = self.d_free <= now + _EPS
        arriving = ~idle & (self.d_free <= now + self.step_s + _EPS)
        waiting = self._waiting()
        return (np.bincount(cell[self.d_node[idle]], minlength=n),
                np.bincount(cell[self.d_node[arriving]], minlength=n),
                waiting, np.bincount(self.o_cell[waiting], minlength=n))

    def _observe(self) -> dict:
        n = self.grid.num_cells
        idle, arriving, waiting, orders = self._counts()
        fares = np.bincount(self.o_cell[waiting], weights=self.o_fare[waiting], minlength=n)
        features = np.stack([idle / COUNT_SCALE, orders / COUNT_SCALE, fares / FARE_SCALE, arriving / COUNT_SCALE,
                             self.grid.valid.astype(np.float64)], axis=1)
        padded = np.vstack([features, np.zeros((1, len(CELL_FEATURES)))])
        obs = np.concatenate([padded[self._neighbour_index].reshape(n, -1),
                              np.full((n, 1), self.t / self.config.episode_steps), self._position], axis=1)
        obs = obs.astype(np.float32)
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
        n, now = grid.num_cells, self.time_s
        action = np.zeros(n, dtype=np.int64)
        for agent, value in action_dict.items():
            cell = self._index.get(agent)
            if cell is None:
                continue
            value = int(value)
            if value == 0:
                continue
            if 1 <= value <= len(DIRECTIONS) and grid.neighbour[cell, value - 1] >= 0:
                action[cell] = value
            else:
                self._invalid += 1
        target = np.where(action == 0, np.arange(n), grid.neighbour[np.arange(n), np.maximum(action - 1, 0)])
        idle = np.flatnonzero(self.d_free <= now + _EPS)
        home = grid.node_cell[self.d_node[idle]]
        dest = target[home]
        waiting = self._waiting()
        matched = np.full(len(idle), -1, dtype=np.int64)  # waiting-order row matched to each idle driver
        pickup = np.zeros(len(idle))
        if len(idle) and len(waiting):
            road = self.scenario.city.distance.between(self.d_node[idle], self.o_node[waiting]).T.astype(np.float64)
            road[self.o_cell[waiting][:, None] != dest[None, :]] = np.inf  # only drivers dispatched to the cell
            for row in np.flatnonzero(np.isin(self.o_cell[waiting], dest)):  # first come, first served
                driver = int(road[row].argmin())
                if np.isfinite(road[row, driver]):
                    matched[driver], pickup[driver] = row, road[row, driver]
                    road[:, driver] = np.inf
        hit = np.flatnonzero(matched >= 0)
        drivers, orders = idle[hit], waiting[matched[hit]]
        self.d_free[drivers] = now + (pickup[hit] + self.o_trip_m[orders]) / c.speed_mps
        self.d_node[drivers] = self.o_drop[orders]
        self.o_state[orders] = SERVED
        earned = np.bincount(home[hit], weights=self.o_fare[orders], minlength=n)
        step_gmv = float(self.o_fare[orders].sum())
        self._gmv += step_gmv
        self._served += len(orders)
        self._pickup_m += float(pickup[hit].sum())
        columns = (self.o_pool[orders], self.o_cell[orders], self.o_fare[orders], drivers, home[hit], dest[hit],
                   pickup[hit], self.o_trip_m[orders])
        self._log.extend({"step": self.t, "order": order, "order_cell": cell, "fare": fare, "driver": driver,
                          "driver_cell": origin, "dispatch_cell": target, "pickup_m": pick, "trip_m": trip}
                         for order, cell, fare, driver, origin, target, pick, trip
                         in zip(*(column.tolist() for column in columns)))
        move = np.flatnonzero((matched < 0) & (dest != home))
        if len(move):
            hubs = grid.hub[dest[move]]
            metres = road_m(self.scenario.city, self.d_node[idle[move]], hubs)
            self.d_free[idle[move]] = now + metres / c.speed_mps
            self.d_node[idle[move]] = hubs
            self._reposition_m += float(metres.sum())
            self._repositioned += len(move)
        offered = np.bincount(self.o_cell[waiting], minlength=n)
        served = np.bincount(self.o_cell[orders], minlength=n)
        expired = waiting[(self.o_state[waiting] == WAITING) & (self.o_bin[waiting] <= self.t - c.max_wait_steps + 1)]
        self.o_state[expired] = LOST
        self.t += 1
        done = self.t >= c.episode_steps
        if done:
            self.o_state[self.o_state == WAITING] = LOST
        if c.reward == "dispatch":
            rewards = earned * c.reward_scale
        else:
            rewards = np.full(n, step_gmv * c.reward_scale / n)
        self._last_rewards = rewards
        self._return += float(rewards.sum())
        if self.options.team_reward:
            rewards = np.full(n, float(rewards.sum()))
        obs = self._observe()
        reward_dict = {agent: float(rewards[i]) for i, agent in enumerate(self.possible_agents)}
        infos = {agent: {"orders": int(offered[i]), "served": int(served[i])}
                 for i, agent in enumerate(self.possible_agents)}
        flags = {agent: done for agent in self.possible_agents}
        return (obs, reward_dict, {**flags, "__all__": done}, {"__all__": False}, infos)

    # ------------------------------------------------------------------ rl-cs world interface
    def decision_view(self) -> RideHailingView:
        """A read-only snapshot of the step about to be played, for planners (rl_cs.evaluation)."""
        idle, arriving, waiting, _ = self._counts()
        return RideHailingView(step=self.t, agents=tuple(self.possible_agents), neighbour=self.grid.neighbour,
                               hub_road_m=self.grid.hub_road_m, idle_drivers=frozen(idle),
                               arriving_drivers=frozen(arriving), order_cell=frozen(self.o_cell[waiting]),
                               order_fare=frozen(self.o_fare[waiting]), last_rewards=frozen(self._last_rewards))

    def episode_metrics(self) -> dict[str, float]:
        """Business metrics of the episode so far (module docstring)."""
        orders = len(self.o_state)
        return {"gmv": self._gmv, "order_response_rate": self._served / max(orders, 1),
                "gmv_share": self._gmv / max(float(self.o_fare.sum()), 1e-9), "orders": float(orders),
                "served": float(self._served), "drivers": float(self.num_drivers),
                "reposition_km": self._reposition_m / 1000.0, "pickup_km": self._pickup_m / 1000.0,
                "invalid_actions": float(self._invalid), "return": self._return}

    def episode_log(self) -> list[dict]:
        """One record per served order: step, order (pool index), its cell and fare, the driver, the cell that
        dispatched it and the cell it was dispatched to, pick-up and trip road metres."""
        return list(self._log)

    def driver_state(self) -> dict[str, np.ndarray]:
        """Read-only copies of the drivers' nodes and the times they are free (tests and plots)."""
        return {"node": frozen(self.d_node), "free_at_s": frozen(self.d_free)}

    def order_state(self) -> np.ndarray:
        """Read-only copy of every episode order's state: 0 waiting or not yet revealed, 1 served, 2 lost."""
        return frozen(self.o_state)
