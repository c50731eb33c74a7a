"""The gridworld wrapper's faster paths (issue 11, "Performance") give exactly what the plain code gave:
the learned methods' observation options built as one array per step against the agent-by-agent reference,
and the step's dicts, log and last rewards against a plain rebuild. Equality only; the timing is
benchmarks/gridworld_overhead.py."""

from __future__ import annotations

import numpy as np
import pytest

from envs import gridworld
from envs.gridworld import extend_observations
from envs.lbf import LBFEnv
from envs.rware import RWAREEnv


def reference_extend(observations, agent_id: bool, global_state: bool) -> list:
    """The agent-by-agent construction (envs.gridworld before issue 11, kept there for agents of different
    observation sizes)."""
    own = [np.asarray(o, dtype=np.float32).ravel() for o in observations]
    return gridworld._extend_observations_by_agent(own, agent_id, global_state)


@pytest.mark.parametrize("agent_id", [False, True])
@pytest.mark.parametrize("global_state", [False, True])
@pytest.mark.parametrize("agents, shape, dtype", [(1, (3,), np.float32), (6, (30,), np.float32),
                                                  (8, (71,), np.float32), (4, (2, 3), np.float64),
                                                  (3, (5,), np.int64)])
def test_extend_observations_equals_the_agent_by_agent_reference(agents, shape, dtype, agent_id, global_state):
    rng = np.random.default_rng(agents)
    observations = tuple((rng.normal(size=shape) * 5).astype(dtype) for _ in range(agents))
    got = extend_observations(observations, agent_id, global_state)
    expected = reference_extend(observations, agent_id, global_state)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == np.float32 and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def test_extend_observations_of_agents_with_different_sizes_falls_back_to_the_reference():
    observations = [np.arange(3, dtype=np.float32), np.arange(5, dtype=np.float32)]
    for agent_id in (False, True):
        for global_state in (False, True):
            for g, e in zip(extend_observations(observations, agent_id, global_state),
                            reference_extend(observations, agent_id, global_state)):
                np.testing.assert_array_equal(g, e)


def test_extended_rows_do_not_share_state_across_steps():
    first = extend_observations([np.zeros(2), np.ones(2)], True, True)
    snapshot = [row.copy() for row in first]
    extend_observations([np.full(2, 7.0), np.full(2, 9.0)], True, True)
    for row, before in zip(first, snapshot):
        np.testing.assert_array_equal(row, before)


@pytest.mark.parametrize("make, options", [
    (lambda o: LBFEnv({"world": {"size": "lbf1", "max_episode_steps": 30}, **o}), {}),
    (lambda o: LBFEnv({"world": {"size": "lbf1", "max_episode_steps": 30}, **o}), {"team_reward": True}),
    (lambda o: RWAREEnv({"world": {"size": "rware1", "max_steps": 30}, **o}), {}),
    (lambda o: RWAREEnv({"world": {"size": "rware1", "max_steps": 30}, **o}), {"agent_id": True, "global_state": True}),
], ids=["lbf", "lbf-team", "rware", "rware-id-state"])
def test_step_outputs_log_and_last_rewards_match_a_plain_rebuild(make, options):
    env, plain = make(options), make({})
    agents = env.possible_agents
    obs, _ = env.reset(seed=5)
    plain.reset(seed=5)
    rng = np.random.default_rng(1)
    log, done = [], False
    while not done:
        actions = dict(zip(agents, rng.integers(0, env.action_spaces[agents[0]].n, size=len(agents)).tolist()))
        obs, rewards, terminated, truncated, infos = env.step(actions)
        raw_obs, raw_rewards, *_ = plain.step(actions)
        package = [float(r) for r in plain.raw.rlcs_last_rewards]
        assert env.raw.rlcs_last_rewards == package == [raw_rewards[a] for a in agents]
        total = float(np.sum(package))
        expected = [total] * len(agents) if options.get("team_reward") else package
        assert rewards == dict(zip(agents, expected))
        assert list(terminated) == list(truncated) == [*agents, "__all__"]
        assert len(set(terminated.values())) == 1 and len(set(truncated.values())) == 1
        assert terminated is not truncated
        assert infos == {agent: {} for agent in agents} and len({id(info) for info in infos.values()}) == len(agents)
        extended = extend_observations([raw_obs[a] for a in agents], options.get("agent_id", False),
                                       options.get("global_state", False))
        for agent, row in zip(agents, extended):
            np.testing.assert_array_equal(obs[agent], row)
        log.append(total)
        done = terminated["__all__"] or truncated["__all__"]
    records = env.episode_log()
    assert [r["step"] for r in records] == list(range(1, len(log) + 1))
    assert [r["reward"] for r in records] == log
    assert records == plain.episode_log()
    assert env.episode_log() is not records and env.episode_log() == records  # a fresh list each call
