"""Non-learned baselines of the DASC world (RMO, paper 001, "Baselines"), acting through the same evaluation
path as learned methods (rl_cs.evaluation: ``reset(seed)``, ``act(view, obs)``).

A planner sees the world only through its read-only decision view (envs.dasc_view.DASCDecisionView: the
deciding subtasks, the idle workers, and the world's own feasibility, distances and utility terms). ``km``
recommends every decider and lets the world's Kuhn-Munkres match them; the others choose the matching
themselves and submit it under ``envs.dasc.PLANNER_ASSIGNMENT`` (recommending exactly the subtasks they
assign, so a subtask they leave out is not charged the failed-recommendation penalty). The world checks every
pair against its rules either way: no planner can break the skill, range, deadline or order constraint.
The order constraint is the world's: only ready subtasks (all predecessors finished) are ever offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.dasc import PLANNER_ASSIGNMENT
from envs.dasc_matching import kuhn_munkres
from envs.dasc_view import DASCDecisionView
from rl_cs.errors import require


@dataclass(frozen=True)
class DASCBaselineSettings:
    """What the GAME and ODTA baselines leave open (their papers' full texts were not available: see Game,
    Odta and OdtaTwoStage); the YAML section ``baselines`` of the DASC experiment config."""

    game_max_rounds: int = 100
    """GAME: at most this many rounds of best responses per decision step (R_max)."""
    odta_switch_fraction: float = 0.5
    """ODTA two-stage: the first floor(fraction x subtasks) arrivals are matched greedily (TGOA-Greedy: 0.5)."""

    def validate(self, where: str = "baselines") -> None:
        require(self.game_max_rounds >= 1, f"{where}.game_max_rounds", f"must be >= 1, got {self.game_max_rounds}")
        require(0 < self.odta_switch_fraction <= 1, f"{where}.odta_switch_fraction",
                f"must be in (0, 1], got {self.odta_switch_fraction}")


class DASCPlanner:
    """Base of the DASC baselines; ``settings`` (DASCBaselineSettings, the YAML section ``baselines``) holds
    what GAME and ODTA leave open; None means its defaults."""

    name = "dasc-planner"

    def __init__(self, settings: DASCBaselineSettings | None = None):
        self.settings = settings if settings is not None else DASCBaselineSettings()

    def reset(self, seed: int | None) -> None:
        """Called at the start of every evaluation episode."""

    def act(self, view: DASCDecisionView, obs: dict) -> dict:
        raise NotImplementedError


def submit(view: DASCDecisionView, obs: dict, pairs: dict[int, int]) -> dict:
    """The action dict of a planner's matching ``{decider row: worker column}``: 1 for assigned subtasks,
    0 for the rest, and the assignment under PLANNER_ASSIGNMENT (worker indices)."""
    actions = {agent: 0 for agent in obs}
    assignment = {}
    for row, col in pairs.items():
        agent = view.agents[row]
        if agent in actions:
            actions[agent] = 1
            assignment[agent] = int(view.workers[col])
    actions[PLANNER_ASSIGNMENT] = assignment
    return actions


def arrival_order(view: DASCDecisionView) -> np.ndarray:
    """Decider rows first-come first-served: by the time each became ready, ties by row."""
    rows = np.arange(len(view.agents))
    return rows[np.lexsort((rows, view.ready_since))]


def greedy_pairs(view: DASCDecisionView, score: np.ndarray | None = None,
                 allowed: np.ndarray | None = None) -> dict[int, int]:
    """Each decider in arrival order takes the free feasible worker with the lowest road distance (or, with
    ``score``, the highest score among ``allowed`` pairs)."""
    taken = np.zeros(len(view.workers), dtype=bool)
    usable = view.feasible if allowed is None else view.feasible & allowed
    pairs = {}
    for row in arrival_order(view).tolist():
        free = usable[row] & ~taken
        if not free.any():
            continue
        col = int(np.argmin(np.where(free, view.road[row], np.inf)) if score is None
                  else np.argmax(np.where(free, score[row], -np.inf)))
        taken[col] = True
        pairs[row] = col
    return pairs


class Greedy(DASCPlanner):
    """GREEDY (RMO §Baselines: "greedily assigns each independent subtask to the nearest available worker"):
    every ready subtask, first-come first-served (by the time it became ready), takes the nearest (road
    distance) free worker that the world allows: holding its skills, within L^w, able to finish before its
    t_d^tau. "Independent" is read as ready: all predecessors finished, the only subtasks the world offers."""

    name = "greedy-dasc"

    def act(self, view: DASCDecisionView, obs: dict) -> dict:
        return submit(view, obs, greedy_pairs(view))


class KuhnMunkres(DASCPlanner):
    """KM (RMO §Baselines; Kuhn 1955, Munkres 1957): recommends every ready subtask, and the world's own
    matching stage pairs them with idle workers by Kuhn-Munkres on u = v1 u_skill + v2 u_dist + v3 u_time
    (Eq. 9-12) with the fixed eta = {world.alpha, world.beta} of the config (Eq. 13): RMO's matching stage
    without learned recommendations or a learned eta."""

    name = "km"

    def act(self, view: DASCDecisionView, obs: dict) -> dict:
        return {agent: 1 for agent in obs}


class Game(DASCPlanner):
    """GAME (Ni, Cheng, Chen, Lin, ICDE 2020): dependency-aware task assignment as a game, solved by
    best-response dynamics to a pure Nash equilibrium.

    Only RMO's one-line description of the paper was available (../shared/notes/baselines.md, section 1), so
    the following is ASSUMED, after the same group's CA-SC (ICDE 2019, Alg. 3):

    - players: the idle workers of the decision step; strategies: one feasible ready subtask, or none;
    - value of a pair g(w, tau): the subtask's payment share by Eq. 3's terms (rho_max / |T| if it would
      finish by t_e^tau, else rho_min / |T|) minus kappa x the road distance (DASCDecisionView.pair_value);
    - potential Phi(A) = sum over subtasks of max(0, the best g among the workers choosing it): a subtask is
      done by one worker, the best of those who chose it;
    - a worker's utility is its marginal contribution Phi(A) - Phi(A without it) (wonderful-life utility),
      which makes the game an exact potential game, so best-response dynamics terminate in a Nash
      equilibrium;
    - start: the Greedy assignment; updates: workers in index order, a worker moves only for a strict gain
      (> 1e-9), ties to the lowest row; at most ``baselines.game_max_rounds`` (R_max, default 100) rounds;
    - dependencies: the world's order constraint (only ready subtasks are offered); a predecessor and its
      successor are never assigned in the same step.
    The equilibrium's best holder of each chosen subtask is submitted; other workers stay idle."""

    name = "game"

    def act(self, view: DASCDecisionView, obs: dict) -> dict:
        value = np.where(view.feasible, view.pair_value(), -np.inf)
        value = np.where(value > 0, value, -np.inf)  # a pair worth nothing adds nothing to Phi
        rows, cols = value.shape
        choice = np.full(cols, -1, dtype=np.int64)
        for row, col in greedy_pairs(view).items():
            if np.isfinite(value[row, col]):
                choice[col] = row
        top = np.full((rows, 2), -np.inf)  # best and second-best value among the workers choosing each row
        top_col = np.full((rows, 2), -1, dtype=np.int64)

        def refresh(row: int) -> None:
            holders = np.flatnonzero(choice == row)
            order = holders[np.argsort(-value[row, holders], kind="stable")][:2]
            top[row], top_col[row] = -np.inf, -1
            top[row, :len(order)], top_col[row, :len(order)] = value[row, order], order

        for row in range(rows):
            refresh(row)
        players = np.flatnonzero(np.isfinite(value).any(axis=0))
        self.rounds = 0
        for _ in range(self.settings.game_max_rounds):
            self.rounds += 1
            moved = False
            for col in players.tolist():
                others = np.where(top_col[:, 0] == col, top[:, 1], top[:, 0])  # best of the others per row
                gain = np.maximum(0.0, value[:, col] - np.maximum(0.0, others))
                gain = np.where(np.isfinite(value[:, col]), gain, 0.0)
                current = choice[col]
                now = gain[current] if current >= 0 else 0.0
                best = int(np.argmax(gain))
                if gain[best] > now + 1e-9:
                    choice[col] = best
                    if current >= 0:
                        refresh(int(current))
                    refresh(best)
                    moved = True
            if not moved:
                break
        pairs = {row: int(top_col[row, 0]) for row in range(rows) if np.isfinite(top[row, 0])}
        return submit(view, obs, pairs)


