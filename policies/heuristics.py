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
    """CAFE's Greedy baseline as the paper states it (§5.1: "assigns workers greedily to the nearest tasks
    that match the required skills"): every deciding worker goes to its nearest feasible skill-matching task.

    Nearest is by road distance among the worker's allowed option slots (the action mask: skill match,
    within range, t_d still reachable). There is no coordination: each worker decides alone, so two workers
    nearest the same task both go, even when one of them could finish it, and a worker goes to a task the
    workers already on site will finish. A decider always has an allowed slot, so Greedy never waits (tau_0
    only when a row has none). The coordinated planner that avoids those wasted trips is ``CoordinatedGreedy``
    (``greedy-coord``), our stronger variant.
    """

    name = "greedy"

    def act(self, view: DecisionView, obs: dict) -> dict:
        rows = view.rows(obs)
        mask = view.option_mask[rows]
        road = np.where(mask, view.option_road[rows], np.inf)
        choice = np.where(mask.any(axis=1), road.argmin(axis=1) + 1, 0)
        return {view.agents[row]: int(action) for row, action in zip(rows, choice)}


class CoordinatedGreedy(Heuristic):
    """Coordinated greedy (``greedy-coord``): ours, a stronger baseline beyond the paper, whose Greedy
    (``Greedy``) does not coordinate.

    Each deciding worker takes the nearest feasible task matching its skill (by road distance, the option
    list is sorted that way), but so that a crowd of idle workers does not all run to the one newest task, a
    task stops being taken once the workers already heading to it or on site can finish it by t_e (by t_d
    once t_e has passed); deciders are served nearest-first. A worker whose options are all covered waits
    (tau_0) and decides again at the next interval.
    """

    name = "greedy-coord"

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

