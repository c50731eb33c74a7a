"""The matching stage of RMO (paper 001, "Matching Utility"): feasibility, the utility u (Eq. 9-13) and
Kuhn-Munkres between recommended subtasks and available workers.

Feasibility is the world's rule, never a penalty: a pair (subtask tau, worker w) is feasible only if
K^tau is within K^w (skill constraint), the road distance is at most L^w, and the subtask can finish before
its t_d: now + distance / speed + duration < t_d^tau (deadline constraint; the order constraint holds
because only ready subtasks are offered). Kuhn-Munkres (``scipy.optimize.linear_sum_assignment``, maximising)
never returns an infeasible pair: infeasible entries get a weight no optimum would use, and any pair on one
is dropped from the result.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def utility_weights(alpha: float, beta: float) -> tuple[float, float, float]:
    """Eq. 13: v1 = alpha beta, v2 = alpha (1 - beta), v3 = 1 - alpha (each in [0, 1], summing to 1)."""
    return alpha * beta, alpha * (1.0 - beta), 1.0 - alpha


def skill_utility(subtask_skills: np.ndarray, worker_skills: np.ndarray) -> np.ndarray:
    """Eq. 9: u_skill = |K^tau| / |K^w|, (D, W) from skill counts (D,) and (W,); a worker without skills
    (never feasible for a subtask needing one) counts as one skill to keep the ratio finite."""
    return np.asarray(subtask_skills, dtype=np.float64)[:, None] / np.maximum(worker_skills, 1)[None, :]


def distance_utility(road: np.ndarray, range_m: float) -> np.ndarray:
    """Eq. 10: u_dist = (L^w - distance) / L^w (in [0, 1] on feasible pairs)."""
    return (range_m - np.asarray(road, dtype=np.float64)) / range_m


def time_utility(now: float, expected: np.ndarray, deadline: np.ndarray) -> np.ndarray:
    """Eq. 11: u_time = (1 / e) exp((t - t_e) / (t_d - t_e)): grows towards 1/e at t_e and to 1 at t_d,
    faster once t_e has passed (the payment then decays). Clipped to [0, 1]."""
    expected, deadline = np.asarray(expected, dtype=np.float64), np.asarray(deadline, dtype=np.float64)
    span = np.maximum(deadline - expected, 1e-9)
    return np.clip(np.exp((now - expected) / span - 1.0), 0.0, 1.0)


def utility(u_skill: np.ndarray, u_dist: np.ndarray, u_time: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Eq. 12: u = v1 u_skill + v2 u_dist + v3 u_time with v from eta (Eq. 13); u_time is per subtask (D,)."""
    v1, v2, v3 = utility_weights(alpha, beta)
    return v1 * u_skill + v2 * u_dist + v3 * np.asarray(u_time)[:, None]


def finish_times(now: float, road: np.ndarray, duration: np.ndarray, speed_mps: float,
                 earliest_start: np.ndarray | None = None) -> np.ndarray:
    """(D, W) when each pair would finish: work starts on arrival (now + road / speed), or once every
    predecessor has finished (``earliest_start``, (D,), with early matching), and lasts the duration."""
    start = now + np.asarray(road, dtype=np.float64) / speed_mps
    if earliest_start is not None:
        start = np.maximum(start, np.asarray(earliest_start, dtype=np.float64)[:, None])
    return start + np.asarray(duration, dtype=np.float64)[:, None]


def feasible_pairs(now: float, subtask_skills: np.ndarray, worker_skills: np.ndarray, road: np.ndarray,
                   duration: np.ndarray, deadline: np.ndarray, range_m: float, speed_mps: float,
                   earliest_start: np.ndarray | None = None) -> np.ndarray:
    """(D, W) bool: skill (K^tau within K^w, as bitmasks), range (road <= L^w) and deadline
    (finish_times(...) < t_d^tau) constraints."""
    subtask_skills = np.asarray(subtask_skills, dtype=np.int64)
    worker_skills = np.asarray(worker_skills, dtype=np.int64)
    skilled = (subtask_skills[:, None] & ~worker_skills[None, :]) == 0
    finish = finish_times(now, road, duration, speed_mps, earliest_start)
    return skilled & (road <= range_m) & (finish < np.asarray(deadline)[:, None])


def greedy_matching(road: np.ndarray, feasible: np.ndarray, order: np.ndarray):
    """REC's matching stage: rows in ``order`` each take the free feasible column with the lowest road
    distance. Returns (rows, columns) sorted by row; infeasible pairs are never returned."""
    taken = np.zeros(feasible.shape[1], dtype=bool)
    rows, cols = [], []
    for row in np.asarray(order, dtype=np.int64).tolist():
        free = feasible[row] & ~taken
        if free.any():
            col = int(np.argmin(np.where(free, road[row], np.inf)))
            taken[col] = True
            rows.append(row)
            cols.append(col)
    index = np.argsort(rows, kind="stable")
    return np.asarray(rows, dtype=np.int64)[index], np.asarray(cols, dtype=np.int64)[index]


def kuhn_munkres(weights: np.ndarray, feasible: np.ndarray, max_cardinality: bool = True):
    """Maximum-utility matching on the feasible pairs of a (D, W) utility matrix: (rows, columns), pairs
    sorted by row. With ``max_cardinality`` as many rows as possible are matched first and utility is
    maximised among those matchings; otherwise total utility alone is maximised (utilities are >= 0 on
    feasible pairs; a tiny bonus per pair breaks ties towards matching). Infeasible pairs are never returned."""
    weights = np.asarray(weights, dtype=np.float64)
    feasible = np.asarray(feasible, dtype=bool)
    empty = np.zeros(0, dtype=np.int64)
    if weights.size == 0 or not feasible.any():
        return empty, empty
    rows_kept = np.flatnonzero(feasible.any(axis=1))  # rows and columns without a feasible pair play no part
    cols_kept = np.flatnonzero(feasible.any(axis=0))
    w = weights[np.ix_(rows_kept, cols_kept)]
    f = feasible[np.ix_(rows_kept, cols_kept)]
    if max_cardinality:
        shifted = w - w[f].min()  # >= 0; the same shift for every pair keeps the order of equal-size matchings
        penalty = -(min(w.shape) + 1) * (float(shifted[f].max()) + 1.0)  # one more pair outweighs any utility
        matrix = np.where(f, shifted, penalty)
    else:
        matrix = np.where(f, w + 1e-9, 0.0)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    keep = f[rows, cols]
    return rows_kept[rows[keep]], cols_kept[cols[keep]]


def brute_force_matching(weights: np.ndarray, feasible: np.ndarray, max_cardinality: bool = True):
    """The best (cardinality, utility) or utility of every matching on the feasible pairs, by enumeration
    (tests only: exponential). Returns (cardinality, total utility)."""
    weights, feasible = np.asarray(weights, dtype=np.float64), np.asarray(feasible, dtype=bool)
    rows, cols = weights.shape
    best = (0, 0.0) if max_cardinality else (0.0,)

    def search(row: int, used: frozenset, count: int, total: float) -> None:
        nonlocal best
        if row == rows:
            key = (count, total) if max_cardinality else (total,)
            if key > best:
                best = key
            return
        search(row + 1, used, count, total)
        for col in range(cols):
            if feasible[row, col] and col not in used:
                search(row + 1, used | {col}, count + 1, total + weights[row, col])

    search(0, frozenset(), 0, 0.0)
    return best

