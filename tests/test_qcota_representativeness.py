"""The set-based SPE (policies/qcota/representativeness.py) on synthetic fields: its error model is exact for
the world's linear inferences, it never picks a cell twice, and it prefers a far cell to a near duplicate of
a chosen one; the schemes built on it return distinct cells."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.inference import Inference, InferenceConfig
from envs.sensing import SensingWorld, SensingWorldConfig, run_online
from policies.qcota.config import QcotaConfig
from policies.qcota.representativeness import (SquaredDifferences, expected_errors, greedy_set, inference_weights,
                                               set_priority)
from policies.qcota.schemes import make_scheme
from rl_cs.data.sensing_field import SensingField, SyntheticFieldConfig, synthetic_field


def field_with_duplicate(seed: int = 0) -> SensingField:
    """A 12-cell synthetic field plus cell 12: a copy of cell 0, 0.5 km away, with a little noise."""
    base = synthetic_field(SyntheticFieldConfig(num_cells=12, num_cycles=120, missing_fraction=0.0, seed=seed))
    rng = np.random.default_rng(seed)
    copy = base.values[:, :1, :] * (1 + 0.002 * rng.standard_normal(base.values[:, :1, :].shape))
    coords = np.vstack([base.coords_km, base.coords_km[:1] + [0.3, 0.4]])
    return dataclasses.replace(base, coords_km=coords, values=np.concatenate([base.values, copy], 1))


def learnt(sensing_field: SensingField) -> tuple[np.ndarray, Inference, np.ndarray]:
    """D learnt from every cell collected every cycle, the KNN inference, and Gamma_a (range)."""
    values = sensing_field.values.transpose(0, 2, 1)  # (Y, A, X)
    differences = SquaredDifferences(values.shape[1], sensing_field.distances_km(), prior_cycles=5.0)
    differences.absorb(values)
    inference = Inference(InferenceConfig("knn"), sensing_field.coords_km, sensing_field.distances_km())
    scale = np.nanmax(values, (0, 2)) - np.nanmin(values, (0, 2))
    return differences.matrix(), inference, scale


@pytest.mark.parametrize("method", ["knn", "idw"])
def test_inference_weights_are_the_worlds_inference(method):
    sensing_field = synthetic_field(SyntheticFieldConfig(num_cells=15, num_cycles=3, seed=1))
    inference = Inference(InferenceConfig(method, knn_k=3, idw_neighbours=4), sensing_field.coords_km,
                          sensing_field.distances_km())
    rng = np.random.default_rng(0)
    masks = np.array([rng.permutation(15) < k for k in (1, 2, 5, 9)])
    values = sensing_field.values[0].T[:3]  # WS, TEMP, EMI: no gaps
    weights = inference_weights(inference, masks)
    np.testing.assert_allclose(weights.sum(-1), 1.0)
    for mask, weight in zip(masks, weights):
        expected = inference.estimate(np.where(mask[None], values, np.nan))
        np.testing.assert_allclose(values @ weight.T, expected, rtol=1e-10)


def test_expected_error_is_exact_for_a_linear_inference():
    # with D the empirical mean squared differences, the model's E[e^2] is the empirical mean squared error
    rng = np.random.default_rng(2)
    values = rng.normal(size=(400, 1, 8)) + np.linspace(0, 3, 8)  # (Y, A, X), cells at different levels
    differences = ((values[:, :, :, None] - values[:, :, None, :]) ** 2).mean(0)
    weights = rng.random((3, 8, 8)) * (rng.random((3, 8, 8)) < 0.5)
    weights = weights / weights.sum(-1, keepdims=True).clip(1e-12)
    weights[weights.sum(-1) == 0] = 1 / 8
    model = expected_errors(differences, weights)  # (A, B, X)
    predictions = np.einsum("bzs,yas->yabz", weights, values)
    empirical = np.sqrt(((predictions - values[:, :, None, :]) ** 2).mean(0))
    np.testing.assert_allclose(model, empirical, rtol=1e-9)


def test_squared_differences_learn_the_field():
    sensing_field = synthetic_field(SyntheticFieldConfig(num_cells=10, num_cycles=400, missing_fraction=0.0))
    values = sensing_field.values.transpose(0, 2, 1)
    estimator = SquaredDifferences(4, sensing_field.distances_km(), prior_cycles=5.0)
    assert np.allclose(estimator.matrix()[0], sensing_field.distances_km())  # nothing yet: the shape of d
    estimator.absorb(values[:200])
    estimator.absorb(values)  # only the new cycles are added
    assert estimator.cycles_seen == 400 and estimator.count[0, 0] == 400
    empirical = ((values[:, :, :, None] - values[:, :, None, :]) ** 2).mean(0)
    off = ~np.eye(10, dtype=bool)
    relative = np.abs(estimator.matrix() - empirical)[:, off] / empirical[:, off]
    assert np.median(relative) < 0.05
    # a cell never collected keeps the prior level: the common mean, with the between-cell variance (its
    # distance to every cell carries that uncertainty, so it is worth sensing once)
    partial = SquaredDifferences(4, sensing_field.distances_km(), prior_cycles=5.0)
    partial.absorb(np.where(np.arange(10) == 3, np.nan, values[:100]))
    means, variances, _ = partial.levels()
    others = np.arange(10) != 3
    assert (variances[:, 3] > 2 * variances[:, others].max(1)).all()
    np.testing.assert_allclose(means[:, 3], (partial.total[:, others] / partial.count[:, others]).mean(1))


def test_set_score_prefers_a_far_cell_to_a_near_duplicate():
    sensing_field = field_with_duplicate()
    differences, inference, scale = learnt(sensing_field)
    chosen = np.zeros(13, dtype=bool)
    chosen[0] = True
    te, smi = set_priority(differences, inference, chosen, scale)
    score = (te + smi).sum(0)
    far = sensing_field.distances_km()[0] > 30
    assert score[12] < score[far].min()  # the near duplicate of the chosen cell 0 is worth the least
    assert te[:, 12].max() < te[:, far].min()  # ...because the inference already predicts it well
    assert score[0] == 0 and te[:, 0].max() == 0  # a chosen cell adds nothing
    # the per-cell reading ranks the duplicate pair high (they share their information with each other)
    from policies.qcota.priority import spatial_mutual_information
    smi_per_cell = spatial_mutual_information(sensing_field.values.transpose(0, 2, 1))
    assert (smi_per_cell[:, 12] > np.median(smi_per_cell, 1)).all()


def test_greedy_set_never_picks_a_cell_twice_and_splits_the_duplicates():
    sensing_field = field_with_duplicate()
    differences, inference, scale = learnt(sensing_field)
    for count in (2, 5, 13):
        cells = greedy_set(lambda chosen: sum(set_priority(differences, inference, chosen, scale)).sum(0), count, 13)
        assert len(cells) == count and len(set(cells.tolist())) == count
        if count < 13:
            assert not {0, 12} <= set(cells.tolist())


@pytest.mark.parametrize("scheme", ["qcota", "oo-mta", "gps-ta", "ewa-ta"])
def test_set_based_schemes_sense_distinct_cells(scheme):
    sensing_field = synthetic_field(SyntheticFieldConfig(num_cycles=10))
    world = SensingWorld(sensing_field, SensingWorldConfig(attributes=("WS", "PM10", "EMI"), num_participants=8))
    planner = make_scheme(scheme, QcotaConfig())
    planner.reset(8, 3, 0, horizon=world.num_cycles, attribute_scale=world.scale)
    trajectory = run_online(world, planner.act, 0)
    assert all(len(set(cells.tolist())) == 8 for cells in trajectory.cells)
    assert np.isfinite(trajectory.aggregated_error)


def test_qcota_spreads_sensing_where_the_per_cell_reading_clusters():
    # on the synthetic field the set-based QCO-TA senses cells farther apart, and errs less, than Eq. 3-4 read
    # per cell (the reading the issue measured redundant on Piemonte)
    sensing_field = synthetic_field(SyntheticFieldConfig(num_cycles=60))
    world = SensingWorld(sensing_field, SensingWorldConfig(attributes=("PM10", "EMI"), num_participants=8,
                                                           normalisation="range"))
    distances = sensing_field.distances_km()
    results = {}
    for reading in ("set", "per_cell"):
        planner = make_scheme("qcota", QcotaConfig(representativeness=reading))
        planner.reset(8, 2, 1, horizon=world.num_cycles, attribute_scale=world.scale)
        trajectory = run_online(world, planner.act, 0)
        spread = np.mean([distances[np.ix_(cells, cells)].sum() / (8 * 7) for cells in trajectory.cells[10:]])
        results[reading] = (trajectory.aggregated_error, spread)
    assert results["set"][0] < results["per_cell"][0]
    assert results["set"][1] > results["per_cell"][1]