def odta_utility(view: DASCDecisionView) -> np.ndarray:
    """ODTA's pair utility (ASSUMED, see Odta): reward x worker preference = the subtask's payment share by
    Eq. 3's terms x u_dist (a worker prefers nearer subtasks, Eq. 10); 0 on infeasible pairs."""
    share = np.where(view.finish_time() <= view.expected[:, None], view.share_on_time[:, None],
                     view.share_late[:, None])
    return np.where(view.feasible, share * view.u_dist, 0.0)


class Odta(DASCPlanner):
    """ODTA (Yao, Yang, Xu, IEEE TSC 2022), its threshold-based randomized online algorithm.

    Only the abstract was available (../shared/notes/baselines.md, section 2); ODTA is read as GOMA/TGOA
    (Tong et al.) plus dependencies and preferences, and the following is ASSUMED:

    - arrivals: ready subtasks, first-come first-served by the time they became ready; the partners: idle
      workers; dependency rule: the world's (a subtask arrives once all its predecessors have finished);
    - utility U(w, tau) = payment share x preference (odta_utility), U_max = the episode's largest payment
      share rho / |T| (DASCDecisionView.payment_bound, known a priori as the threshold algorithm assumes);
    - threshold (GOMA's Ext-GRT): theta = ceil(ln(U_max + 1)); k ~ U{0, ..., theta - 1} drawn once per
      episode from the episode seed (the competitive ratio holds in expectation over k: average over seeds);
      bound = 0 if k = 0 else e^k; each arrival takes the free feasible worker of largest U, if U >= bound;
    - an arrival left unmatched stays ready and is offered again at the next decision step."""

    name = "odta"

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)
        self.bound = None

    def threshold(self, view: DASCDecisionView) -> float:
        if self.bound is None:
            theta = max(1, math.ceil(math.log(view.payment_bound + 1.0)))
            self.k = int(self.rng.integers(theta))
            self.bound = 0.0 if self.k == 0 else math.exp(self.k)
        return self.bound

    def act(self, view: DASCDecisionView, obs: dict) -> dict:
        score = odta_utility(view)
        allowed = (score >= self.threshold(view)) & (score > 0)
        return submit(view, obs, greedy_pairs(view, score, allowed))


