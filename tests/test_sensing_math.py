"""QCO-TA's equations against closed forms and hand-solved cases (SPE Eq. 3-5, MPI Eq. 6-8, NTS Eq. 10-14),
and the inference methods on tiny layouts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from envs.inference import Inference, InferenceConfig, neighbour_average
from policies.qcota.integration import AttributeWeights, estimated_loss, exponential_weights, unified_priority
from policies.qcota.priority import (gaussian_mutual_information, priority_scores, spatial_mutual_information,
                                     temporal_entropy)
from policies.qcota.selection import (action_values, allocate_in_turn, allocate_to_nearest, travel_reward,
                                      value_iteration)


def test_temporal_entropy_is_the_normal_closed_form():
    rng = np.random.default_rng(0)
    sigmas = np.array([0.5, 1.0, 3.0])
    series = rng.normal(2.0, sigmas, size=(200_000, 3))
    expected = 0.5 * np.log(2 * np.pi * np.e * sigmas ** 2)
    np.testing.assert_allclose(temporal_entropy(series), expected, atol=5e-3)
    np.testing.assert_allclose(temporal_entropy(series), norm(scale=sigmas).entropy(), atol=5e-3)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.8, -0.95])
def test_mutual_information_of_correlated_gaussians(rho):
    rng = np.random.default_rng(1)
    samples = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=100_000)
    info = gaussian_mutual_information(samples)
    assert info[0, 0] == 0 and info[1, 1] == 0
    assert info[0, 1] == pytest.approx(-0.5 * np.log(1 - rho ** 2), abs=3e-3)
    assert info[0, 1] == info[1, 0]


def test_spatial_mutual_information_sums_over_the_other_cells():
    rng = np.random.default_rng(2)
    history = rng.normal(size=(50, 2, 5))
    smi = spatial_mutual_information(history)
    pairwise = gaussian_mutual_information(history)
    np.testing.assert_allclose(smi, pairwise.sum(-1))
    assert smi.shape == (2, 5)


def test_priority_scores_weigh_entropy_and_information():
    rng = np.random.default_rng(3)
    common = rng.normal(size=(40, 1))
    # cell 0: wide, independent; cells 1-3: narrow but share a common signal
    history = np.concatenate([5 * rng.normal(size=(40, 1)), common + 0.1 * rng.normal(size=(40, 3))], 1)[:, None, :]
    entropy_only = priority_scores(history, 1.0, 0.0)[0]
    information_only = priority_scores(history, 0.0, 1.0)[0]
    assert entropy_only.argmax() == 0 and entropy_only.max() == 1.0
    assert information_only[0] == 0.0 and information_only[1:].min() > 0.9
    assert not priority_scores(history[:2], 0.5, 0.5).any()  # too little history: no priority yet


def test_value_iteration_matches_the_hand_solved_three_cell_problem():
    # cells on a line: d01 = 1, d12 = 1, d02 = 3; UPS = (1, 0, 0); beta = 0.5, gamma = 1, d_0 = 1 so
    # R = 1 / (d + 1). By hand: V0 = 1 + 0.5 V0 + 1 = 4 (stay); V1 = 0.5 * 4 + 0.5 = 2.5 (go to 0);
    # V2 = 0.5 * 4 + 0.25 = 2.25 (go to 0); each beats the alternatives.
    distances = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
    reward = travel_reward(distances, gamma=1.0, offset_km=1.0)
    np.testing.assert_allclose(reward, [[1, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 1]])
    value = value_iteration(np.array([1.0, 0.0, 0.0]), reward, beta=0.5, theta=1e-10)
    np.testing.assert_allclose(value, [4.0, 2.5, 2.25], atol=1e-8)
    # no travel reward: V* = UPS + beta max V*, i.e. 1 / (1 - beta) at the top cell, beta of that elsewhere
    np.testing.assert_allclose(value_iteration(np.array([0.0, 1.0, 0.0]), 0 * reward, 0.5, 1e-10), [1, 2, 1],
                               atol=1e-8)


def test_value_iteration_stops_at_theta():
    reward = travel_reward(np.array([[0.0, 1.0], [1.0, 0.0]]), 1.0, 1.0)
    loose = value_iteration(np.array([1.0, 0.0]), reward, 0.9, theta=0.5)
    tight = value_iteration(np.array([1.0, 0.0]), reward, 0.9, theta=1e-9)
    assert np.abs(loose - tight).max() > 0.1
    np.testing.assert_allclose(tight, [2.0 / 0.1, 0.9 * 20 + 0.5], atol=1e-6)


def test_allocation_in_turn_never_repeats_a_cell():
    distances = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 4.0], [5.0, 4.0, 0.0]])
    value = np.array([0.0, 10.0, 1.0])
    q = action_values(value, travel_reward(distances, 1.0, 1.0), 0.5)
    # both start at cell 0: the first takes the best cell (1), the second the best one left
    assert allocate_in_turn(np.array([0, 0]), q).tolist() == [1, 0]
    # baselines: nearest chosen cell, each cell once
    assert allocate_to_nearest(np.array([2, 2]), np.array([0, 1]), distances).tolist() == [1, 0]


def test_knn_and_idw_exact_on_a_line():
    positions = np.array([0.0, 1.0, 3.0, 6.0])
    distances = np.abs(positions[:, None] - positions[None, :])
    values = np.array([1.0, np.nan, 3.0, np.nan])
    # KNN k = 1: nearest collected value; k = 2: mean of both
    np.testing.assert_allclose(neighbour_average(distances, values, 1, 0.0)[[1, 3]], [1.0, 3.0])
    np.testing.assert_allclose(neighbour_average(distances, values, 2, 0.0)[[1, 3]], [2.0, 2.0])
    # IDW power 1 over 2 neighbours: cell 1 (d = 1, 2): (1/1 + 3/2) / (1 + 1/2) = 5/3; cell 3 (d = 6, 3): 7/3
    np.testing.assert_allclose(neighbour_average(distances, values, 2, 1.0)[[1, 3]], [5 / 3, 7 / 3])
    # leave-one-out: each collected cell from the others only
    np.testing.assert_allclose(neighbour_average(distances, values, 1, 0.0, leave_one_out=True)[[0, 2]], [3.0, 1.0])


@pytest.mark.parametrize("method", ["knn", "idw", "svr"])
def test_inference_keeps_collected_values_and_respects_missing(method):
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    distances = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    inference = Inference(InferenceConfig(method=method, knn_k=4, idw_neighbours=4), coords, distances)
    collected = np.array([[2.0, 2.0, 2.0, 2.0, np.nan], [1.0, np.nan, 3.0, np.nan, np.nan]])
    estimate = inference.estimate(collected)
    np.testing.assert_allclose(estimate[0], 2.0, atol=1e-6)  # a constant field is inferred exactly
    assert estimate[1, 0] == 1.0 and estimate[1, 2] == 3.0
    assert 1.0 <= estimate[1, 4] <= 3.0
    residuals = inference.leave_one_out(collected)
    assert np.isnan(residuals[1, [1, 3, 4]]).all() and not np.isnan(residuals[1, [0, 2]]).any()


def test_estimated_loss_is_the_normal_quantile_of_residuals():
    residuals = np.array([[1.0, 2.0, 3.0, np.nan], [np.nan, 5.0, np.nan, np.nan]])
    loss = estimated_loss(residuals, 0.95, np.array([4.0, 1.0]))
    assert loss[0] == pytest.approx(norm.ppf(0.95, loc=2.0, scale=1.0) / 4.0)  # in Gamma_a units
    assert loss[1] == 0.0  # one residual: no estimate, no update
    assert estimated_loss(residuals, 0.95, np.array([1.0, 1.0]))[0] == 1.0  # clipped to the Hedge range [0, 1]


def test_exponential_weights_favour_the_attribute_with_lower_loss():
    weights = np.array([0.5, 0.5])
    for _ in range(5):
        weights = exponential_weights(weights, np.array([0.2, 1.0]), eta=1.0)
    assert weights[0] > 0.95 and weights.sum() == pytest.approx(1.0)
    assert weights[0] / weights[1] == pytest.approx(np.exp(5 * 0.8))
    # through AttributeWeights with a fixed eta: Eq. 7 applied once per cycle
    tracker = AttributeWeights(2, rate="fixed", eta=1.0)
    for _ in range(5):
        tracker.record(np.array([0.2, 1.0]))
    np.testing.assert_allclose(tracker.weights, weights)
    # from leave-one-out residuals: attribute 0's are small, attribute 1's large (same Gamma_a)
    tracker = AttributeWeights(2, rate="fixed", eta=1.0)
    residuals = np.array([[0.1, 0.2, 0.1, np.nan], [2.0, 3.0, 2.5, np.nan]])
    updated = tracker.update(residuals, delta=0.95, scale=np.array([10.0, 10.0]))
    assert updated[0] > updated[1]
    assert unified_priority(updated, np.array([[1.0, 0.0], [0.0, 1.0]])).argmax() == 0
    assert (tracker.update(np.full((2, 4), np.nan), 0.95, np.ones(2)) == updated).all()  # nothing collected
