"""The city cut into a grid of cells: the agents of the ``ridehailing`` and ``vaccine`` worlds (DyPS, paper 002,
§4.1: "resources in each grid are controlled by one agent ... each agent can dispatch resources in its grid to
target grids").

The grid is laid over the bounding box of the city's road nodes (the synthetic city or an OpenStreetMap
network from ``--data-dir``): ``rows`` x ``cols`` equal cells, row 0 the southernmost, column 0 the
westernmost; cell ``row * cols + col`` is agent ``cell_<index>``. A road node belongs to the cell its
coordinates fall in. Each cell with road nodes has a *hub*: its road node nearest the cell's centre, where
drivers (or vaccine shipments) sent to the cell go. A cell without a road node (a park, a river, the edge of
an OSM extract: central Chengdu's 10 x 10 grid has two) is *void*: its agent exists (Table 1's agent counts
hold) but nothing is ever in it, and no neighbour can send anything there (its neighbours' masks forbid it).

A grid "does not divide the map" when at least half of its cells would be void (it is finer than the road
network); building one is an InputError naming ``world.grid_rows/grid_cols``.

Neighbours are the 8 surrounding cells (Moore neighbourhood), in the order of ``DIRECTIONS``; a neighbour
outside the grid or void is -1. Road distances (hub to hub, node to hub) come from the city's precomputed
distance oracle (rl_cs.data.city.DistanceOracle).

This module also holds the scenario loader both worlds share (the one data layer of rl_cs.data, cached once
per process like the CSC world's).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rl_cs.data.city import City, SyntheticCityConfig
from rl_cs.data.scenario import Scenario, load_scenario
from rl_cs.data.tasks import SyntheticTasksConfig, TaskRules
from rl_cs.errors import require
from envs.csc_view import frozen

DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
"""Neighbour order of every neighbour table and of the worlds' move actions (action k + 1 = DIRECTIONS[k])."""
OFFSETS = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)])
"""(d_row, d_col) of each direction; rows grow northwards (y), columns eastwards (x)."""
MAX_GRID_SIDE = 50
"""Largest grid_rows / grid_cols (DyPS Table 1 uses 6 x 6 and 10 x 10; central Chengdu has 2,728 road nodes)."""


def cell_id(index: int) -> str:
    return f"cell_{index}"


