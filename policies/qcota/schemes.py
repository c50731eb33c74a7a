"""The six task-allocation schemes of §5: QCO-TA and the baselines of §5.3, behind one interface.

Each scheme is reset once per episode and then maps a ``SensingObservation`` to one cell per participant.
"""

from __future__ import annotations

import numpy as np

from envs.sensing import SensingObservation
from policies.qcota.config import QcotaConfig
from policies.qcota.integration import AttributeWeights, unified_priority
from policies.qcota.priority import priority_scores
from policies.qcota.selection import (action_values, allocate_in_turn, allocate_to_nearest, travel_reward,
                                      value_iteration)
from rl_cs.errors import closest, require


def top_cells(score: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` highest-scoring cells (ties: lower index first)."""
    return np.argsort(-score, kind="stable")[:count]


class Scheme:
    """Shared state: the config, P, A and a seeded generator; subclasses implement ``act``."""

    def __init__(self, config: QcotaConfig):
        config.validate()
        self.config = config

    def reset(self, num_participants: int, num_attributes: int, seed: int) -> None:
        self.num_participants, self.num_attributes = num_participants, num_attributes
        self.rng = np.random.default_rng(seed)
        self.weights = AttributeWeights(num_attributes)

    def scores(self, observation: SensingObservation) -> np.ndarray:
        """SPE (Eq. 3-5): (A, X) priority scores from the IS history."""
        return priority_scores(observation.inferred, self.config.alpha_te, self.config.alpha_smi)

    def unified(self, observation: SensingObservation) -> np.ndarray:
        """MPI (Eq. 6-8): (X,) UPS with the attribute weights updated from the last cycle."""
        weights = self.weights.update(observation.residuals, observation.collected, self.config.eta,
                                      self.config.delta)
        return unified_priority(weights, self.scores(observation))

    def act(self, observation: SensingObservation) -> np.ndarray:
        raise NotImplementedError


class QcoTa(Scheme):
    """QCO-TA (§4): SPE -> MPI -> NTS; each participant in turn takes the best free cell by Eq. 14."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        config = self.config
        reward = travel_reward(observation.distances_km, config.gamma, config.distance_offset_km)
        value = value_iteration(self.unified(observation), reward, config.beta, config.theta)
        return allocate_in_turn(observation.positions, action_values(value, reward, config.beta))


class OoMta(Scheme):
    """OO-MTA (§5.3.1): the P cells of highest UPS, travel cost ignored."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        chosen = top_cells(self.unified(observation), self.num_participants)
        return allocate_to_nearest(observation.positions, chosen, observation.distances_km)


class GpsTa(Scheme):
    """GPS-TA (§5.3.2): the d = P / A highest-priority cells of each attribute. When A does not divide P the
    attributes take turns (in order) picking their next best cell not yet chosen until P cells are chosen."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        order = np.argsort(-self.scores(observation), axis=1, kind="stable")
        chosen: list[int] = []
        rank = np.zeros(self.num_attributes, dtype=int)
        while len(chosen) < self.num_participants:
            for attribute in range(self.num_attributes):
                while order[attribute, rank[attribute]] in chosen:
                    rank[attribute] += 1
                chosen.append(int(order[attribute, rank[attribute]]))
                if len(chosen) == self.num_participants:
                    break
        return allocate_to_nearest(observation.positions, np.array(chosen), observation.distances_km)


class EwaTa(Scheme):
    """EWA-TA (§5.3.3): the P cells of highest mean priority over attributes (equal weights)."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        chosen = top_cells(self.scores(observation).mean(0), self.num_participants)
        return allocate_to_nearest(observation.positions, chosen, observation.distances_km)


class UnsTa(Scheme):
    """UNS-TA (§5.3.4; printed 'UPS-TA' in Tables 1-2): P cells sampled uniformly without replacement."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        chosen = self.rng.choice(observation.distances_km.shape[0], self.num_participants, replace=False)
        return allocate_to_nearest(observation.positions, chosen, observation.distances_km)


SCHEMES = {"qcota": QcoTa, "oo-mta": OoMta, "gps-ta": GpsTa, "ewa-ta": EwaTa, "uns-ta": UnsTa}
"""Scheme names as used in configs and on the command line, in the tables' row order."""
DISPLAY_NAMES = {"qcota": "QCO-TA", "oo-mta": "OO-MTA", "gps-ta": "GPS-TA", "ewa-ta": "EWA-TA",
                 "uns-ta": "UNS-TA"}


def make_scheme(name: str, config: QcotaConfig, where: str = "scheme") -> Scheme:
    require(name in SCHEMES, where, f"unknown scheme '{name}'", closest(name, SCHEMES))
    return SCHEMES[name](config)
