"""Set-based SPE (a reading of §4.1, Eq. 3-5 for a *set* of cells): how much sensing a cell would lower the
inference's expected error, given the cells already chosen.

Why a set: Eq. 4's SMI is a per-cell sum of pairwise MIs, so the top-P cells by it are mutually redundant
(neighbours share their information with the same cells), and Eq. 3's TE ranks cells by the variance of
their own series, which grows with their mean. The paper's stated aims, "uncertainty: the estimation
confidence of the sensing values in a cell from a given inference algorithm" and "representativeness: how
accurately the sensing value of the target cell can be used to represent the values of its neighboring
cells", are both properties of a cell *relative to the cells sensed with it*. Here both are read as parts of
one quantity, the expected reduction of Eq. 15's error when cell c joins the set S:

    TE^a(c | S)  = e^a_c(S) / (X Gamma_a)                                       (own error; 0 once sensed)
    SMI^a(c | S) = sum_{z != c} [e^a_z(S) - e^a_z(S + c)] / (X Gamma_a)         (others' error removed)

with e^a_z(S) the expected absolute error of the world's inference at cell z when S is sensed. A cell the
inference already predicts well from S gets a low TE; a near duplicate of a chosen cell removes little
error elsewhere and gets a low SMI. Eq. 5 then combines them with alpha_TE, alpha_SMI as before;
TE + SMI is the whole expected reduction of attribute a's term of Eq. 15 (all cells averaged).

The spatial model. KNN and IDW predict z as a weighted mean of sensed cells, weights lambda_zs summing to 1
(the world's own weights: the k or n nearest, 1 or 1/d^power). For *any* joint distribution of the values

    E[(v_z - sum_s lambda_zs v_s)^2] = sum_s lambda_zs D_zs - 1/2 sum_{s,t} lambda_zs lambda_zt D_st,
    D_ij = E[(v_i - v_j)^2]   (twice the semivariogram; includes differences of level between cells),

by writing v_z - sum lambda_s v_s = sum lambda_s (v_z - v_s) and expanding. e_z = sqrt of that (the RMSE; for
a Gaussian error the MAE is sqrt(2/pi) of it, a constant factor). Simplification: SVR is not a weighted
mean; for it lambda is the normalised RBF kernel of the SVR's own gamma on the same standardised
coordinates (Nadaraya-Watson), a stand-in for its smoother.

D is estimated from the collected values CS only, never from IS: IS is the inference's own output, and a
rarely sensed cell's IS copies its neighbours, so it would look predictable exactly where it is not.
``SquaredDifferences`` splits D into each cell's level (learnt from any visit to the cell, uncertain for a
cell never sensed, which therefore looks worth sensing) and the fluctuation of each pair's difference
(learnt from days when both were collected, shrunk towards a linear variogram in distance).

How it was chosen. The reading (expected error of the world's inference given the set) follows from the
objective; its tests run on synthetic fields (tests/test_qcota_representativeness.py: exact for linear
inferences, a near duplicate ranks last, QCO-TA spreads and errs less than the per-cell reading). The split
of D into level and fluctuation was added after a diagnosis on Piemonte, stated here as a validation on
that data: with D from the full truth QCO-TA's set converged to an error near the best fixed set's, with a
pairwise-only estimate (co-collected pairs shrunk to the variogram) it stayed at UNS-TA's level, because
cells never sensed together with their neighbours were never learnt. No parameter was tuned on the tables.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from envs.inference import Inference


class SquaredDifferences:
    """The estimate of D_ij = E[(v_i - v_j)^2] per attribute from the collected values (CS) so far.

    D splits into a level part and a fluctuation part, each learnt from what it needs:

        D_ij = (m_i - m_j)^2 + u_i + u_j + F_ij

    - Level (m_i, u_i): the posterior mean and variance of cell i's level under a normal-normal model (cell
      levels drawn around a common mean with between-cell variance tau^2, daily values around the cell's
      level with within-cell variance sigma^2, both estimated from the collected values). One visit to a cell
      teaches its level; a cell never sensed keeps the prior (m = the mean level, u = tau^2), so it looks
      poorly predicted, and is worth sensing, until it has been sensed.
    - Fluctuation F_ij: the variance of v_i - v_j about its mean, which needs days when both were collected:
      F_ij = ((n_ij - 1) F^emp_ij + kappa F_fit(d_ij)) / (n_ij - 1 + kappa), the pair's sample variance
      shrunk towards F_fit(d) = c0 + c1 d, fitted by non-negative least squares to the pairs collected on at
      least two days (a linear variogram with nugget, the simplest valid intrinsic model).

    Before anything was collected D_ij = d_ij (only the shape matters then).
    """

    def __init__(self, num_attributes: int, distances_km: np.ndarray, prior_cycles: float):
        cells = distances_km.shape[0]
        self.distances = distances_km
        self.prior_cycles = prior_cycles
        self.count = np.zeros((num_attributes, cells))
        self.total = np.zeros((num_attributes, cells))
        self.squares = np.zeros((num_attributes, cells))
        self.pair_count = np.zeros((num_attributes, cells, cells))
        self.pair_total = np.zeros((num_attributes, cells, cells))
        self.pair_squares = np.zeros((num_attributes, cells, cells))
        self.cycles_seen = 0

    def absorb(self, collected: np.ndarray) -> None:
        """Add the cycles of ``collected`` (cycles, A, X) not yet seen (NaN = not collected)."""
        for values in collected[self.cycles_seen:]:
            present = ~np.isnan(values)
            filled = np.where(present, values, 0.0)
            self.count += present
            self.total += filled
            self.squares += filled ** 2
            both = present[:, :, None] & present[:, None, :]
            difference = np.where(both, filled[:, :, None] - filled[:, None, :], 0.0)
            self.pair_count += both
            self.pair_total += difference
            self.pair_squares += difference ** 2
        self.cycles_seen = max(self.cycles_seen, collected.shape[0])

    def levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, X) posterior mean m and variance u of each cell's level, and (A,) within-cell variance sigma^2."""
        attributes, cells = self.count.shape
        means, variances, within = np.zeros((attributes, cells)), np.zeros((attributes, cells)), np.zeros(attributes)
        for a in range(attributes):
            n, total, squares = self.count[a], self.total[a], self.squares[a]
            seen = n > 0
            mean = np.divide(total, n, out=np.zeros(cells), where=seen)
            repeated = n >= 2
            if repeated.any():
                sigma2 = (squares[repeated] - n[repeated] * mean[repeated] ** 2).sum() / (n[repeated] - 1).sum()
            else:
                sigma2 = float(np.var(mean[seen])) if seen.sum() > 1 else 1.0
            sigma2 = max(sigma2, 1e-12)
            if seen.sum() > 1:
                tau2 = float(np.var(mean[seen], ddof=1) - np.mean(sigma2 / n[seen]))
            else:
                tau2 = sigma2
            tau2 = max(tau2, 1e-3 * sigma2)
            precision = 1.0 / tau2 + n / sigma2
            common = mean[seen].mean() if seen.any() else 0.0
            means[a] = (common / tau2 + total / sigma2) / precision
            variances[a] = 1.0 / precision
            within[a] = sigma2
        return means, variances, within

    def fluctuations(self, within: np.ndarray) -> np.ndarray:
        """(A, X, X) F: each pair's variance of v_i - v_j, shrunk towards the fitted linear variogram."""
        upper = np.triu_indices(self.distances.shape[0], 1)
        distance = self.distances[upper]
        out = []
        for a in range(self.count.shape[0]):
            n = self.pair_count[a]
            dof = np.maximum(n - 1, 0)
            empirical = np.divide(self.pair_squares[a] - np.divide(self.pair_total[a] ** 2, n, out=np.zeros_like(n),
                                                                      where=n > 0),
                                  dof, out=np.zeros_like(n), where=dof > 0)
            used = dof[upper] > 0
            if used.any():
                root = np.sqrt(dof[upper][used])
                design = np.stack([np.ones(used.sum()), distance[used]], 1) * root[:, None]
                (c0, c1), _ = nnls(design, empirical[upper][used] * root)
                fit = c0 + c1 * self.distances
            else:
                fit = 2.0 * within[a] * self.distances / max(distance.mean(), 1e-12)
            out.append((dof * empirical + self.prior_cycles * fit) / np.maximum(dof + self.prior_cycles, 1e-12))
        return np.stack(out)

    def matrix(self) -> np.ndarray:
        """(A, X, X) D (zero diagonal)."""
        if self.cycles_seen == 0 or not self.count.any():
            return np.repeat(self.distances[None], self.count.shape[0], 0)
        means, variances, within = self.levels()
        estimate = ((means[:, :, None] - means[:, None, :]) ** 2 + variances[:, :, None] + variances[:, None, :]
                    + self.fluctuations(within))
        cells = np.arange(self.distances.shape[0])
        estimate[:, cells, cells] = 0.0
        return estimate


