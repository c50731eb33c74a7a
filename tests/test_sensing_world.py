"""The sensing world: scoring rules (Definition 7, Eq. 15-16, missing truth), determinism, the RLlib view."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.inference import InferenceConfig
from envs.sensing import SensingWorld, SensingWorldConfig, attribute_scale, run_online
from policies.qcota.config import QcotaConfig
from policies.qcota.schemes import SCHEMES, make_scheme
from rl_cs.data.sensing_field import SensingField, SyntheticFieldConfig, synthetic_field
from rl_cs.errors import InputError


def tiny_field() -> SensingField:
    """4 cells on a line at 0, 1, 3, 6 km; 2 cycles; one attribute; cell 3's truth missing on cycle 0."""
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]])
    values = np.array([[[1.0], [2.0], [3.0], [np.nan]], [[1.0], [1.0], [5.0], [5.0]]])
    return SensingField(coords, values, ("V",), np.array(["2005-10-01", "2005-10-02"], dtype="datetime64[D]"),
                        "tiny")


def test_one_cycle_is_scored_by_hand():
    world = SensingWorld(tiny_field(), SensingWorldConfig(attributes=("V",), num_participants=2,
                                                          inference=InferenceConfig("knn", knn_k=1),
                                                          normalisation="range", error_cells="all"))
    world.reset(0)
    world.positions = np.array([1, 3])
    outcome = world.step(np.array([0, 2]))
    np.testing.assert_allclose(outcome.cost_km, [1.0, 3.0])  # Eq. 1: straight-line km
    # sensed 0 and 2 (values 1, 3); cell 1 <- nearest sensed (0): 1 vs truth 2; cell 3 has no truth: left out
    assert outcome.mae_all[0] == pytest.approx(1.0 / 3)
    assert outcome.mae_unsensed[0] == pytest.approx(1.0)
    assert outcome.epsilon == pytest.approx((1.0 / 3) / (5.0 - 1.0))  # Gamma: range over the field
    assert world.inferred[0, 0, 3] == 3.0  # inferred, never filled from the (missing) truth


def test_a_sensed_cell_with_missing_truth_is_inferred():
    world = SensingWorld(tiny_field(), SensingWorldConfig(attributes=("V",), num_participants=2,
                                                          inference=InferenceConfig("knn", knn_k=1)))
    world.reset(0)
    world.step(np.array([3, 0]))
    assert np.isnan(world.collected[0, 0, 3]) and world.inferred[0, 0, 3] == 1.0


def test_attribute_scale_family():
    values = np.array([[[1.0, 10.0]], [[3.0, np.nan]], [[5.0, 30.0]]])
    np.testing.assert_allclose(attribute_scale(values, "mean"), [3.0, 20.0])
    np.testing.assert_allclose(attribute_scale(values, "range"), [4.0, 20.0])
    np.testing.assert_allclose(attribute_scale(values, "std"), [np.std([1, 3, 5]), 10.0])


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_runs_deterministically_with_distinct_cells(scheme):
    field = synthetic_field(SyntheticFieldConfig(num_cells=12, num_cycles=15, seed=1))
    world = SensingWorld(field, SensingWorldConfig(("WS", "TEMP", "PM10"), num_participants=5,
                                                   inference=InferenceConfig("idw")))
    results = []
    for _ in range(2):
        policy = make_scheme(scheme, QcotaConfig())
        policy.reset(5, 3, 7)
        results.append(run_online(world, policy.act, 3))
    first, second = results
    np.testing.assert_array_equal(first.cells, second.cells)
    assert first.aggregated_error == second.aggregated_error and first.aggregated_error > 0
    assert all(len(set(row)) == 5 for row in first.cells.tolist())
    assert first.cells.shape == (15, 5) and first.average_cost == pytest.approx(first.cost_km.mean())


def test_qcota_travels_less_than_uniform_sampling():
    field = synthetic_field(SyntheticFieldConfig(num_cells=20, num_cycles=30, seed=2))
    world = SensingWorld(field, SensingWorldConfig(num_participants=6))
    costs = {}
    for scheme in ("qcota", "uns-ta"):
        policy = make_scheme(scheme, QcotaConfig())
        policy.reset(6, 2, 0)
        costs[scheme] = run_online(world, policy.act, 0).average_cost
    assert costs["qcota"] < 0.5 * costs["uns-ta"]


@pytest.mark.parametrize("change, where", [
    (dict(num_participants=30), "world.num_participants"),
    (dict(attributes=("WS", "NO2")), "world.attributes"),
    (dict(inference=InferenceConfig("kriging")), "world.inference.method"),
])
def test_world_rejects_bad_settings(change, where):
    field = synthetic_field(SyntheticFieldConfig(num_cells=24, num_cycles=5))
    with pytest.raises(InputError) as error:
        SensingWorld(field, dataclasses.replace(SensingWorldConfig(), **change))
    assert error.value.where == where


def test_rllib_view_has_per_participant_spaces_and_ends_by_truncation():
    from envs.sensing_rllib import SensingMultiAgentEnv

    field = synthetic_field(SyntheticFieldConfig(num_cells=10, num_cycles=4, seed=3))
    env = SensingMultiAgentEnv({"field": field, "world": SensingWorldConfig(num_participants=3)})
    assert env.possible_agents == ["participant_0", "participant_1", "participant_2"]
    observations, infos = env.reset(seed=5)
    assert set(observations) == set(env.possible_agents)
    for agent, observation in observations.items():
        assert env.observation_spaces[agent].contains(observation)
        assert env.action_spaces[agent].n == 10
        assert observation[:10].sum() == 1.0
    for cycle in range(4):
        observations, rewards, terminateds, truncateds, infos = env.step(
            {agent: (cycle + p) % 10 for p, agent in enumerate(env.possible_agents)})
        assert terminateds["__all__"] is False
        assert truncateds["__all__"] is (cycle == 3)
        assert all(reward < 0 for reward in rewards.values())
        assert infos["participant_1"]["cost_km"] >= 0
    assert observations["participant_0"][(0 + 3) % 10] == 1.0  # moved to its last cell


def test_register_makes_every_world_known_to_ray():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from envs import register
    from rl_cs.registry import worlds

    register()
    for name in worlds():
        assert _global_registry.contains(ENV_CREATOR, name)
    env = _global_registry.get(ENV_CREATOR, "sensing")({"world": {"num_participants": 3}})
    assert len(env.possible_agents) == 3  # a plain-dict env_config, as Tune passes it
