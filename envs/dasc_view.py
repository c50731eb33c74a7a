"""A public, read-only view of one decision step of the DASC world, for planners (the heuristic baselines).

``DASCEnv.decision_view()`` returns a ``DASCDecisionView``: the deciding subtasks (ready, unassigned, with at
least one feasible idle worker), the idle workers, and the world's own feasibility, distances and utility
terms between them. Every array is a read-only copy (envs.csc_view.frozen); the view does not follow later
steps. A planner answers with an action dict: 1 (recommend) or 0 per decider, and, if it chooses the
matching itself, ``{PLANNER_ASSIGNMENT: {agent: worker}}`` in the same dict (see envs.dasc).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.dasc_config import DASCConfig
from envs.dasc_matching import finish_times, utility


@dataclass(frozen=True)
class DASCDecisionView:
    """The world at one decision step. Decider rows are in observation order (row i is ``agents[i]``);
    worker columns are the idle workers in ``workers`` order."""

    time: float
    """Simulated time of the decision, seconds."""
    config: DASCConfig
    """The world's config (speed, range, kappa, zeta, ...)."""
    alpha: float
    """The env's current eta = {alpha, beta} (Eq. 13): what its own Kuhn-Munkres matching uses."""
    beta: float
    """See alpha."""
    agents: tuple[str, ...]
    """Agent id of each decider (the observation dict's keys)."""
    subtask: np.ndarray
    """(D,) flat subtask index of each decider (task * |T|_max + position in the task's DAG)."""
    task: np.ndarray
    """(D,) its task (index in the episode's window)."""
    ready_since: np.ndarray
    """(D,) when it became ready (all predecessors finished; for a root, the task's creation), seconds."""
    duration: np.ndarray
    """(D,) its duration on site, seconds."""
    expected: np.ndarray
    """(D,) its t_e^tau (critical path method against the task's t_e), seconds."""
    deadline: np.ndarray
    """(D,) its t_d^tau: it must finish strictly before this."""
    num_skills: np.ndarray
    """(D,) |K^tau|."""
    descendants: np.ndarray
    """(D,) subtasks of its task that cannot start before it finishes (transitive successors)."""
    share_on_time: np.ndarray
    """(D,) rho_max / |T|: Eq. 3's payment share when it finishes by t_e^tau."""
    share_late: np.ndarray
    """(D,) rho_min / |T| with rho_min = (1 - zeta (t_d - t_e)) rho: the share when it finishes after t_e^tau."""
    workers: np.ndarray
    """(W,) worker index of each idle worker (the columns)."""
    worker_skills: np.ndarray
    """(W,) |K^w| of each idle worker."""
    feasible: np.ndarray
    """(D, W) the world's feasibility: skill, range and deadline constraints (envs.dasc_matching)."""
    road: np.ndarray
    """(D, W) road distance from each idle worker to each decider, metres."""
    u_skill: np.ndarray
    """(D, W) Eq. 9."""
    u_dist: np.ndarray
    """(D, W) Eq. 10."""
    u_time: np.ndarray
    """(D,) Eq. 11 (one value per subtask)."""
    payment_bound: float
    """max over the episode's tasks of rho / |T|: the a-priori bound on one subtask's value that threshold
    algorithms assume known (ODTA)."""
    total_subtasks: int
    """Subtasks in the episode's task window (the arrivals an online algorithm expects)."""
    earliest_start: np.ndarray | None = None
    """(D,) the latest finish of each decider's predecessors: its work starts at max(arrival, this). In the
    past unless early matching (world.ready_when = assigned) offers subtasks whose predecessors still work."""

    def rows(self, agents) -> np.ndarray:
        """Decider rows of ``agents``, in their order."""
        row_of = {agent: row for row, agent in enumerate(self.agents)}
        return np.array([row_of[agent] for agent in agents], dtype=np.int64)

    def utility(self, alpha: float | None = None, beta: float | None = None) -> np.ndarray:
        """(D, W) Eq. 12 utility for eta = (alpha, beta) (default: the env's current eta)."""
        return utility(self.u_skill, self.u_dist, self.u_time, self.alpha if alpha is None else alpha,
                       self.beta if beta is None else beta)

    def finish_time(self) -> np.ndarray:
        """(D, W) when each pair would finish: max(now + road / speed, earliest_start) + duration."""
        return finish_times(self.time, self.road, self.duration, self.config.speed_mps, self.earliest_start)

    def pair_value(self) -> np.ndarray:
        """(D, W) what serving the subtask with the worker is worth to the platform by Eq. 3's terms: the
        payment share (on time or late, by the pair's finish time) minus kappa x road distance."""
        share = np.where(self.finish_time() <= self.expected[:, None], self.share_on_time[:, None],
                         self.share_late[:, None])
        return share - self.config.kappa * self.road
