"""Flat observation layout of the CSC world (CAFE §4.1): ``(T_near, W_near, W_idle, T_optional, w_self)``.

Each part is a fixed-size padded block of feature rows with a presence mask; the action mask closes the
vector. One flat float32 Box keeps RLlib's per-agent overhead low; ``ObsLayout`` tells the network where
each part lives, so env and module never disagree on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASK_FEATURES = 10
"""dx, dy, road distance (/range); t_e and t_d minus arrival time (/600 s); remaining work (/mean q);
rho_max (/mean rho_max); skill match; workers heading there or on site (/4); workers on site (/4)."""
WORKER_FEATURES = 6
"""dx, dy (/range); idle, travelling, working (one-hot); shared skills (/8)."""
SELF_FEATURES = 12
"""x, y (/city extent); 8 skill flags; time (/episode horizon); open tasks (/100)."""
STATE_FEATURES = 31
"""Global state s_t (in every agent's infos, for centralised critics and ICES): per skill (8 each) open tasks
(/N_tau*8), their remaining work (/N_tau*mean q*8) and idle workers having it (/N_w); time (/horizon);
idle, travelling, working workers (/N_w); completed and expired tasks (/N_tau); revenue (/N_tau*mean rho)."""


@dataclass(frozen=True)
class ObsLayout:
    num_optional: int
    num_near_tasks: int
    num_near_workers: int
    num_idle_workers: int

    @property
    def parts(self) -> list[tuple[str, int, int]]:
        """(name, rows, features) of each padded set, in vector order."""
        return [("optional", self.num_optional, TASK_FEATURES), ("near_tasks", self.num_near_tasks, TASK_FEATURES),
                ("near_workers", self.num_near_workers, WORKER_FEATURES),
                ("idle_workers", self.num_idle_workers, WORKER_FEATURES)]

    @property
    def num_actions(self) -> int:
        return self.num_optional + 1

    @property
    def size(self) -> int:
        return SELF_FEATURES + sum(rows * (feats + 1) for _, rows, feats in self.parts) + self.num_actions

    def split(self, obs):
        """Views of a (B, size) array or tensor: self, {part: (features (B, rows, f), mask (B, rows))}, action mask."""
        cursor = SELF_FEATURES
        own = obs[:, :cursor]
        sets = {}
        for name, rows, feats in self.parts:
            features = obs[:, cursor:cursor + rows * feats].reshape(-1, rows, feats)
            cursor += rows * feats
            sets[name] = [features, None]
        for name, rows, _ in self.parts:
            sets[name][1] = obs[:, cursor:cursor + rows]
            cursor += rows
        return own, {name: tuple(value) for name, value in sets.items()}, obs[:, cursor:cursor + self.num_actions]

    def to_dict(self) -> dict:
        return dict(num_optional=self.num_optional, num_near_tasks=self.num_near_tasks,
                    num_near_workers=self.num_near_workers, num_idle_workers=self.num_idle_workers)


def nearest_rows(distance: np.ndarray, allowed: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``distance`` (B, M), the column indices of the ``count`` nearest allowed entries,
    nearest first, and their presence mask. Padded columns point at 0 and are masked out."""
    rows, columns = distance.shape
    if columns == 0:
        return np.zeros((rows, count), dtype=np.int64), np.zeros((rows, count), dtype=bool)
    keyed = np.where(allowed, distance, np.inf)
    k = min(count, columns)
    part = np.argpartition(keyed, k - 1, axis=1)[:, :k] if k < columns else np.tile(np.arange(columns), (rows, 1))
    order = np.take_along_axis(keyed, part, axis=1).argsort(axis=1, kind="stable")
    index = np.take_along_axis(part, order, axis=1)
    present = np.isfinite(np.take_along_axis(keyed, index, axis=1))
    index = np.where(present, index, 0)
    if k < count:
        index = np.pad(index, ((0, 0), (0, count - k)))
        present = np.pad(present, ((0, 0), (0, count - k)))
    return index, present


def action_mask(env, agent: str, observation) -> np.ndarray:
    """The allowed actions of ``agent`` (tau_0 and its feasible option slots): the vector's last
    ``num_actions`` entries. Used by `rl-cs check` and by planners; the world counts an action outside it
    as invalid (episode_metrics()['invalid_actions']) and treats it as tau_0."""
    return np.asarray(observation[-env.layout.num_actions:]) > 0.5