class OdtaTwoStage(DASCPlanner):
    """ODTA's two-stage framework for random arrival order (ODTA-OPT), a separate baseline.

    ASSUMED after TGOA (Tong et al.; notes section 2): the first ``switch`` = floor(rho x N) arrivals (rho:
    ``baselines.odta_switch_fraction``, default 0.5 as TGOA-Greedy; N:
    the episode's subtasks, DASCDecisionView.total_subtasks) are matched greedily, each to the free feasible
    worker of largest U (odta_utility, no threshold); from the decision step at which the count of distinct
    subtasks seen reaches ``switch`` on, each step computes a maximum-weight matching on U (Hungarian,
    ``scipy.optimize.linear_sum_assignment``) between the present ready subtasks and idle workers and gives
    each subtask its partner. TGOA's optimal matching over *all* arrivals so far is replaced by one over the
    present ones (past arrivals are matched or gone); the switch is per decision step (TGOA's timestamp batch)."""

    name = "odta-2stage"

    def reset(self, seed: int | None) -> None:
        self.seen: set[str] = set()

    def act(self, view: DASCDecisionView, obs: dict) -> dict:
        self.seen.update(obs)
        score = odta_utility(view)
        if len(self.seen) < math.floor(self.settings.odta_switch_fraction * view.total_subtasks):
            return submit(view, obs, greedy_pairs(view, score, score > 0))
        rows, cols = kuhn_munkres(score, view.feasible & (score > 0), max_cardinality=False)
        return submit(view, obs, dict(zip(rows.tolist(), cols.tolist())))
