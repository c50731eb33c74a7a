"""Reachable sensing errors of a sensing world: how low Eq. 15's aggregated error can go with full knowledge
of the ground truth, to put beside Table 1 (a reader then sees how much of the reachable gain a scheme takes).

- **Clairvoyant per cycle**: each cycle, the P cells whose sensing gives that cycle the lowest error, chosen
  seeing that day's true values (RS); travel is ignored. No online scheme can beat the exact optimum of this.
- **Best fixed set in hindsight**: one set of P cells sensed in every cycle, the one with the lowest error over
  the whole episode (participants would travel once and stay).

Both optima are combinatorial (C(X, P) sets per cycle); they are searched by greedy forward selection followed
by best-improvement swaps (one chosen cell for one unchosen cell; two for two when no single swap helps) until
no swap lowers the error (single swaps alone stop early: KNN's error landscape is rough). The
figures reported are the errors of the allocations found, replayed through ``SensingWorld`` (so exactly the
world's Eq. 15, Gamma_a and cells): they are reachable, and at or above each kind's true optimum; on a 6-cell
field the search equals brute force (tests/test_qcota_bounds.py).

Evaluation: KNN and IDW are evaluated in batches as the world's own neighbour weights (identical up to ties
in distance); an attribute with no collected value keeps the previous cycle's IS as in the world.
Simplifications, for time: of the C(P,2) C(X-P,2) double swaps only the 256 whose two single swaps together
promise most are evaluated; for SVR (one fit per attribute and candidate) each greedy step and swap pass
evaluates
exactly only the ``screen`` candidates that a stand-in (the normalised RBF kernel of the SVR's gamma, a
weighted mean) ranks best; the figure is still a replayed allocation, only possibly less tight.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from envs.sensing import SensingWorld, run_online
from policies.qcota.representativeness import inference_weights

SCREEN = 3
"""SVR: candidates evaluated exactly per greedy step or swap pass (the best by the weighted-mean stand-in)."""
PAIR_SCREEN = 256
"""Double swaps evaluated per pass: the best by the sum of their two single swaps' changes."""


@dataclass(frozen=True)
class ReachableBounds:
    """The two reachable errors of one world (Eq. 15, the world's Gamma_a and cells)."""

    clairvoyant: float
    """Aggregated error of the per-cycle clairvoyant allocation."""
    best_fixed_set: float
    """Aggregated error of the best fixed set in hindsight."""
    fixed_set: tuple[int, ...]
    """The cells of that set."""


class CycleScorer:
    """The error of sensing a batch of cell sets in one cycle of ``world``, without stepping it."""

    def __init__(self, world: SensingWorld):
        self.world = world
        self.truth = world.truth  # (Y, A, X)
        self.present = ~np.isnan(self.truth)
        self.filled = np.nan_to_num(self.truth)
        self.exact_linear = world.inference.config.method in ("knn", "idw")

    def score(self, cycle: int, masks: np.ndarray, previous: np.ndarray | None,
              surrogate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B,) epsilon of the cycle (an attribute with no cell to score counts 0) and (B, A, X) IS, for (B, X)
        bool ``masks``. ``previous``: (A, X) or (B, A, X) IS of the cycle before (None before the first).
        ``surrogate``: SVR only, rank by the weighted-mean stand-in instead of fitting."""
        mae, inferred = self.attribute_errors(cycle, masks, previous, surrogate)
        return np.nansum(mae / self.world.scale, -1), inferred

    def episode_errors(self, masks: np.ndarray, surrogate: bool = False, chunk: int = 256) -> np.ndarray:
        """(Y, B, A) ``attribute_errors`` of every cycle when the sets ``masks`` are sensed in every cycle (IS
        carried over as in the world). For a weighted-mean inference the weights are computed once per set
        for all cycles with every value present, and per cycle only where a value is missing."""
        masks = np.asarray(masks, dtype=bool)
        if not (self.exact_linear or surrogate):
            previous, errors = None, []
            for cycle in range(self.world.num_cycles):
                mae, previous = self.attribute_errors(cycle, masks, previous)
                errors.append(mae)
            return np.array(errors)
        cycles, attributes, _ = self.truth.shape
        errors = np.empty((cycles, len(masks), attributes))
        for begin in range(0, len(masks), chunk):
            part = masks[begin:begin + chunk]
            weights = inference_weights(self.world.inference, part)  # (B, X, X), every value present
            for attribute in range(attributes):
                errors[:, begin:begin + chunk, attribute] = self._linear_episode(part, weights, attribute)
        return errors

    def _linear_episode(self, masks: np.ndarray, weights: np.ndarray, attribute: int) -> np.ndarray:
        """(Y, B) mean absolute error of one attribute per cycle for fixed sets ``masks`` (weighted means with
        ``weights`` where every value is present)."""
        present, values = self.present[:, attribute], self.filled[:, attribute]  # (Y, X)
        truth = self.truth[:, attribute]
        inferred = (weights @ values.T).transpose(2, 0, 1)  # (Y, B, X)
        for cycle in np.flatnonzero(~present.all(-1)):
            sources = masks & present[cycle]
            changed = (sources != masks).any(-1)  # only sets that sense a cell missing this cycle differ
            if changed.any():
                inferred[cycle, changed] = inference_weights(self.world.inference, sources[changed]) @ values[cycle]
            none = ~sources.any(-1)
            if none.any():
                inferred[cycle, none] = inferred[cycle - 1, none] if cycle > 0 else np.nan
        error = np.abs(inferred - truth[:, None, :])
        cells = present[:, None, :] & ~np.isnan(error)
        if self.world.config.error_cells == "unsensed":
            cells = cells & ~masks[None]
        counts = cells.sum(-1)
        total = np.where(cells, error, 0.0).sum(-1)
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)

    def attribute_errors(self, cycle: int, masks: np.ndarray, previous: np.ndarray | None,
                         surrogate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, A) the cycle's mean absolute error per attribute over the scored cells (NaN: no such cell), and
        (B, A, X) IS; arguments as ``score``."""
        masks = np.asarray(masks, dtype=bool)
        truth, present = self.truth[cycle], self.present[cycle]
        if self.exact_linear or surrogate:
            weights: dict[bytes, np.ndarray] = {}  # attributes with the same missing cells share the weights
            rows = []
            for a in range(truth.shape[0]):
                key = present[a].tobytes()
                if key not in weights:
                    weights[key] = inference_weights(self.world.inference, masks & present[a])
                rows.append(weights[key] @ self.filled[cycle, a])
            inferred = np.stack(rows, 1)
            has_source = (masks[:, None, :] & present[None]).any(-1, keepdims=True)
            inferred = np.where(has_source, inferred, np.nan)
        else:
            inferred = np.stack([self.world.inference.estimate(np.where(mask[None], truth, np.nan))
                                 for mask in masks])
        if previous is not None:
            inferred = np.where(np.isnan(inferred), previous, inferred)
        error = np.abs(inferred - truth[None])
        cells = present[None] if self.world.config.error_cells == "all" else present[None] & ~masks[:, None, :]
        cells = cells & ~np.isnan(error)
        counts = cells.sum(-1)
        total = np.where(cells, error, 0.0).sum(-1)
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan), inferred