@dataclass(frozen=True)
class CityGrid:
    """A rows x cols grid over a city (module docstring). Arrays are read-only."""

    rows: int
    cols: int
    origin: np.ndarray
    """(2,) south-west corner of the grid, metres (the city's frame)."""
    cell_size: np.ndarray
    """(2,) width and height of a cell, metres."""
    node_cell: np.ndarray
    """(num_nodes,) the cell of every road node."""
    nodes_in_cell: np.ndarray
    """(num_cells,) how many road nodes each cell holds (0: void)."""
    hub: np.ndarray
    """(num_cells,) each cell's hub node (its road node nearest the cell centre), -1 for a void cell."""
    valid: np.ndarray
    """(num_cells,) whether the cell holds a road node."""
    neighbour: np.ndarray
    """(num_cells, 8) neighbour cell in each of DIRECTIONS, -1 outside the grid or void."""
    hub_road_m: np.ndarray
    """(num_cells, num_cells) road distance hub to hub, metres; inf to or from a void cell."""

    @property
    def num_cells(self) -> int:
        return self.rows * self.cols

    @property
    def row_col(self) -> np.ndarray:
        """(num_cells, 2) row and column of every cell."""
        index = np.arange(self.num_cells)
        return np.stack([index // self.cols, index % self.cols], axis=1)



def build_grid(city: City, rows: int, cols: int, where: str = "world") -> CityGrid:
    """The grid of ``city``; an InputError naming ``{where}.grid_rows/grid_cols`` when it does not divide the map
    (at least half its cells void)."""
    xy = city.node_xy
    low, high = xy.min(axis=0), xy.max(axis=0)
    size = np.maximum(high - low, 1.0) / np.array([cols, rows])
    col = np.minimum(((xy[:, 0] - low[0]) / size[0]).astype(np.int64), cols - 1)
    row = np.minimum(((xy[:, 1] - low[1]) / size[1]).astype(np.int64), rows - 1)
    node_cell = row * cols + col
    num_cells = rows * cols
    counts = np.bincount(node_cell, minlength=num_cells)
    valid = counts > 0
    void = int((~valid).sum())
    require(void * 2 < num_cells, f"{where}.grid_rows/grid_cols",
            f"a {rows} x {cols} grid does not divide the map: {void} of its {num_cells} cells hold no road node "
            f"(the map has {city.num_nodes:,} road nodes over {high[0] - low[0]:,.0f} m x {high[1] - low[1]:,.0f} m)",
            "use a coarser grid; DyPS Table 1 uses 6 x 6 and 10 x 10")
    centre = low + (np.stack([node_cell % cols, node_cell // cols], axis=1) + 0.5) * size
    gap = np.linalg.norm(xy - centre, axis=1)
    order = np.lexsort((gap, node_cell))  # by cell, then nearest the centre first
    first = np.ones(len(order), dtype=bool)
    first[1:] = node_cell[order][1:] != node_cell[order][:-1]
    hub = np.full(num_cells, -1, dtype=np.int64)
    hub[node_cell[order][first]] = order[first]
    index = np.arange(num_cells)
    r, c = index // cols, index % cols
    nr, nc = r[:, None] + OFFSETS[None, :, 0], c[:, None] + OFFSETS[None, :, 1]
    inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
    neighbour = np.where(inside, nr * cols + nc, -1)
    neighbour = np.where(inside & valid[np.clip(neighbour, 0, None)], neighbour, -1)
    cells = np.flatnonzero(valid)
    hub_road_m = np.full((num_cells, num_cells), np.inf)
    hub_road_m[np.ix_(cells, cells)] = city.distance.between(hub[cells], hub[cells])
    return CityGrid(rows, cols, frozen(low), frozen(size), frozen(node_cell), frozen(counts), frozen(hub),
                    frozen(valid), frozen(neighbour), frozen(hub_road_m))


def road_m(city: City, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Road distance from ``src[i]`` to ``dst[i]`` (element-wise), metres, from the city's distance oracle."""
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    if city.distance.matrix is not None:
        return city.distance.matrix[src, dst].astype(np.float64)
    sources, row = np.unique(src, return_inverse=True)
    targets, col = np.unique(dst, return_inverse=True)
    return city.distance.between(sources, targets)[row, col].astype(np.float64)


# ---------------------------------------------------------------------------------------------- scenarios
@lru_cache(maxsize=4)
def _scenario(data_dir: str | None, cache_dir: str | None, rules: TaskRules, city: SyntheticCityConfig,
              tasks: SyntheticTasksConfig) -> Scenario:
    return load_scenario(data_dir, rules, city, tasks, Path(cache_dir) if cache_dir else None)


def scenario_for(rules: TaskRules, city: SyntheticCityConfig, tasks: SyntheticTasksConfig,
                 data_dir: str | None, cache_dir: str | None = None) -> Scenario:
    """The scenario (city + request pool) of a world, loaded once per process: the synthetic city and requests,
    or the real data of ``data_dir`` (rl_cs.data.scenario.load_scenario, the data layer every world shares)."""
    return _scenario(str(data_dir) if data_dir else None, str(cache_dir) if cache_dir else None, rules, city, tasks)


@lru_cache(maxsize=8)
def _grid(scenario_key: tuple, rows: int, cols: int) -> CityGrid:
    return build_grid(_scenario(*scenario_key).city, rows, cols)


def grid_for(rules: TaskRules, city: SyntheticCityConfig, tasks: SyntheticTasksConfig, data_dir: str | None,
             cache_dir: str | None, rows: int, cols: int) -> CityGrid:
    """The grid of a world's city, built once per process (its hub distances are a small all-pairs table)."""
    key = (str(data_dir) if data_dir else None, str(cache_dir) if cache_dir else None, rules, city, tasks)
    return _grid(key, rows, cols)


# --- options for learned methods (both cell worlds; the counterpart of envs.gridworld's) ---------------------
@dataclass(frozen=True)
class CellOptions:
    """What a learned method asks of a cell world beside its own observation and reward (env_config keys
    beside ``world``; all off by default, and then every observation and reward is the world's own):

    * ``agent_id``: each cell's observation gets its one-hot index appended (num_cells floats): PS-id's input;
    * ``global_state``: each cell's observation gets the world's state s appended, after the id when that is
      on: every cell's own features (the first ``width`` floats of its observation, cell order) and the
      shared time feature -- not every cell's whole observation (the 8 neighbour blocks would repeat each
      cell 9 times). MAPPO's agent-specific global state [o_i, s] for a centralised critic; the actor reads
      only o_i (policies.sharing.modules.MLPActorCritic ``actor_inputs``);
    * ``team_reward``: every cell receives the sum of all cells' rewards of the step (MAPPO's shared reward,
      DyPS §4.4); ``episode_metrics()["return"]`` stays the sum of the world's own rewards.
    """

    agent_id: bool = False
    global_state: bool = False
    team_reward: bool = False

    @classmethod
    def of(cls, env_config: dict) -> "CellOptions":
        return cls(*(bool(env_config.get(key)) for key in ("agent_id", "global_state", "team_reward")))

    def size(self, obs_size: int, num_cells: int, width: int) -> int:
        """Floats of an observation with these options."""
        return obs_size + num_cells * self.agent_id + (num_cells * width + 1) * self.global_state


def extend_cell_observations(observations, agent_id: bool, global_state: bool, width: int,
                             time_index: int) -> list[np.ndarray]:
    """[o_i, one-hot i if agent_id, s if global_state] of every cell (cell order); s = every cell's first
    ``width`` floats (its own features) and the time feature o[time_index] (CellOptions)."""
    own = np.asarray([np.asarray(o, np.float32).ravel() for o in observations], np.float32)
    n = len(own)
    parts = [own]
    if agent_id:
        parts.append(np.eye(n, dtype=np.float32))
    if global_state:
        state = np.concatenate([own[:, :width].ravel(), own[:1, time_index]])
        parts.append(np.broadcast_to(state, (n, len(state))))
    return list(np.concatenate(parts, axis=1)) if len(parts) > 1 else list(own)
