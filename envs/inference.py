"""Inference of unsensed cells (QCO-TA §5.2, Definition 6): KNN, IDW, SVR.

KNN and IDW are one vectorised numpy neighbour average (KNN = equal weights over the k nearest collected
cells, IDW = weights 1/d^power over the n nearest), because each attribute has its own set of collected
cells (a missing PM10 value drops one source) and the MPI loss needs leave-one-out estimates at the
collected cells; scikit-learn's KNeighborsRegressor would need one fit per attribute and per left-out
cell for the same numbers. SVR is scikit-learn's ``SVR`` on standardised coordinates and values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.svm import SVR

from rl_cs.errors import closest, require

METHODS = ("knn", "idw", "svr")


@dataclass(frozen=True)
class InferenceConfig:
    """The inference algorithm and its parameters (§5.2 leaves them open; these are our choices)."""

    method: str = "knn"
    """knn, idw or svr (§5.2 items 1-3)."""
    knn_k: int = 3
    """k: collected cells averaged by KNN."""
    idw_neighbours: int = 4
    """n: closest collected cells weighted by IDW."""
    idw_power: float = 1.0
    """IDW weight = 1 / distance^power (§5.2: 'proportional to the reciprocal', i.e. power 1)."""
    svr_c: float = 1.0
    """SVR regularisation C (on standardised values)."""
    svr_epsilon: float = 0.1
    """SVR epsilon-tube width (on standardised values)."""
    svr_gamma: float = 1.0
    """RBF kernel gamma on coordinates standardised over the layout."""

    def validate(self, where: str = "world.inference") -> None:
        require(self.method in METHODS, f"{where}.method", f"unknown inference method '{self.method}'",
                closest(self.method, METHODS))
        require(self.knn_k >= 1, f"{where}.knn_k", f"{self.knn_k} < 1", "use k >= 1")
        require(self.idw_neighbours >= 1, f"{where}.idw_neighbours", f"{self.idw_neighbours} < 1", "use n >= 1")
        require(self.idw_power >= 0, f"{where}.idw_power", f"{self.idw_power} < 0", "use a power >= 0")
        for name in ("svr_c", "svr_epsilon", "svr_gamma"):
            value = getattr(self, name)
            require(value > 0 or (name == "svr_epsilon" and value == 0), f"{where}.{name}", f"{value} <= 0",
                    "use a positive value")


class Inference:
    """Estimates every cell of every attribute from the collected ones, on a fixed layout of cells."""

    def __init__(self, config: InferenceConfig, coords_km: np.ndarray, distances_km: np.ndarray):
        config.validate()
        self.config = config
        self.distances = distances_km
        self.features = (coords_km - coords_km.mean(0)) / coords_km.std(0).clip(min=1e-9)

    def estimate(self, collected: np.ndarray) -> np.ndarray:
        """(A, X) IS: collected values kept, the others inferred; NaN only for an attribute with no source."""
        estimates = self._predict(collected, leave_one_out=False)
        return np.where(np.isnan(collected), estimates, collected)

    def leave_one_out(self, collected: np.ndarray) -> np.ndarray:
        """(A, X) each collected cell inferred from the other collected cells; NaN at uncollected cells."""
        estimates = self._predict(collected, leave_one_out=True)
        return np.where(np.isnan(collected), np.nan, estimates)

    def _predict(self, collected: np.ndarray, leave_one_out: bool) -> np.ndarray:
        method = self.config.method
        rows = []
        for values in collected:
            if method == "svr":
                rows.append(self._svr(values, leave_one_out))
            else:
                count = self.config.knn_k if method == "knn" else self.config.idw_neighbours
                power = 0.0 if method == "knn" else self.config.idw_power
                rows.append(neighbour_average(self.distances, values, count, power, leave_one_out))
        return np.stack(rows)

    def _svr(self, values: np.ndarray, leave_one_out: bool) -> np.ndarray:
        sources = np.flatnonzero(~np.isnan(values))
        if not leave_one_out:
            return self._svr_fit_predict(sources, values, np.arange(len(values)))
        out = np.full(values.shape, np.nan)
        for position, cell in enumerate(sources):
            out[cell] = self._svr_fit_predict(np.delete(sources, position), values, np.array([cell]))[0]
        return out

    def _svr_fit_predict(self, sources: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        targets = values[sources]
        if len(sources) < 2:
            return np.full(len(query), targets.mean() if len(sources) else np.nan)
        mean, scale = targets.mean(), targets.std() or 1.0
        model = SVR(C=self.config.svr_c, epsilon=self.config.svr_epsilon, gamma=self.config.svr_gamma)
        # inputs are finite and parameters validated above: skip sklearn's per-call checks (half of a tiny fit)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            model.fit(self.features[sources], (targets - mean) / scale)
            return mean + scale * model.predict(self.features[query])


def neighbour_average(distances: np.ndarray, values: np.ndarray, count: int, power: float,
                      leave_one_out: bool = False) -> np.ndarray:
    """(X,) weighted mean of the ``count`` nearest cells with a value (weights 1/d^power; power 0 = KNN).

    With ``leave_one_out`` a cell never uses its own value. NaN where no source is available.
    """
    sources = np.flatnonzero(~np.isnan(values))
    available = len(sources) - int(leave_one_out)
    if available < 1:
        return np.full(values.shape, np.nan)
    near = distances[:, sources].copy()
    if leave_one_out:
        near[sources, np.arange(len(sources))] = np.inf
    k = min(count, available)
    nearest = np.argpartition(near, k - 1, axis=1)[:, :k]
    dist = np.take_along_axis(near, nearest, axis=1)
    weights = np.ones_like(dist) if power == 0 else 1.0 / np.maximum(dist, 1e-9) ** power
    return (weights * values[sources][nearest]).sum(1) / weights.sum(1)
