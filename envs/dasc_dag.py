"""DASC tasks: random seeded DAGs of subtasks, their skills and durations, and the critical path method.

Pure functions on numpy arrays (no world state), so tests can check them on hand-made DAGs:

- ``random_dag``: |T| nodes already in a topological order (node i may precede node j only if i < j), each
  forward pair an edge with probability p; acyclic by construction.
- ``critical_path``: earliest finish per node (forward pass) and the task's critical path length; each
  activity weighs its duration plus the travel allowance of the plan.
- ``latest_finish``: the latest finish of every node such that every successor can still be done by the
  horizon T (backward pass): LF_j = T for a sink, else min over successors k of (LF_k - w_k).
- ``task_times``: RMO's MDP section, "by applying the critical path method to the deadline t_d and expected
  completion time t_e of a task we infer the values of the subtasks": t_e = t_c + f_e CP, t_d = t_c + f_d CP,
  and each subtask's t_e / t_d is its latest finish against t_e / t_d.
- ``skewnorm_params`` / ``subtask_skill_counts``: |K^tau| from the right-skewed normal of the paper's set-up.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import skewnorm


def random_dag(size: int, edge_probability: float, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool adjacency, ``adj[i, j]``: i must finish before j starts; strictly upper triangular."""
    upper = np.triu(np.ones((size, size), dtype=bool), k=1)
    return upper & (rng.random((size, size)) < edge_probability)


def is_acyclic(adjacency: np.ndarray) -> bool:
    """Kahn's algorithm: every node can be removed in some order with no remaining predecessor."""
    adjacency = np.asarray(adjacency, dtype=bool)
    indegree = adjacency.sum(axis=0).astype(int)
    queue = list(np.flatnonzero(indegree == 0))
    removed = 0
    while queue:
        node = queue.pop()
        removed += 1
        for successor in np.flatnonzero(adjacency[node]):
            indegree[successor] -= 1
            if indegree[successor] == 0:
                queue.append(successor)
    return removed == len(adjacency)


def topological_order(adjacency: np.ndarray) -> np.ndarray:
    """A topological order of the nodes (ValueError on a cycle)."""
    adjacency = np.asarray(adjacency, dtype=bool)
    indegree = adjacency.sum(axis=0).astype(int)
    queue = sorted(np.flatnonzero(indegree == 0).tolist())
    order = []
    while queue:
        node = queue.pop(0)
        order.append(node)
        for successor in np.flatnonzero(adjacency[node]):
            indegree[successor] -= 1
            if indegree[successor] == 0:
                queue.append(int(successor))
    if len(order) != len(adjacency):
        raise ValueError("the graph has a cycle")
    return np.array(order, dtype=np.int64)


def critical_path(adjacency: np.ndarray, weights: np.ndarray, order: np.ndarray | None = None
                  ) -> tuple[np.ndarray, float]:
    """Earliest finish EF_j = w_j + max over predecessors i of EF_i (0 without), and the critical path
    length CP = max_j EF_j (forward pass of the critical path method). ``order``: a topological order, if known."""
    adjacency = np.asarray(adjacency, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    finish = np.zeros(len(weights))
    for node in (topological_order(adjacency) if order is None else order):
        predecessors = np.flatnonzero(adjacency[:, node])
        finish[node] = weights[node] + (finish[predecessors].max() if len(predecessors) else 0.0)
    return finish, float(finish.max()) if len(finish) else 0.0


def latest_finish(adjacency: np.ndarray, weights: np.ndarray, horizon: float,
                  order: np.ndarray | None = None) -> np.ndarray:
    """LF_j = horizon for a sink, else min over successors k of (LF_k - w_k) (backward pass)."""
    adjacency = np.asarray(adjacency, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    latest = np.full(len(weights), float(horizon))
    for node in (topological_order(adjacency) if order is None else order)[::-1]:
        successors = np.flatnonzero(adjacency[node])
        if len(successors):
            latest[node] = (latest[successors] - weights[successors]).min()
    return latest


def task_times(adjacency: np.ndarray, duration: np.ndarray, created: float, travel_s: float,
               expected_factor: float, deadline_factor: float):
    """(t_e, t_d, subtask t_e, subtask t_d, critical path) of one task: activities weigh duration + the
    travel allowance; t_e = t_c + f_e CP and t_d = t_c + f_d CP; a subtask's t_e (t_d) is its latest finish
    against the task's t_e (t_d)."""
    weights = np.asarray(duration, dtype=np.float64) + travel_s
    order = topological_order(adjacency)
    _, length = critical_path(adjacency, weights, order)
    expected = created + expected_factor * length
    deadline = created + deadline_factor * length
    return (expected, deadline, latest_finish(adjacency, weights, expected, order),
            latest_finish(adjacency, weights, deadline, order), length)


def descendants(adjacency: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Number of nodes reachable from each node (its transitive successors)."""
    adjacency = np.asarray(adjacency, dtype=bool)
    reach = adjacency.copy()
    for node in (topological_order(adjacency) if order is None else order)[::-1]:
        for successor in np.flatnonzero(adjacency[node]):
            reach[node] |= reach[successor]
    return reach.sum(axis=1)


def skewnorm_params(mean: float, var: float, skew: float) -> tuple[float, float]:
    """(loc, scale) of scipy's skewnorm with shape ``skew`` whose mean and variance are the given ones:
    delta = a / sqrt(1 + a^2), scale^2 = var / (1 - 2 delta^2 / pi), loc = mean - scale delta sqrt(2 / pi)."""
    delta = skew / math.sqrt(1.0 + skew * skew)
    scale = math.sqrt(var / (1.0 - 2.0 * delta * delta / math.pi))
    return mean - scale * delta * math.sqrt(2.0 / math.pi), scale


def subtask_skill_counts(count: int, mean: float, var: float, skew: float, low: int, high: int,
                         rng: np.random.Generator) -> np.ndarray:
    """|K^tau| per subtask: a right-skewed normal (scipy.stats.skewnorm, shape ``skew``, with the given mean
    and variance: the paper's mu 1.5, sigma^2 0.5, skew 10), rounded and clipped to [low, high]."""
    loc, scale = skewnorm_params(mean, var, skew)
    draws = skewnorm.rvs(skew, loc=loc, scale=scale, size=count, random_state=rng)
    return np.clip(np.rint(draws), low, high).astype(np.int64)


def random_skill_sets(sizes: np.ndarray, categories: int, rng: np.random.Generator) -> np.ndarray:
    """(len(sizes), categories) bool: row i holds sizes[i] distinct categories chosen uniformly."""
    ranks = rng.random((len(sizes), categories)).argsort(axis=1).argsort(axis=1)
    return ranks < np.asarray(sizes)[:, None]
