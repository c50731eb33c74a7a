"""The six task-allocation schemes of §5: QCO-TA and the baselines of §5.3, behind one interface.

Each scheme is reset once per episode and then maps a ``SensingObservation`` to one cell per participant.
"""

from __future__ import annotations

import numpy as np

from envs.sensing import SensingObservation
from policies.qcota.config import QcotaConfig
from policies.qcota.integration import AttributeWeights, unified_priority
from policies.qcota.priority import min_max, priority_scores
from policies.qcota.representativeness import SquaredDifferences, greedy_set, set_priority
from policies.qcota.selection import (action_values, allocate_in_turn, allocate_to_nearest, travel_reward,
                                      value_iteration)
from rl_cs.errors import closest, require


def top_cells(score: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` highest-scoring cells (ties: lower index first)."""
    return np.argsort(-score, kind="stable")[:count]


class Scheme:
    """Shared state: the config, P, A, a seeded generator, MPI's attribute weights and, for the set-based
    SPE, the running pairwise squared differences of the collected values; subclasses implement ``act``."""

    uses_attribute_weights = False
    """Whether ``act`` ranks cells with MPI's weights (Eq. 6-8); the grid logs them per cycle if so."""

    def __init__(self, config: QcotaConfig):
        config.validate()
        self.config = config

    def reset(self, num_participants: int, num_attributes: int, seed: int, horizon: int | None = None,
              attribute_scale: np.ndarray | None = None) -> None:
        """Start an episode. ``horizon``: its number of cycles Y (for the Hedge rate sqrt(8 ln A / Y); unknown:
        the anytime rate). ``attribute_scale``: Gamma_a's divisors of the world (Eq. 2 / 15), which MPI's loss
        and the set-based SPE are measured in; unknown: the range of the values collected so far."""
        self.num_participants, self.num_attributes = num_participants, num_attributes
        self.rng = np.random.default_rng(seed)
        self.weights = AttributeWeights(num_attributes, self.config.learning_rate, self.config.eta, horizon)
        self.attribute_scale = None if attribute_scale is None else np.asarray(attribute_scale, dtype=float)
        self.differences: SquaredDifferences | None = None
        self._weighted_cycle = -1

    def gamma_divisors(self, observation: SensingObservation) -> np.ndarray:
        """(A,) Gamma_a's divisors: the world's when given at reset, else the range of the values collected so
        far (1 where there is none yet)."""
        if self.attribute_scale is not None:
            return self.attribute_scale
        collected = observation.collected
        if collected.shape[0] == 0 or np.isnan(collected).all():
            return np.ones(self.num_attributes)
        flat = collected.transpose(1, 0, 2).reshape(collected.shape[1], -1)
        present = ~np.isnan(flat)
        high = np.where(present, flat, -np.inf).max(1)
        low = np.where(present, flat, np.inf).min(1)
        span = high - low
        return np.where(np.isfinite(span) & (span > 0), span, 1.0)

    def attribute_weights(self, observation: SensingObservation) -> np.ndarray:
        """MPI (Eq. 7-8): the weights for this cycle, updated once per cycle from the last cycle's residuals."""
        if observation.cycle != self._weighted_cycle:
            self._weighted_cycle = observation.cycle
            self.weights.update(observation.residuals, self.config.delta, self.gamma_divisors(observation))
        return self.weights.weights

    def scores(self, observation: SensingObservation) -> np.ndarray:
        """Per-cell SPE (Eq. 3-5 literally): (A, X) priority scores from the IS history."""
        return priority_scores(observation.inferred, self.config.alpha_te, self.config.alpha_smi)

    def pair_differences(self, observation: SensingObservation) -> np.ndarray:
        """(A, X, X) D_ij of the set-based SPE, from every cycle collected so far."""
        if self.differences is None:
            self.differences = SquaredDifferences(self.num_attributes, observation.distances_km,
                                                  self.config.pair_prior_cycles)
        self.differences.absorb(observation.collected)
        return self.differences.matrix()

    def set_scores(self, observation: SensingObservation, differences: np.ndarray,
                   chosen: np.ndarray) -> np.ndarray:
        """Set-based SPE (Eq. 5 on TE(c | S), SMI(c | S)): (A, X) PS of each cell given the set ``chosen``."""
        te, smi = set_priority(differences, observation.inference, chosen, self.gamma_divisors(observation))
        return self.config.alpha_te * te + self.config.alpha_smi * smi

    def unified(self, observation: SensingObservation) -> np.ndarray:
        """Per-cell MPI (Eq. 6-8): (X,) UPS with the attribute weights updated from the last cycle."""
        return unified_priority(self.attribute_weights(observation), self.scores(observation))

    def greedy(self, observation: SensingObservation, score) -> np.ndarray:
        """Set-based top P: P cells, each the best by ``score`` (A, X) -> (X,) given the cells chosen before."""
        differences = self.pair_differences(observation)
        cells = differences.shape[-1]
        return greedy_set(lambda chosen: score(self.set_scores(observation, differences, chosen)),
                          self.num_participants, cells)

    def act(self, observation: SensingObservation) -> np.ndarray:
        raise NotImplementedError


class QcoTa(Scheme):
    """QCO-TA (§4): SPE -> MPI -> NTS; each participant in turn takes the best free cell by Eq. 14.

    With the set-based SPE, participant p's UPS is computed given the cells of every other participant:
    those allocated before it this cycle and where the later ones stand now. Eq. 14 then weighs moving
    against staying, so the participants perform a local search (one cell swap at a time, each paying its
    travel) towards a set that covers the field, instead of all chasing the same top-ranked cells. UPS is
    min-max normalised to [0, 1] per participant, the range of the per-cell reading's UPS, so gamma, beta
    and d_0 of NTS mean the same in both readings.
    """

    uses_attribute_weights = True

    def act(self, observation: SensingObservation) -> np.ndarray:
        config = self.config
        reward = travel_reward(observation.distances_km, config.gamma, config.distance_offset_km)
        weights = self.attribute_weights(observation)
        if config.representativeness == "per_cell":
            value = value_iteration(unified_priority(weights, self.scores(observation)), reward, config.beta,
                                    config.theta)
            return allocate_in_turn(observation.positions, action_values(value, reward, config.beta))
        differences = self.pair_differences(observation)
        positions = observation.positions
        taken = np.zeros(differences.shape[-1], dtype=bool)
        cells = np.empty(len(positions), dtype=int)
        for participant, start in enumerate(positions):
            others = taken.copy()
            others[positions[participant + 1:]] = True
            ups = min_max(unified_priority(weights, self.set_scores(observation, differences, others)))
            value = value_iteration(ups, reward, config.beta, config.theta)
            score = action_values(value, reward, config.beta)[start]
            cells[participant] = int(np.argmax(np.where(taken, -np.inf, score)))
            taken[cells[participant]] = True
        return cells


class OoMta(Scheme):
    """OO-MTA (§5.3.1): the P cells of highest UPS, travel cost ignored (set-based SPE: each next cell the
    best given the cells chosen before it)."""

    uses_attribute_weights = True

    def act(self, observation: SensingObservation) -> np.ndarray:
        weights = self.attribute_weights(observation)
        if self.config.representativeness == "per_cell":
            chosen = top_cells(unified_priority(weights, self.scores(observation)), self.num_participants)
        else:
            chosen = self.greedy(observation, lambda scores: weights @ scores)
        return allocate_to_nearest(observation.positions, chosen, observation.distances_km)


class GpsTa(Scheme):
    """GPS-TA (§5.3.2): the d = P / A highest-priority cells of each attribute. When A does not divide P the
    attributes take turns (in order) picking their next best cell not yet chosen until P cells are chosen.
    With the set-based SPE each pick is the attribute's best cell given every cell chosen before it."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        if self.config.representativeness == "set":
            differences = self.pair_differences(observation)
            chosen_mask = np.zeros(differences.shape[-1], dtype=bool)
            chosen = []
            while len(chosen) < self.num_participants:
                for attribute in range(self.num_attributes):
                    score = self.set_scores(observation, differences, chosen_mask)[attribute]
                    cell = int(np.argmax(np.where(chosen_mask, -np.inf, score)))
                    chosen.append(cell)
                    chosen_mask[cell] = True
                    if len(chosen) == self.num_participants:
                        break
            return allocate_to_nearest(observation.positions, np.array(chosen), observation.distances_km)
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
    """EWA-TA (§5.3.3): the P cells of highest mean priority over attributes (equal weights; set-based SPE:
    each next cell the best given the cells chosen before it)."""

    def act(self, observation: SensingObservation) -> np.ndarray:
        if self.config.representativeness == "per_cell":
            chosen = top_cells(self.scores(observation).mean(0), self.num_participants)
        else:
            chosen = self.greedy(observation, lambda scores: scores.mean(0))
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
