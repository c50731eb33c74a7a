"""Heuristic baselines that act on the CSC world through the same evaluation path as learned policies.

A heuristic is called once per env step with the env and its observation dict and returns an action
dict, like a trained RLModule would. Heuristics may read the world's state (they are planners, not
learners); they never change it.
"""

from __future__ import annotations

import numpy as np

from envs.csc import IDLE, CSCEnv, worker_id


class Heuristic:
    name = "heuristic"

    def reset(self, seed: int | None) -> None:
        """Called at the start of every evaluation episode."""

    def act(self, env: CSCEnv, obs: dict) -> dict:
        raise NotImplementedError


class Greedy(Heuristic):
    """CAFE's Greedy baseline: each deciding worker takes the nearest feasible task matching its skill.

    Nearest is by road distance (the option list is sorted that way). So that a crowd of idle workers
    does not all run to the one newest task, a task stops being taken once the workers already heading
    to it or on site can finish it by t_e (by t_d once t_e has passed); deciders are served nearest-first.
    A worker whose options are all covered waits (tau_0) and decides again at the next interval.
    """

    name = "greedy"

    def act(self, env: CSCEnv, obs: dict) -> dict:
        c, tasks = env.config, env.tasks
        rate = c.work_rate / 60.0
        target = np.where(env.time < tasks.expected, tasks.expected, tasks.deadline)
        busy = env.w_state != IDLE
        usable = np.maximum(0.0, target[env.w_task[busy]] - np.maximum(env.w_arrive[busy], env.time))
        capacity = np.bincount(env.w_task[busy], weights=rate * usable, minlength=c.num_tasks)
        actions = {}
        rows = [env._decider_row[agent] for agent in obs]
        for row in sorted(rows, key=lambda r: env._option_road[r, 0]):
            choice = 0
            for slot in np.flatnonzero(env._option_mask[row]):
                task = env._open[env._option_index[row, slot]]
                if capacity[task] < env.remaining[task]:
                    arrival = env.time + env._option_road[row, slot] / c.speed_mps
                    capacity[task] += rate * max(0.0, target[task] - arrival)
                    choice = slot + 1
                    break
            actions[worker_id(env._deciders[row])] = choice
        return actions


class RandomPolicy(Heuristic):
    """Uniform over the allowed actions (tau_0 included): the floor every method must beat."""

    name = "random"

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, env: CSCEnv, obs: dict) -> dict:
        size = env.layout.num_actions
        return {agent: int(self.rng.choice(np.flatnonzero(o[-size:]))) for agent, o in obs.items()}