def swaps(chosen: np.ndarray, size: int) -> np.ndarray:
    """(B, X) every set that trades ``size`` chosen cells for ``size`` unchosen ones."""
    inside, outside = np.flatnonzero(chosen), np.flatnonzero(~chosen)
    moves = [(out, into) for out in itertools.combinations(inside, size)
             for into in itertools.combinations(outside, size)]
    candidates = np.repeat(chosen[None], len(moves), 0)
    for row, (out, into) in enumerate(moves):
        candidates[row, list(out)] = False
        candidates[row, list(into)] = True
    return candidates


def local_search(objective: Callable[[np.ndarray], np.ndarray], cells: int, count: int,
                 screen: Callable[[np.ndarray], np.ndarray] | None = None, screen_size: int = SCREEN,
                 start: np.ndarray | None = None, pair_screen: int = PAIR_SCREEN,
                 max_passes: int = 100) -> tuple[np.ndarray, float]:
    """The (X,) bool set of ``count`` cells minimising ``objective`` ((B, X) masks -> (B,) values) found by
    greedy forward selection, then variable-neighbourhood descent: the best single swap while one improves,
    else the best double swap (two cells for two), until neither improves; and its value.

    ``start`` ((X,) bool): a set the descent starts from instead when it beats the greedy one. With ``screen``
    (same signature, cheaper), only the ``screen_size`` candidates it ranks best are evaluated by
    ``objective``. Double swaps are ranked by the sum of their two single swaps' changes and only the best
    ``pair_screen`` (``screen_size`` with a screen) evaluated. On 6 cells (P = 2, 3) every double swap is
    evaluated and the search finds the brute-force optimum (tests/test_qcota_bounds.py); in general it is a
    local optimum, so the bound is reachable but may be loose."""

    def best(candidates: np.ndarray, ranked: np.ndarray | None = None) -> tuple[int, float, np.ndarray | None]:
        """(index, exact value) of the best candidate, and the ranking values of all (None: exact ones)."""
        order = np.arange(len(candidates))
        if screen is not None and len(candidates) > screen_size:
            ranked = screen(candidates) if ranked is None else ranked
            order = np.argsort(ranked, kind="stable")[:screen_size]
        values = objective(candidates[order])
        pick = int(np.argmin(values))
        if ranked is None and len(order) == len(candidates):
            ranked = values
        return int(order[pick]), float(values[pick]), ranked

    chosen = np.zeros(cells, dtype=bool)
    value = np.inf
    for _ in range(count):
        free = np.flatnonzero(~chosen)
        candidates = np.repeat(chosen[None], len(free), 0)
        candidates[np.arange(len(free)), free] = True
        pick, value, _ = best(candidates)
        chosen[free[pick]] = True
    if start is not None:
        start = np.asarray(start, dtype=bool)
        start_value = float(objective(start[None])[0])
        if start_value < value:
            chosen, value = start.copy(), start_value
    for _ in range(max_passes):
        inside, outside = np.flatnonzero(chosen), np.flatnonzero(~chosen)
        if len(outside) == 0:
            break
        singles = swaps(chosen, 1)  # row i * len(outside) + j: inside[i] out, outside[j] in
        pick, swapped, ranked = best(singles)
        if swapped < value - 1e-12:
            chosen, value = singles[pick].copy(), swapped
            continue
        if len(inside) < 2 or len(outside) < 2:
            break
        reference = value if screen is None or len(singles) <= screen_size else float(screen(chosen[None])[0])
        change = (ranked - reference).reshape(len(inside), len(outside))
        # out {i, k}, in {j, l}: either pairing of the single swaps gives the same set
        estimate = np.minimum(change[:, None, :, None] + change[None, :, None, :],
                              change[:, None, None, :] + change[None, :, :, None])
        i, k, j, l = np.meshgrid(*(np.arange(n) for n in estimate.shape), indexing="ij")
        valid = (i < k) & (j < l)
        limit = screen_size if screen is not None else pair_screen
        flat = np.flatnonzero(valid)
        top = flat[np.argsort(estimate.ravel()[flat], kind="stable")[:limit]]
        doubles = np.repeat(chosen[None], len(top), 0)
        rows = np.arange(len(top))
        doubles[rows, inside[i.ravel()[top]]] = False
        doubles[rows, inside[k.ravel()[top]]] = False
        doubles[rows, outside[j.ravel()[top]]] = True
        doubles[rows, outside[l.ravel()[top]]] = True
        values = objective(doubles)
        if values.min() < value - 1e-12:
            chosen, value = doubles[int(np.argmin(values))].copy(), float(values.min())
        else:
            break
    return chosen, value


