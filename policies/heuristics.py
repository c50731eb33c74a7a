"""Heuristic baselines that act on the CSC world through the same evaluation path as learned policies.

A heuristic is called once per env step with the world's decision view (envs.csc_view.DecisionView, from
``CSCEnv.decision_view()``) and the observation dict, and returns an action dict, like a trained RLModule
would. Heuristics may read the world's state through the view (they are planners, not learners); the view is
read-only, so they cannot change it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from envs.csc import IDLE
from envs.csc_view import DecisionView


class Actor(Protocol):
    """Anything the evaluation path (rl_cs.evaluation) can run: heuristics and trained modules."""

    name: str

    def reset(self, seed: int | None) -> None:
        """Called at the start of every evaluation episode."""

    def act(self, view: DecisionView, obs: dict) -> dict:
        """The action of every agent in ``obs`` (the deciders of ``view``)."""


class Heuristic:
    name = "heuristic"

    def reset(self, seed: int | None) -> None:
        """Called at the start of every evaluation episode."""

    def act(self, view: DecisionView, obs: dict) -> dict:
        raise NotImplementedError


class Greedy(Heuristic):
    """CAFE's Greedy baseline: each deciding worker takes the nearest feasible task matching its skill.

    Nearest is by road distance (the option list is sorted that way). So that a crowd of idle workers
    does not all run to the one newest task, a task stops being taken once the workers already heading
    to it or on site can finish it by t_e (by t_d once t_e has passed); deciders are served nearest-first.
    A worker whose options are all covered waits (tau_0) and decides again at the next interval.
    """

    name = "greedy"

    def act(self, view: DecisionView, obs: dict) -> dict:
        c = view.config
        rate = c.work_rate / 60.0
        target = np.where(view.time < view.expected, view.expected, view.deadline)
        busy = view.worker_state != IDLE
        usable = np.maximum(0.0, target[view.worker_task[busy]] - np.maximum(view.worker_arrival[busy], view.time))
        capacity = np.bincount(view.worker_task[busy], weights=rate * usable, minlength=c.num_tasks)
        actions = {}
        for row in sorted(view.rows(obs), key=lambda r: view.option_road[r, 0]):
            choice = 0
            for slot in np.flatnonzero(view.option_mask[row]):
                task = view.option_task[row, slot]
                if capacity[task] < view.remaining[task]:
                    arrival = view.time + view.option_road[row, slot] / c.speed_mps
                    capacity[task] += rate * max(0.0, target[task] - arrival)
                    choice = slot + 1
                    break
            actions[view.agents[row]] = choice
        return actions


class RandomPolicy(Heuristic):
    """Uniform over the allowed actions (tau_0 included): the floor every method must beat."""

    name = "random"

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, view: DecisionView, obs: dict) -> dict:
        size = view.num_actions
        return {agent: int(self.rng.choice(np.flatnonzero(o[-size:]))) for agent, o in obs.items()}

