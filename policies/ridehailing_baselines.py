"""Rule-based baselines of the ride-hailing world (``ridehailing``), acting on its read-only decision view
(envs.ridehailing.RideHailingView) through the evaluation path every method shares (rl_cs.evaluation).

DyPS (paper 002) Appendix A.2, Table 7 names two "common rule-based methods": "(1) Greedy, which prioritizes
high-priced orders, and (2) Nearest, which prioritizes the nearest orders". In the paper's public simulator
(GitHub tsinghua-fib-lab/DyPS, algo/non_nueral/myopic.py and distance.py) they re-rank each grid's candidate
order list -- by fee, descending, and by nearness -- before its idle drivers take orders in that rank. In our
world the matching inside a cell is the world's own rule (first come, first served, nearest driver), and a
cell's decision is where to send its idle drivers (itself or a neighbour), so we carry each rule over to that
decision (assumed; the paper says no more):

* ``rh-greedy`` (Greedy): each cell sends its idle drivers to the reachable cell (itself or a neighbour with
  roads) whose waiting orders are worth the most to them: the sum of the n highest fares waiting there, n = the
  cell's idle drivers. Ties keep the drivers home.
* ``rh-nearest`` (Nearest): each cell's idle drivers take the nearest orders: they stay if their own cell has
  a waiting order, else go to the neighbour with waiting orders whose hub is nearest by road; with none, stay.

Both are uncoordinated, like the paper's: every cell decides alone, so several cells may send their drivers to
the same neighbour's few orders while that neighbour's own drivers serve them. ``rh-stay`` (ours: nobody is ever
dispatched, every cell serves only its own orders) is the floor a dispatching policy must beat.
"""

from __future__ import annotations

import numpy as np

from envs.ridehailing import RideHailingView


def _reachable(view: RideHailingView, cell: int) -> np.ndarray:
    """Actions a cell may take (0 = stay, k = neighbour DIRECTIONS[k - 1]) and the cells they reach."""
    neighbours = view.neighbour[cell]
    actions = np.concatenate([[0], 1 + np.flatnonzero(neighbours >= 0)])
    return actions, np.concatenate([[cell], neighbours[neighbours >= 0]])


class RideHailingGreedy:
    """Greedy of DyPS Table 7 (module docstring): drivers go where the highest fares wait."""

    name = "rh-greedy"

    def reset(self, seed: int | None) -> None:
        pass

    def act(self, view: RideHailingView, obs: dict) -> dict:
        fares_by_cell = [np.sort(view.order_fare[view.order_cell == cell])[::-1]
                         for cell in range(len(view.agents))]
        actions = {}
        for agent, cell in zip(obs, view.rows(obs)):
            drivers = int(view.idle_drivers[cell])
            choice = 0
            if drivers:
                options, cells = _reachable(view, cell)
                value = np.array([fares_by_cell[c][:drivers].sum() for c in cells])
                choice = int(options[int(value.argmax())])  # the first maximum: home on ties
            actions[agent] = choice
        return actions


class RideHailingNearest:
    """Nearest of DyPS Table 7 (module docstring): drivers serve their own cell, else the nearest neighbour
    with waiting orders."""

    name = "rh-nearest"

    def reset(self, seed: int | None) -> None:
        pass

    def act(self, view: RideHailingView, obs: dict) -> dict:
        has_orders = np.bincount(view.order_cell, minlength=len(view.agents)) > 0
        actions = {}
        for agent, cell in zip(obs, view.rows(obs)):
            choice = 0
            if view.idle_drivers[cell] and not has_orders[cell]:
                options, cells = _reachable(view, cell)
                busy = has_orders[cells[1:]]
                if busy.any():
                    distance = np.where(busy, view.hub_road_m[cell, cells[1:]], np.inf)
                    choice = int(options[1 + int(distance.argmin())])
            actions[agent] = choice
        return actions


class RideHailingStay:
    """Nobody is dispatched: every cell's idle drivers wait for its own orders (ours: the floor)."""

    name = "rh-stay"

    def reset(self, seed: int | None) -> None:
        pass

    def act(self, view: RideHailingView, obs: dict) -> dict:
        return {agent: 0 for agent in obs}
