"""A public, read-only view of one decision step of the CSC world, for planners (heuristic baselines).

``CSCEnv.decision_view()`` returns a ``DecisionView``: a snapshot of exactly what a planner needs to choose
the actions of the current deciders, so that planners never read the world's private state and cannot
change it. Every array is a copy marked read-only (writing raises ``ValueError``); the world's own arrays stay
writable and the view does not follow later steps (take a new view after each ``step``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.csc_config import CSCConfig


def frozen(array) -> np.ndarray:
    """A read-only copy of ``array`` (the source keeps its own flags)."""
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy


@dataclass(frozen=True)
class DecisionView:
    """The world at one decision step. Tasks are indices into the episode's task window (0..num_tasks-1),
    workers indices 0..num_workers-1; decider rows are in observation order (row i is ``agents[i]``)."""

    time: float
    """Simulated time of the decision, seconds: arrivals and finish times are estimated from it."""
    config: CSCConfig
    """The world's config: speed_mps and work_rate turn road metres and remaining work into seconds;
    num_optional_tasks fixes the action space (tau_0 plus that many option slots)."""
    expected: np.ndarray
    """(num_tasks,) t_e per task, seconds: full payment if finished by then (and the capacity target before it)."""
    deadline: np.ndarray
    """(num_tasks,) t_d per task, seconds: no payment at or after it (and the capacity target after t_e)."""
    rho_max: np.ndarray
    """(num_tasks,) full payment per task: the value a coalition plans for."""
    zeta: float
    """Penalty rate per second after t_e (fraction of rho_max): the payment's linear decay."""
    remaining: np.ndarray
    """(num_tasks,) work still to do per task, worker-minutes: whether the workers already on it suffice."""
    worker_state: np.ndarray
    """(num_workers,) IDLE, TRAVELLING or WORKING (envs.csc): which workers are committed to a task."""
    worker_task: np.ndarray
    """(num_workers,) the task a committed worker travels to or works on, -1 when idle."""
    worker_arrival: np.ndarray
    """(num_workers,) when a committed worker arrives (arrived) at its task, seconds: when its work starts."""
    deciders: np.ndarray
    """(D,) worker index of each decider, in observation order."""
    agents: tuple[str, ...]
    """Agent id of each decider (the observation dict's keys, the action dict's keys), in the same order."""
    option_task: np.ndarray
    """(D, num_optional_tasks) the task of action slot s + 1 for each decider, nearest first; -1 where empty."""
    option_mask: np.ndarray
    """(D, num_optional_tasks) whether slot s holds a feasible task (the observation's action mask without tau_0)."""
    option_road: np.ndarray
    """(D, num_optional_tasks) road distance to each slot's task, metres (padding where empty): nearness and
    travel time."""

    @property
    def num_actions(self) -> int:
        """Size of each decider's action space: tau_0 plus the option slots."""
        return self.config.num_optional_tasks + 1

    def rows(self, agents) -> np.ndarray:
        """Decider rows of ``agents`` (agent ids, e.g. the observation dict's keys), in their order."""
        row_of = {agent: row for row, agent in enumerate(self.agents)}
        return np.array([row_of[agent] for agent in agents], dtype=np.int64)