def _replay(world: SensingWorld, sets: np.ndarray) -> float:
    """Eq. 15 of sensing ``sets[y]`` ((Y, P) cells) in cycle y, through the world itself."""
    cycle = iter(sets)
    return run_online(world, lambda observation: next(cycle), 0).aggregated_error


def clairvoyant(world: SensingWorld, screen_size: int = SCREEN,
                start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The per-cycle clairvoyant: its aggregated error and (Y, P) cells (see the module docstring). Each
    cycle minimises that cycle's term of Eq. 15 (an attribute with no cell to score that cycle counts 0).
    ``start``: cells (e.g. the best fixed set) each cycle's swaps start from when they beat the greedy set,
    so the clairvoyant is never worse than that set in any cycle's search."""
    start_mask = None
    if start is not None:
        start_mask = np.zeros(world.num_cells, dtype=bool)
        start_mask[np.asarray(start, dtype=int)] = True
    scorer = CycleScorer(world)
    cells, count = world.num_cells, world.config.num_participants
    surrogate = not scorer.exact_linear
    previous = None
    sets = []
    for cycle in range(world.num_cycles):
        def objective(masks, cycle=cycle, previous=previous):
            return scorer.score(cycle, masks, previous)[0]

        def screen(masks, cycle=cycle, previous=previous):
            return scorer.score(cycle, masks, previous, surrogate=True)[0]

        chosen, _ = local_search(objective, cells, count, screen if surrogate else None, screen_size, start_mask)
        previous = scorer.score(cycle, chosen[None], previous)[1][0]
        sets.append(np.flatnonzero(chosen))
    sets = np.array(sets)
    return _replay(world, sets), sets


def best_fixed_set(world: SensingWorld, screen_size: int = SCREEN) -> tuple[float, np.ndarray]:
    """The best fixed set in hindsight: its aggregated error and (P,) cells (see the module docstring).
    The search minimises Eq. 15 itself (per attribute, the mean over the cycles it could be scored in)."""
    scorer = CycleScorer(world)

    def episode(masks: np.ndarray, surrogate: bool = False) -> np.ndarray:
        errors = scorer.episode_errors(masks, surrogate)  # (Y, B, A)
        counts = (~np.isnan(errors)).sum(0)
        mean = np.where(counts > 0, np.nansum(errors, 0) / np.maximum(counts, 1), 0.0)
        return (mean / world.scale).sum(-1)

    surrogate = not scorer.exact_linear
    chosen, _ = local_search(episode, world.num_cells, world.config.num_participants,
                             (lambda masks: episode(masks, True)) if surrogate else None, screen_size)
    cells = np.flatnonzero(chosen)
    return _replay(world, np.repeat(cells[None], world.num_cycles, 0)), cells


def reachable_bounds(world: SensingWorld, screen_size: int = SCREEN) -> ReachableBounds:
    """Both reachable errors of ``world`` (the fixed set first: each cycle's clairvoyant search may start from it)."""
    fixed, cells = best_fixed_set(world, screen_size)
    per_cycle, _ = clairvoyant(world, screen_size, start=cells)
    return ReachableBounds(per_cycle, fixed, tuple(int(c) for c in cells))
