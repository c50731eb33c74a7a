"""NTS, nonuniform-cost-aware task selection (§4.3, Eq. 9-14), and the allocation every scheme ends with.

Reading of Eq. 11: taken literally (V_x' = max_x'' beta V_x'' + R, V initialised with UPS) the iteration is a
beta-contraction whose fixed point does not depend on its start, so UPS would vanish from QRS. We keep UPS
as what Definition 14 says a state carries, the value of sensing there, i.e. the state's own reward:

    V_x' = UPS_x' + max_x'' [ beta V_x'' + R_[x',x''] ],    R_[x',x''] = gamma / (Distance_[x',x''] + d_0)

started at V = UPS (Definition 14) and iterated until every value moves by less than Theta (Eq. 12); d_0 > 0
keeps the reward of staying (distance 0) finite. QRS = V* (Eq. 13), and the action value conditioned on
A = A_[x',x''] in Eq. 14 is the bracket above.
"""

from __future__ import annotations

import numpy as np


def travel_reward(distances_km: np.ndarray, gamma: float, offset_km: float) -> np.ndarray:
    """Eq. 10: (X, X) R_[x',x''] = gamma / (distance + d_0)."""
    return gamma / (distances_km + offset_km)


def value_iteration(ups: np.ndarray, reward: np.ndarray, beta: float, theta: float,
                    max_iterations: int = 100_000) -> np.ndarray:
    """Eq. 11-13: (X,) V* from V = UPS, Bellman optimality sweeps until max |V' - V| < Theta."""
    value = ups.astype(float)
    for _ in range(max_iterations):
        updated = ups + (beta * value[None, :] + reward).max(1)
        if np.abs(updated - value).max() < theta:
            return updated
        value = updated
    raise RuntimeError(f"value iteration did not converge in {max_iterations} sweeps (beta = {beta})")


def action_values(value: np.ndarray, reward: np.ndarray, beta: float) -> np.ndarray:
    """(X, X) QRS of moving from x' (row) to x'' (column): beta V*_x'' + R_[x',x''] (Eq. 11's bracket, Eq. 14)."""
    return beta * value[None, :] + reward


def allocate_in_turn(positions: np.ndarray, score: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Eq. 14: participant by participant, go to the allowed cell not yet in S_y with the highest score
    from the current cell; add it to S_y. ``score`` is (X, X) by (from, to)."""
    open_cells = np.ones(score.shape[1], dtype=bool) if allowed is None else allowed.copy()
    cells = np.empty(len(positions), dtype=int)
    for participant, start in enumerate(positions):
        choice = int(np.argmax(np.where(open_cells, score[start], -np.inf)))
        cells[participant] = choice
        open_cells[choice] = False
    return cells


def allocate_to_nearest(positions: np.ndarray, chosen: np.ndarray, distances_km: np.ndarray) -> np.ndarray:
    """Send participants to a chosen set of cells as Eq. 14 does: each in turn takes the nearest chosen cell
    not yet taken (the baselines of §5.3 pick cells, not routes)."""
    allowed = np.zeros(distances_km.shape[0], dtype=bool)
    allowed[chosen] = True
    return allocate_in_turn(positions, -distances_km, allowed)