def inference_weights(inference: Inference, sources: np.ndarray) -> np.ndarray:
    """(B, X, X) lambda: row z of batch b holds the weights the world's inference gives each sensed cell when
    predicting z from ``sources[b]`` ((B, X) bool); a sensed cell predicts itself (weight 1 on itself).
    A batch row with no source gets all-zero weights."""
    config = inference.config
    sources = np.asarray(sources, dtype=bool)
    cells = sources.shape[1]
    if config.method == "svr":
        squared = ((inference.features[:, None, :] - inference.features[None, :, :]) ** 2).sum(-1)
        weights = np.where(sources[:, None, :], np.exp(-config.svr_gamma * squared)[None], 0.0)
    else:
        # each row's cells sorted by distance once; the k (or n) nearest sources are the first k sources in it
        count = config.knn_k if config.method == "knn" else config.idw_neighbours
        power = 0.0 if config.method == "knn" else config.idw_power
        # (ties in distance may keep one more source than neighbour_average; there are none in the data)
        order = np.argsort(inference.distances, axis=1, kind="stable")
        distance = np.take_along_axis(inference.distances, order, 1)
        in_order = sources[:, order]  # (B, X, X): [b, z, j] = sources[b, order[z, j]]
        rank = np.cumsum(in_order, -1, dtype=np.int16 if cells < 32_000 else np.int32)
        position = np.argmax(rank >= count, -1)  # where the count-th nearest source sits, per (b, z)
        threshold = np.where(rank[..., -1] >= count, distance[np.arange(cells)[None, :], position], np.inf)
        keep = sources[:, None, :] & (inference.distances[None] <= threshold[..., None])
        values = (np.ones_like(inference.distances) if power == 0
                  else 1.0 / np.maximum(inference.distances, 1e-9) ** power)
        weights = np.where(keep, values[None], 0.0)
    total = weights.sum(-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    own = sources[:, :, None] & np.eye(cells, dtype=bool)[None]
    return np.where(sources[:, :, None], own.astype(float), weights)


def expected_errors(differences: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(A, B, X) e_z: sqrt(sum_s l_zs D_zs - 1/2 sum_st l_zs l_zt D_st) for D (A, X, X) and lambda (B, X, X)."""
    linear = (weights[None] * differences[:, None]).sum(-1)
    quadratic = ((weights[None] @ differences[:, None]) * weights[None]).sum(-1)
    return np.sqrt(np.maximum(linear - 0.5 * quadratic, 0.0))


def set_priority(differences: np.ndarray, inference: Inference, chosen: np.ndarray,
                 scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, X) TE(c | S) and SMI(c | S) of every candidate c for the set S = ``chosen`` ((X,) bool), in Gamma_a
    units (``scale``: Gamma_a's divisors). Both are 0 for c already in S: a cell is never chosen twice.

    With S empty there is no prediction yet; e_z(empty) is then taken as the error of predicting z by one
    cell drawn at random (sqrt of the mean of D_zs over s), so TE + SMI still ranks cells by the error left.
    """
    cells = differences.shape[1]
    chosen = np.asarray(chosen, dtype=bool)
    if chosen.any():
        base = expected_errors(differences, inference_weights(inference, chosen[None]))[:, 0]
    else:
        base = np.sqrt(differences.mean(-1))
    candidates = chosen[None, :] | np.eye(cells, dtype=bool)
    after = expected_errors(differences, inference_weights(inference, candidates))  # (A, c, z)
    norm = cells * np.asarray(scale, dtype=float)[:, None]
    own = np.where(chosen[None], 0.0, base)
    others = base.sum(-1, keepdims=True) - after.sum(-1) - own
    return own / norm, np.where(chosen[None], 0.0, others) / norm


def greedy_set(score: "callable", count: int, cells: int) -> np.ndarray:
    """Forward selection: ``count`` cells, each the argmax of ``score(chosen_mask)`` ((X,) over cells) among
    cells not yet chosen (ties: lower index)."""
    chosen = np.zeros(cells, dtype=bool)
    order = []
    for _ in range(count):
        value = np.where(chosen, -np.inf, score(chosen))
        cell = int(np.argmax(value))
        chosen[cell] = True
        order.append(cell)
    return np.array(order, dtype=int)
