"""The DASC world (envs/dasc.py, RMO paper 001): DAGs, critical-path times, the matching stage, the rules the
world enforces, both reward signals (and that neither pays a subtask for declining), eta, and bad input.
The conformance suite (agents coming and going, determinism, RLlib's checker) runs on it in
tests/test_world_conformance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.dasc import ASSIGNED, FINISHED, PLANNER_ASSIGNMENT, TASK_DONE, DASCEnv, env_config
from envs.dasc_config import DASCConfig
from envs.dasc_dag import (critical_path, descendants, is_acyclic, latest_finish, random_dag, subtask_skill_counts,
                           task_times)
from envs.dasc_matching import (brute_force_matching, feasible_pairs, kuhn_munkres, time_utility, utility,
                                utility_weights)
from rl_cs.cli import main
from rl_cs.errors import InputError

SMALL = DASCConfig(num_workers=40, num_tasks=8)


def make_env(**changes) -> DASCEnv:
    return DASCEnv(env_config(DASCConfig(**{**vars(SMALL), **changes})))


def run(env: DASCEnv, seed: int, policy) -> list[tuple]:
    """One episode; returns (obs, rewards, terminateds, truncateds, infos, actions) per step."""
    obs, infos = env.reset(seed=seed)
    steps, done = [], False
    while not done:
        actions = policy(env, obs)
        result = env.step(actions)
        steps.append((*result, actions))
        obs, done = result[0], result[2]["__all__"] or result[3]["__all__"]
    return steps


def recommend_all(env, obs):
    return {agent: 1 for agent in obs}


# ------------------------------------------------------------------------------------------------ DAGs
def test_random_dags_are_acyclic_and_seeded():
    for seed in range(50):
        rng = np.random.default_rng(seed)
        size = int(rng.integers(6, 17))
        dag = random_dag(size, 0.3, rng)
        assert is_acyclic(dag) and not np.any(np.tril(dag))
    a, b = random_dag(12, 0.4, np.random.default_rng(3)), random_dag(12, 0.4, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert not is_acyclic(np.array([[0, 1], [1, 0]], dtype=bool))


def test_the_worlds_tasks_are_acyclic_dags_of_the_configured_size():
    env = make_env(num_tasks=30)
    env.reset(seed=4)
    m = env.config.max_subtasks
    assert env.size.min() >= 6 and env.size.max() <= 16
    for q in range(env.config.num_tasks):
        n = int(env.size[q])
        assert is_acyclic(env.adjacency[q])
        assert not env.adjacency[q, n:, :].any() and not env.adjacency[q, :, n:].any()
        assert env.valid[q * m:(q + 1) * m].sum() == n


def test_critical_path_times_on_a_hand_made_dag():
    # 0 -> 1, 0 -> 2, 1 -> 3, 1 -> 4, 2 -> 3 with durations 3, 2, 4, 1, 2
    adjacency = np.zeros((5, 5), dtype=bool)
    for i, j in ((0, 1), (0, 2), (1, 3), (1, 4), (2, 3)):
        adjacency[i, j] = True
    duration = np.array([3.0, 2.0, 4.0, 1.0, 2.0])
    finish, length = critical_path(adjacency, duration)
    assert finish.tolist() == [3, 5, 7, 8, 7] and length == 8  # 0 -> 2 -> 3 is critical
    assert latest_finish(adjacency, duration, 10.0).tolist() == [5, 8, 9, 10, 10]
    assert descendants(adjacency).tolist() == [4, 2, 1, 0, 0]
    # with a travel allowance of 1 s per activity (weights 4, 3, 5, 2, 3) and t_c = 100: CP = 4 + 5 + 2 = 11;
    # latest finish against t_e: sinks t_e, node 1 min(t_e - 2, t_e - 3), node 2 t_e - 2, node 0 min(LF1 - 3, LF2 - 5)
    expected, deadline, sub_e, sub_d, length = task_times(adjacency, duration, 100.0, 1.0, 1.3, 2.5)
    assert length == 11 and math.isclose(expected, 114.3) and math.isclose(deadline, 127.5)
    weights = duration + 1.0
    assert np.allclose(sub_e, [expected - 2 - 5, expected - 3, expected - 2, expected, expected])
    assert np.allclose(sub_d, latest_finish(adjacency, weights, deadline))
    assert np.allclose(sub_d - sub_e, deadline - expected)


def test_subtask_times_in_the_world_follow_the_critical_path():
    env = make_env()
    env.reset(seed=2)
    c, m = env.config, env.config.max_subtasks
    for q in range(c.num_tasks):
        rows = slice(q * m, q * m + int(env.size[q]))
        adjacency = env.adjacency[q, :env.size[q], :env.size[q]]
        weights = env.duration[rows] + c.cpm_travel_s
        _, length = critical_path(adjacency, weights)
        assert math.isclose(env.expected[q], env.created[q] + c.expected_factor * length)
        assert math.isclose(env.deadline[q], env.created[q] + c.deadline_factor * length)
        assert np.allclose(env.sub_deadline[rows], latest_finish(adjacency, weights, env.deadline[q]))
        sinks = ~adjacency.any(axis=1)
        assert np.allclose(env.sub_expected[rows][sinks], env.expected[q])


def test_subtask_skill_counts_are_right_skewed_with_the_papers_moments():
    counts = subtask_skill_counts(20000, 1.5, 0.5, 10.0, 1, 3, np.random.default_rng(0))
    share = np.bincount(counts, minlength=4)[1:] / len(counts)
    assert share[0] > share[1] > share[2] > 0.03  # most subtasks need one skill, a long tail needs three
    assert 1.4 < counts.mean() < 1.65
    env = make_env()
    env.reset(seed=0)
    assert env.sub_count[env.valid].min() >= 1 and env.sub_count[env.valid].max() <= 3
    assert env.w_count.min() >= 1 and 2.5 < env.w_count.mean() < 4.5


# ------------------------------------------------------------------------------------------------ matching
def test_utility_follows_eq_9_to_13():
    assert utility_weights(0.8, 0.25) == pytest.approx((0.2, 0.6, 0.2))
    assert time_utility(10.0, np.array([10.0]), np.array([20.0]))[0] == pytest.approx(1 / math.e)
    assert time_utility(20.0, np.array([10.0]), np.array([20.0]))[0] == pytest.approx(1.0)
    u = utility(np.array([[0.5]]), np.array([[0.25]]), np.array([1 / math.e]), 0.8, 0.25)
    assert u[0, 0] == pytest.approx(0.2 * 0.5 + 0.6 * 0.25 + 0.2 / math.e)


@pytest.mark.parametrize("max_cardinality", [True, False])
def test_kuhn_munkres_equals_brute_force_and_never_pairs_an_infeasible_pair(max_cardinality):
    rng = np.random.default_rng(11)
    for _ in range(300):
        rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        weights = rng.random((rows, cols))
        feasible = rng.random((rows, cols)) < rng.uniform(0.2, 0.9)
        r, c = kuhn_munkres(weights, feasible, max_cardinality)
        assert feasible[r, c].all(), "an infeasible pair was matched"
        assert len(set(r.tolist())) == len(r) and len(set(c.tolist())) == len(c)
        best = brute_force_matching(weights, feasible, max_cardinality)
        total = float(weights[r, c].sum())
        if max_cardinality:
            assert len(r) == best[0] and total == pytest.approx(best[1], abs=1e-9)
        else:
            assert total == pytest.approx(best[0], abs=1e-9)


def test_max_cardinality_prefers_more_matches_and_max_weight_more_utility():
    weights = np.array([[1.0, 0.1], [0.1, 0.0]])
    feasible = np.array([[True, True], [True, False]])
    r, c = kuhn_munkres(weights, feasible, max_cardinality=True)
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 1), (1, 0)]
    r, c = kuhn_munkres(weights, feasible, max_cardinality=False)
    assert list(zip(r.tolist(), c.tolist())) == [(0, 0)]


def test_feasibility_checks_skill_range_and_deadline():
    road = np.array([[100.0, 6000.0, 100.0, 100.0]])
    feasible = feasible_pairs(0.0, np.array([0b011]), np.array([0b111, 0b111, 0b001, 0b011]), road,
                              duration=np.array([50.0]), deadline=np.array([60.0]), range_m=5000.0, speed_mps=10.0)
    # worker 0: ok only if 100 / 10 + 50 = 60 < 60 -> no (deadline); worker 1: out of range; worker 2: a skill short
    assert feasible.tolist() == [[False, False, False, False]]
    feasible = feasible_pairs(0.0, np.array([0b011]), np.array([0b111, 0b111, 0b001, 0b011]), road,
                              duration=np.array([50.0]), deadline=np.array([61.0]), range_m=5000.0, speed_mps=10.0)
    assert feasible.tolist() == [[True, False, False, True]]


def _check_rules(env: DASCEnv) -> int:
    """Every matched subtask in the log: skill, range, deadline and order constraints held; returns matches."""
    c, m = env.config, env.config.max_subtasks
    log = env.episode_log()
    for entry in log:
        s = entry["task"] * m + entry["subtask"]
        assert not (env.sub_skills[s] & ~env.w_skills[entry["worker"]]).any(), "skill constraint broken"
        assert entry["travel_m"] <= c.range_m, "range constraint broken"
        assert entry["finish"] < entry["deadline"] == env.sub_deadline[s], "deadline constraint broken"
        assert entry["arrival"] == pytest.approx(entry["matched_at"] + entry["travel_m"] / c.speed_mps)
        for predecessor in np.flatnonzero(env.adjacency[entry["task"], :, entry["subtask"]]):
            p = entry["task"] * m + predecessor
            assert env.status[p] == FINISHED and env.finish[p] <= entry["matched_at"], "order constraint broken"
            assert entry["ready_at"] >= env.finish[p]
    workers = {}
    for entry in sorted(log, key=lambda e: e["matched_at"]):  # a worker does one subtask at a time
        assert entry["matched_at"] >= workers.get(entry["worker"], -np.inf)
        workers[entry["worker"]] = entry["finish"]
    return len(log)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_assignment_respects_the_worlds_rules(seed):
    env = make_env(num_workers=25, num_tasks=10)
    run(env, seed, recommend_all)
    assert _check_rules(env) > 20


def test_a_planner_cannot_submit_an_infeasible_or_duplicate_pair():
    env = make_env()
    obs, _ = env.reset(seed=3)
    for _ in range(500):
        view = env.decision_view()
        bad = np.argwhere(~view.feasible)
        if len(bad) and len(view.agents) >= 2:
            break
        obs, *_ = env.step({agent: 0 for agent in obs})
    else:
        pytest.fail("no step with two deciders and an infeasible pair")
    row, col = bad[0]
    good_row = int(np.flatnonzero(view.feasible.any(axis=1) & (np.arange(len(view.agents)) != row))[0])
    good_col = int(np.flatnonzero(view.feasible[good_row])[0])
    actions = {agent: 0 for agent in obs}
    actions[view.agents[row]] = 1
    actions[view.agents[good_row]] = 1
    actions[PLANNER_ASSIGNMENT] = {view.agents[row]: int(view.workers[col]),
                                   view.agents[good_row]: int(view.workers[good_col])}
    before = env.episode_metrics()["invalid_actions"]
    env.step(actions)
    assert env.episode_metrics()["invalid_actions"] == before + 1
    assert env.status[view.subtask[row]] != ASSIGNED and env.worker[view.subtask[good_row]] == view.workers[good_col]
    assert env.stats.failed_recommendations == 1  # the refused pair's subtask was recommended and found no worker


# ------------------------------------------------------------------------------------------------ rewards
def _delivered(steps, key):
    totals = {}
    for obs, rewards, _, _, infos, _ in steps:
        for agent in obs:
            totals[agent] = totals.get(agent, 0.0) + infos[agent][key]
    return totals


def test_both_signals_pay_exactly_the_worlds_outcomes_and_nothing_is_lost():
    env = make_env(num_workers=25, num_tasks=10)
    steps = run(env, 5, recommend_all)
    m = env.config.max_subtasks
    done = np.flatnonzero(env.task_status == TASK_DONE)
    assert len(done) >= 3
    sparse, shaped = _delivered(steps, "sparse"), _delivered(steps, "shaped")
    fails = env.stats.failed_recommendations
    assert sum(sparse.values()) == pytest.approx(env.task_profit[done].sum() - fails)
    matched = env.status == FINISHED
    assert sum(shaped.values()) == pytest.approx(env.shaped_value[matched].sum() - fails)
    for q in done:  # the profit went to the subtask whose finish completed the task
        last = q * m + int(np.argmax(np.where(env.valid[q * m:(q + 1) * m], env.finish[q * m:(q + 1) * m], -1)))
        assert sparse[env.possible_agents[last]] == pytest.approx(env.task_profit[q] - env.fails[last])
    # the reward dict carries the configured signal, and every agent that received something left the episode
    assert all(r == infos[a]["sparse"] for obs, rewards, _, _, infos, _ in steps for a, r in rewards.items())


def test_shaped_reward_is_eq_3():
    env = make_env(num_workers=25, num_tasks=10, reward="shaped")
    steps = run(env, 5, recommend_all)
    c = env.config
    for entry in env.episode_log():
        s = entry["task"] * c.max_subtasks + entry["subtask"]
        share = env.share_on_time[s] if entry["finish"] <= entry["expected"] else env.share_late[s]
        assert env.shaped_value[s] == pytest.approx(share - c.kappa * entry["travel_m"])
    assert all(r == infos[a]["shaped"] for obs, rewards, _, _, infos, _ in steps for a, r in rewards.items())


def test_declining_earns_nothing_in_either_signal():
    """A decline is worth exactly 0 however often a subtask declines: every reward delivered after a 0 action
    is 0 in both signals (a random policy declines about half the time), and a policy that always declines
    collects exactly 0 -- no more than one that recommends."""
    env = make_env()
    rng = np.random.default_rng(0)
    steps = run(env, 2, lambda env, obs: {agent: int(rng.integers(2)) for agent in obs})
    last_action = {}  # each agent's latest action; the reward in its next observation is for that action
    declines = 0
    for obs, rewards, _, _, infos, actions in steps:
        last_action.update(actions)
        for agent in obs:
            if last_action.get(agent) == 0:
                declines += 1
                assert infos[agent]["sparse"] == 0.0 and infos[agent]["shaped"] == 0.0
    assert declines > 20
    lazy = run(make_env(), 2, lambda env, obs: {agent: 0 for agent in obs})
    for key in ("sparse", "shaped"):
        assert sum(_delivered(lazy, key).values()) == 0.0
    busy = run(make_env(), 2, recommend_all)
    assert sum(_delivered(busy, "sparse").values()) > 0 and sum(_delivered(busy, "shaped").values()) > 0


def test_a_recommended_subtask_without_a_worker_gets_minus_one():
    env = make_env(num_workers=3, num_tasks=6)
    steps = run(env, 1, recommend_all)
    assert env.stats.failed_recommendations > 0
    minus = sum(1 for obs, _, _, _, infos, _ in steps for a in obs if infos[a]["shaped"] == -1.0)
    assert minus > 0


# ------------------------------------------------------------------------------------------------ eta
def test_set_eta_changes_the_matching_utility_and_refuses_values_outside_0_1():
    env = make_env()
    env.reset(seed=0)
    env.set_eta(0.9, 0.1)
    assert env.eta == (0.9, 0.1) and env.decision_view().alpha == 0.9
    for alpha, beta, field in ((1.5, 0.5, "eta.alpha"), (0.5, -0.1, "eta.beta"), (float("nan"), 0.5, "eta.alpha")):
        with pytest.raises(InputError, match=field.replace(".", r"\.")):
            env.set_eta(alpha, beta)
    assert env.eta == (0.9, 0.1)
    env.set_eta(1.0, 1.0)  # only u_skill counts: the chosen pair maximises it among feasible ones
    view = env.decision_view()
    weights = view.utility()
    assert np.allclose(weights, view.u_skill)


def test_metrics_and_log():
    env = make_env()
    run(env, 0, recommend_all)
    metrics = env.episode_metrics()
    assert metrics["max_payable"] == pytest.approx(env.rho.sum())
    assert metrics["revenue"] <= metrics["max_payable"]
    assert 0 < metrics["completion_rate"] <= 1 and 0 < metrics["subtask_match_rate"] <= 1
    assert metrics["revenue"] == pytest.approx(np.nansum(env.task_profit))
    log = env.episode_log()
    assert {"task", "subtask", "worker", "matched_at", "finish", "task_status", "task_profit"} <= set(log[0])


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("changes, field", [
    ({"subtasks_per_task": (16, 6)}, "world.subtasks_per_task"),
    ({"subtasks_per_task": ()}, "world.subtasks_per_task"),
    ({"skills_per_subtask": (1, 11)}, "world.skills_per_subtask"),
    ({"alpha": 1.5}, "world.alpha"),
    ({"beta": -0.2}, "world.beta"),
    ({"deadline_factor": 1.0}, "world.deadline_factor"),
])
def test_bad_world_config_names_the_field(changes, field):
    with pytest.raises(InputError) as error:
        DASCConfig(**changes).validate()
    assert error.value.where == field


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.mark.parametrize("override, message", [
    ("world.subtasks_per_task=[16, 6]", "inverted range"),
    ("world.subtasks_per_task=[]", "world.subtasks_per_task"),
    ("world.skills_per_subtask=[1, 12]", "skill categories"),
    ("world.alpha=1.2", "world.alpha"),
    ("world.beta=-1", "world.beta"),
])
def test_bad_input_exits_2_and_writes_nothing(override, message, tmp_path, capsys):
    for argv in (["train", "km", "--world", "dasc", "--results-dir", str(tmp_path / "results")],
                 ["evaluate", "km", "--world", "dasc", "--log", str(tmp_path / "log.parquet")],
                 ["check", "dasc"]):
        assert cli(*argv, "--set", override) == 2
        assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------ RMO's additions
def _check_early_rules(env: DASCEnv) -> tuple[int, int]:
    """Early matching: skill, range, deadline hold; work starts only after every predecessor finished.
    Returns (matches, matches made before a predecessor had finished)."""
    c, m = env.config, env.config.max_subtasks
    early = 0
    for entry in env.episode_log():
        s = entry["task"] * m + entry["subtask"]
        assert not (env.sub_skills[s] & ~env.w_skills[entry["worker"]]).any()
        assert entry["travel_m"] <= c.range_m and entry["finish"] < entry["deadline"]
        start = entry["finish"] - env.duration[s]
        assert start >= entry["arrival"] - 1e-9
        predecessors = [entry["task"] * m + p for p in np.flatnonzero(env.adjacency[entry["task"], :, entry["subtask"]])]
        for p in predecessors:
            assert env.status[p] == FINISHED and env.finish[p] <= start + 1e-9, "order constraint broken"
        early += any(env.finish[p] > entry["matched_at"] for p in predecessors)
    return len(env.episode_log()), early


@pytest.mark.parametrize("seed", [0, 1])
def test_early_matching_matches_before_predecessors_finish_but_never_starts_early(seed):
    env = make_env(num_workers=25, num_tasks=10, ready_when="assigned")
    run(env, seed, recommend_all)
    matches, early = _check_early_rules(env)
    assert matches > 20 and early > 0
    assert env.episode_metrics()["invalid_actions"] == 0


def test_greedy_matching_gives_each_recommended_subtask_its_nearest_free_feasible_worker():
    """world.matching = greedy (REC): in the order they became ready, nearest free feasible worker first --
    the same pairs as the greedy-dasc baseline's planner on the same decision."""
    from policies.dasc_baselines import greedy_pairs

    env = make_env(num_workers=25, num_tasks=10, matching="greedy")
    obs, _ = env.reset(seed=2)
    checked = 0
    for _ in range(200):
        view = env.decision_view()
        expected = {view.agents[row]: int(view.workers[col]) for row, col in greedy_pairs(view).items()}
        obs, _, terminated, truncated, _ = env.step({agent: 1 for agent in obs})
        assert {agent: int(env.worker[view.subtask[view.agents.index(agent)]]) for agent in expected} == expected
        checked += len(expected)
        if terminated["__all__"] or truncated["__all__"]:
            break
    assert checked > 10
    env.set_matching("km")
    assert env.matching == "km"
    with pytest.raises(InputError, match="matching"):
        env.set_matching("hungarian")


def test_a_matched_subtasks_infos_carry_its_pairs_utility_terms():
    env = make_env(num_workers=25, num_tasks=10)
    steps = run(env, 3, recommend_all)
    utility = {}
    for obs, _, _, _, infos, _ in steps:
        for agent in obs:
            if "utility" in infos[agent]:
                utility[agent] = infos[agent]["utility"]
    log = {entry["agent"]: [entry["u_skill"], entry["u_dist"], entry["u_time"]] for entry in env.episode_log()}
    finished = {agent for agent in log if env.status[env.possible_agents.index(agent)] == FINISHED}
    assert finished and finished <= set(utility)
    for agent in utility:
        assert utility[agent] == pytest.approx(log[agent])


@pytest.mark.parametrize("changes, field", [({"matching": "hungarian"}, "world.matching"),
                                            ({"ready_when": "started"}, "world.ready_when")])
def test_bad_matching_options_name_the_field(changes, field):
    with pytest.raises(InputError) as error:
        DASCConfig(**{**vars(SMALL), **changes}).validate()
    assert error.value.where == field
