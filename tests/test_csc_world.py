"""The CSC world (CAFE §3, §4.1): RLlib conformance, the event-driven decision set, skill and location
invariants, the payment formula, exact single and collaborative finish times, expiry, reward modes,
determinism, Greedy against random, and config validation. Small seeded worlds; cache in a tmp folder."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

from envs.csc import DONE, EXPIRED, FUTURE, IDLE, OPEN, TRAVELLING, WORKING, CSCEnv, worker_id
from policies.heuristics import Greedy, Heuristic, RandomPolicy
from rl_cs.data.tasks import TaskRules, payment
from rl_cs.errors import InputError
from rl_cs.evaluation import evaluate

# 12 x 12 grid at 250 m spacing (~2.75 km across): a 2 km range makes the range constraint bite.
WORLD = dict(num_workers=30, num_tasks=40, range_m=2000.0, num_optional_tasks=4, num_near_tasks=4,
             num_near_workers=4, num_idle_workers=4, city=dict(rows=12, cols=12),
             synthetic_tasks=dict(num_tasks=300, num_pois=200))


def make_env(cache_dir, **world) -> CSCEnv:
    return CSCEnv({"world": {**WORLD, **world}, "cache_dir": str(cache_dir)})


class Idle(Heuristic):
    """Every decider takes tau_0."""

    def act(self, view, obs):
        return {agent: 0 for agent in obs}


class Unmasked(Heuristic):
    """Uniform over the whole action space, mask ignored, plus some out-of-range actions (like RLlib's checker)."""

    def reset(self, seed):
        self.rng = np.random.default_rng(seed)

    def act(self, view, obs):
        n = view.num_actions
        return {agent: int(self.rng.integers(-1, n + 2)) for agent in obs}


def feasibility(env):
    """Independently computed (workers x tasks) feasibility and road distances."""
    c = env.config
    road = env.scenario.city.distance.between(env.w_node, env.tasks.node).astype(np.float64)
    feasible = ((env.w_state == IDLE)[:, None] & (env.status == OPEN)[None, :] & env.skills[:, env.tasks.skill]
                & (road <= c.range_m) & (env.time + road / c.speed_mps < env.tasks.deadline[None, :]))
    return feasible, road


def episode(env, actor, seed, on_step=None):
    """Run one episode; ``on_step(env, obs, actions, rewards, terminateds, truncateds, infos, before)``."""
    obs, infos = env.reset(seed=seed)
    actor.reset(seed)
    if on_step:
        on_step(env, obs, None, {}, {"__all__": False}, {"__all__": False}, infos, None)
    steps = 0
    while True:
        actions = actor.act(env.decision_view(), obs)
        before = {"revenue": env.stats.revenue, "remaining": env.remaining.copy(), "obs": obs,
                  "open": env._open, "option_index": env._option_index, "decider_row": env._decider_row}
        obs, rewards, terminateds, truncateds, infos = env.step(actions)
        steps += 1
        if on_step:
            on_step(env, obs, actions, rewards, terminateds, truncateds, infos, before)
        if terminateds["__all__"] or truncateds["__all__"]:
            return steps


# --- RLlib conformance -----------------------------------------------------------------------------------------

def test_rllib_multiagent_env_checker_passes(cache_dir):
    env = make_env(cache_dir)
    check_multiagent_environments(env)
    assert env.episode_metrics()["decisions"] > 0


@pytest.mark.parametrize("reward", ["split", "team", "ir"])
def test_dicts_spaces_and_reward_keys_over_an_episode(cache_dir, reward):
    env = make_env(cache_dir, reward=reward)
    possible = set(env.possible_agents)
    acted: set[str] = set()

    def check(env, obs, actions, rewards, terminateds, truncateds, infos, before):
        assert set(obs) <= possible
        assert set(env.agents) == set(obs)
        assert "__all__" in terminateds and "__all__" in truncateds
        assert set(infos) <= set(obs)
        for agent, o in obs.items():
            assert o.shape == (env.layout.size,) and o.dtype == np.float32
            assert env.observation_spaces[agent].contains(o), agent
            assert np.all(np.isfinite(o))
        if actions is not None:
            acted.update(actions)
            for agent, r in rewards.items():
                assert agent in acted or agent in obs, f"reward for {agent}, which never acted"
                if agent not in acted:
                    assert r == 0.0
                assert isinstance(r, float)
            missing = [a for a in obs if a in actions and a not in rewards]
            assert not missing, f"acted and observed again without a reward: {missing}"

    steps = episode(env, RandomPolicy(), seed=1, on_step=check)
    assert steps > 5


def test_out_of_mask_and_out_of_range_actions_are_tau0_and_counted(cache_dir):
    env = make_env(cache_dir)
    obs, _ = env.reset(seed=2)
    x = env.config.num_optional_tasks
    while len(obs) < 4 or not any((o[-x:] == 0).any() for o in obs.values()):
        obs, *_ = env.step({a: 0 for a in obs})  # let tasks appear; tau_0 everywhere
    decisions = env.stats.decisions
    masked_out = [(a, int(np.flatnonzero(o[-x:] == 0)[0]) + 1) for a, o in obs.items() if (o[-x:] == 0).any()]
    others = [a for a in obs if a != masked_out[0][0]]
    bad = {others[0]: -1, others[1]: x + 1, others[2]: 10 ** 6, masked_out[0][0]: masked_out[0][1]}
    actions = {a: bad.get(a, 0) for a in obs}
    env.step(actions)
    assert env.episode_metrics()["invalid_actions"] == 4
    assert env.episode_metrics()["decisions"] == decisions + len(actions)
    for agent in bad:
        w = int(agent.split("_")[1])
        assert env.w_task[w] == -1 and env.w_state[w] == IDLE, agent
    assert env.stats.travel_m == 0.0

    # a whole episode of unmasked actions never crashes and every non-zero invalid action is counted
    env2 = make_env(cache_dir)
    counted = {"invalid": 0}

    def count(env, obs, actions, rewards, terminateds, truncateds, infos, before):
        if actions is None:
            return
        for agent, a in actions.items():
            o = before["obs"][agent]
            valid = a == 0 or (1 <= a <= x and o[-x - 1 + a] == 1)
            counted["invalid"] += not valid

    episode(env2, Unmasked(), seed=3, on_step=count)
    assert counted["invalid"] > 0
    assert env2.episode_metrics()["invalid_actions"] == counted["invalid"]


def test_rllib_episode_accepts_every_step_and_return_equals_revenue(cache_dir):
    env = make_env(cache_dir, reward="split")
    obs, infos = env.reset(seed=4)
    ep = MultiAgentEpisode(observation_space=env.observation_spaces, action_space=env.action_spaces)
    ep.add_env_reset(observations=obs, infos=infos)
    actor = Greedy()
    done = False
    while not done:
        actions = actor.act(env.decision_view(), obs)
        obs, rewards, terminateds, truncateds, infos = env.step(actions)
        ep.add_env_step(observations=obs, actions=actions, rewards=rewards, infos=infos,
                        terminateds=terminateds, truncateds=truncateds)
        done = terminateds["__all__"] or truncateds["__all__"]
    assert ep.is_done and terminateds["__all__"]
    assert env.stats.revenue > 0
    assert ep.get_return() == pytest.approx(env.stats.revenue, rel=1e-9)


def test_time_cap_truncation_gives_last_observations_rllib_accepts(cache_dir):
    """At the max_episode_s cap RLlib needs a last observation of every agent that acted (to bootstrap)."""
    env = make_env(cache_dir, max_episode_s=600.0)
    obs, infos = env.reset(seed=3)
    ep = MultiAgentEpisode(observation_space=env.observation_spaces, action_space=env.action_spaces)
    ep.add_env_reset(observations=obs, infos=infos)
    actor = RandomPolicy()
    actor.reset(3)
    done = False
    while not done:
        actions = actor.act(env.decision_view(), obs)
        obs, rewards, terminateds, truncateds, infos = env.step(actions)
        ep.add_env_step(observations=obs, actions=actions, rewards=rewards, infos=infos,
                        terminateds=terminateds, truncateds=truncateds)
        done = terminateds["__all__"] or truncateds["__all__"]
    assert truncateds["__all__"] and not terminateds["__all__"] and env.time >= 600.0
    acted = {worker_id(w) for w in np.flatnonzero(env.has_acted)}
    assert acted and set(obs) == acted
    for o in obs.values():
        assert env.observation_spaces["worker_0"].contains(o)
        assert o[-env.layout.num_actions] == 1.0
    assert ep.is_done


def test_truncation_with_no_open_task_still_observes_every_acted_agent(cache_dir):
    """E.g. a night gap in a real request stream: the cap is hit while every remaining task lies in the future."""
    env = make_env(cache_dir, max_episode_s=60.0)
    obs, _ = env.reset(seed=3)
    row = env._decider_row[next(iter(obs))]
    w, t = int(env._deciders[row]), int(env._open[env._option_index[row, 0]])
    obs, _, terminateds, truncateds, _ = send(env, w, t, obs)
    assert not (terminateds["__all__"] or truncateds["__all__"]) and env.time == 30.0
    env.tasks.created[:] = 1e9  # monkeypatch: every task not yet closed is far in the future
    env.status[env.status == OPEN] = FUTURE
    obs, rewards, terminateds, truncateds, infos = env.step({agent: 0 for agent in obs})
    assert truncateds["__all__"] and not terminateds["__all__"]
    acted = {worker_id(i) for i in np.flatnonzero(env.has_acted)}
    assert worker_id(w) in acted and set(obs) == acted == set(rewards) == set(infos)
    x = env.config.num_optional_tasks
    for o in obs.values():
        assert env.observation_spaces[worker_id(w)].contains(o)
        np.testing.assert_array_equal(o[-x - 1:], [1.0] + [0.0] * x)  # only tau_0 left


# --- event-driven decisions and the action mask ----------------------------------------------------------------

@pytest.mark.parametrize("actor", [RandomPolicy(), Greedy()], ids=["random", "greedy"])
def test_decision_set_is_exactly_the_idle_workers_with_a_feasible_task(cache_dir, actor):
    env = make_env(cache_dir)
    x = env.config.num_optional_tasks
    seen = {"deciders": 0, "partial_masks": 0, "range_cut": 0}

    def check(env, obs, *rest):
        feasible, road = feasibility(env)
        expected = {worker_id(w) for w in np.flatnonzero(feasible.any(axis=1))}
        if not (rest[2]["__all__"] or rest[3]["__all__"]):
            assert set(obs) == expected
        if not obs:
            return
        batch = np.stack(list(obs.values()))
        _, sets, mask = env.layout.split(batch)
        options = sets["optional"][0]
        assert np.all(mask[:, 0] == 1)
        for row, agent in enumerate(obs):
            w = int(agent.split("_")[1])
            assert env.w_state[w] == IDLE
            roads = np.sort(road[w, feasible[w]])
            k = min(x, len(roads))
            np.testing.assert_array_equal(mask[row, 1:], np.arange(x) < k)
            np.testing.assert_array_equal(sets["optional"][1][row], np.arange(x) < k)
            np.testing.assert_allclose(options[row, :k, 2] * env.config.range_m, roads[:k], rtol=1e-5, atol=1e-3)
            assert np.all(options[row, :k, 7] == 1.0)  # skill match flag of every option
            assert np.all(options[row, k:] == 0.0)  # padding is zero
            seen["partial_masks"] += k < x
            idle_in_skill = ((env.status == OPEN) & env.skills[w, env.tasks.skill]
                             & (env.time + road[w] / env.config.speed_mps < env.tasks.deadline))
            seen["range_cut"] += bool(np.any(idle_in_skill & (road[w] > env.config.range_m)))
        seen["deciders"] += len(obs)

    episode(env, actor, seed=5, on_step=check)
    assert seen["deciders"] > 20
    assert seen["partial_masks"] > 0 and seen["range_cut"] > 0, seen  # both constraints were exercised


# --- skill constraint, one place per worker, completions ---------------------------------------------------------

@pytest.mark.parametrize("actor", [RandomPolicy(), Greedy(), Unmasked()], ids=["random", "greedy", "unmasked"])
def test_skill_and_location_invariants_over_an_episode(cache_dir, actor):
    env = make_env(cache_dir)
    xy = env.scenario.city.node_xy
    assigned = {"n": 0}

    def check(env, obs, *rest):
        busy = env.w_state != IDLE
        assert np.all((env.w_task >= 0) == busy), "a travelling/working worker has a task, an idle one has none"
        w = np.flatnonzero(busy)
        assert np.all(env.skills[w, env.tasks.skill[env.w_task[w]]]), "worker sent to a task it has no skill for"
        assert np.all(env.w_node[w] == env.tasks.node[env.w_task[w]])
        working = np.flatnonzero(env.w_state == WORKING)
        assert np.all(env.w_arrive[working] <= env.time + 1e-9)
        assert np.all(env.status[env.w_task[working]] == OPEN)
        np.testing.assert_allclose(env.worker_xy()[working], xy[env.tasks.node[env.w_task[working]]])
        travelling = np.flatnonzero(env.w_state == TRAVELLING)
        assert np.all(env.w_arrive[travelling] > env.time)
        assigned["n"] += len(w)

    episode(env, actor, seed=6, on_step=check)
    assert assigned["n"] > 0
    assert env.stats.completed > 0
    seen: dict[int, list[tuple[float, float]]] = {}
    for entry in env.stats.log:
        t = entry.task
        assert env.status[t] == DONE
        assert len(set(entry.workers)) == len(entry.workers)
        assert all(env.skills[w, env.tasks.skill[t]] for w in entry.workers)
        assert all(work > 0 for work in entry.work), f"a listed contributor did no work: {entry}"
        assert sum(entry.work) == pytest.approx(env.tasks.quantity[t], rel=1e-9)
        assert env.tasks.created[t] <= entry.start <= entry.finish <= env.tasks.deadline[t]
        for w, work in zip(entry.workers, entry.work):
            seen.setdefault(w, []).append((entry.finish - work * 60 / env.config.work_rate, entry.finish))
    for w, spans in seen.items():  # a worker's working spans never overlap (one place at a time)
        spans.sort()
        for (_, end), (begin, _) in zip(spans, spans[1:]):
            assert begin >= end - 1e-6, (w, spans)
    assert env.stats.completed + env.stats.expired == env.config.num_tasks
    assert np.all(np.isin(env.status, [DONE, EXPIRED]))


# --- payment formula -----------------------------------------------------------------------------------------

def test_payment_formula_around_expected_and_deadline():
    rules = TaskRules()
    rho, t_e = 20.0, 600.0
    t_d = t_e + rules.deadline_minutes * 60
    zeta = rules.zeta
    assert zeta == pytest.approx(0.5 / 1200)

    def pay(t):
        return float(payment(np.array([rho]), np.array([t]), np.array([t_e]), np.array([t_d]), zeta)[0])

    assert pay(0.0) == rho
    assert pay(t_e - 1e-6) == rho
    assert pay(t_e) == rho
    assert pay(t_e + 1e-6) == pytest.approx(rho, rel=1e-8) and pay(t_e + 1e-6) < rho
    assert pay(t_e + 60) == pytest.approx(rho * (1 - zeta * 60))
    assert pay((t_e + t_d) / 2) == pytest.approx(0.75 * rho)
    assert pay(t_d - 1e-6) == pytest.approx(0.5 * rho)
    assert pay(t_d) == 0.0
    assert pay(t_d + 1) == 0.0 and pay(1e9) == 0.0
    # vectorised over tasks
    out = payment(np.array([10.0, 10.0, 10.0]), np.array([0.0, 1200.0, 1800.0]), np.full(3, 600.0),
                  np.full(3, 1800.0), zeta)
    np.testing.assert_allclose(out, [10.0, 7.5, 0.0])


def send(env, worker: int, task: int, obs: dict) -> None:
    """Step with ``worker`` sent to ``task`` (must be one of its options) and every other decider on tau_0."""
    row = env._decider_row[worker_id(worker)]
    slots = [s for s in np.flatnonzero(env._option_mask[row]) if env._open[env._option_index[row, s]] == task]
    assert slots, f"task {task} is not an option of worker {worker}"
    actions = {agent: 0 for agent in obs}
    actions[worker_id(worker)] = int(slots[0]) + 1
    return env.step(actions)


def run_idle_until(env, obs, condition):
    while not condition():
        obs, _, terminateds, truncateds, _ = env.step({agent: 0 for agent in obs})
        if terminateds["__all__"] or truncateds["__all__"]:
            break
    return obs


def road(env, worker, task) -> float:
    return float(env.scenario.city.distance.between(np.array([env.w_node[worker]]),
                                                    np.array([env.tasks.node[task]]))[0, 0])


def first_option(env, obs, room_s=60.0):
    """A (worker, task, arrival) whose solo finish with the natural quantity lands well before t_d."""
    c = env.config
    for agent in obs:
        row = env._decider_row[agent]
        w = env._deciders[row]
        for slot in np.flatnonzero(env._option_mask[row]):
            t = env._open[env._option_index[row, slot]]
            arrival = env.time + road(env, w, t) / c.speed_mps
            if arrival + env.remaining[t] * 60 / c.work_rate < env.tasks.deadline[t] - room_s:
                return int(w), int(t), arrival
    raise AssertionError("no suitable option")


@pytest.mark.parametrize("work_rate", [1.0, 2.5])
def test_solo_worker_finishes_at_arrival_plus_q_over_rate_and_is_paid_the_formula(cache_dir, work_rate):
    env = make_env(cache_dir, work_rate=work_rate)
    obs, _ = env.reset(seed=7)
    w, t, arrival = first_option(env, obs)
    q = float(env.remaining[t])
    assert q == env.tasks.quantity[t]
    obs, *_ = send(env, w, t, obs)
    assert env.w_state[w] == TRAVELLING and env.w_arrive[w] == pytest.approx(arrival)
    run_idle_until(env, obs, lambda: env.status[t] != OPEN)
    assert env.status[t] == DONE
    (entry,) = [e for e in env.stats.log if e.task == t]
    assert entry.workers == [w]
    assert entry.start == pytest.approx(arrival)
    assert entry.finish == pytest.approx(arrival + q / work_rate * 60.0, abs=1e-6)
    assert entry.work == [pytest.approx(q)]
    expected = payment(env.tasks.rho_max[t], entry.finish, env.tasks.expected[t], env.tasks.deadline[t],
                       env.tasks.zeta)
    assert entry.payment == pytest.approx(float(expected))
    assert env.w_state[w] == IDLE and env.w_task[w] == -1


def test_solo_finish_midway_between_te_and_td_pays_three_quarters(cache_dir):
    env = make_env(cache_dir)
    obs, _ = env.reset(seed=8)
    w, t, arrival = first_option(env, obs)
    midway = (env.tasks.expected[t] + env.tasks.deadline[t]) / 2
    env.remaining[t] = (midway - arrival) / 60.0  # worker-minutes to finish exactly midway (monkeypatched q)
    obs, *_ = send(env, w, t, obs)
    run_idle_until(env, obs, lambda: env.status[t] != OPEN)
    (entry,) = [e for e in env.stats.log if e.task == t]
    assert entry.finish == pytest.approx(midway, abs=1e-6)
    assert entry.payment == pytest.approx(0.75 * env.tasks.rho_max[t])  # payment_at_deadline 0.5, halfway
    assert env.stats.revenue == pytest.approx(entry.payment)


def test_task_that_cannot_be_finished_expires_at_its_deadline_and_pays_nothing(cache_dir):
    env = make_env(cache_dir)
    obs, _ = env.reset(seed=9)
    w, t, arrival = first_option(env, obs)
    env.remaining[t] = 1e6
    obs, *_ = send(env, w, t, obs)
    obs = run_idle_until(env, obs, lambda: env.status[t] != OPEN)
    assert env.status[t] == EXPIRED
    assert env.tasks.deadline[t] <= env.time < env.tasks.deadline[t] + env.config.decision_interval_s
    assert env.w_state[w] == IDLE and env.w_task[w] == -1
    assert not [e for e in env.stats.log if e.task == t]


def test_nobody_works_every_task_expires_at_td(cache_dir):
    env = make_env(cache_dir)

    def check(env, obs, *rest):
        expired = env.status == EXPIRED
        np.testing.assert_array_equal(expired, env.tasks.deadline <= env.time)

    episode(env, Idle(), seed=10, on_step=check)
    m = env.episode_metrics()
    assert m["revenue"] == 0.0 and m["completion_rate"] == 0.0 and m["travel_km"] == 0.0
    assert env.stats.expired == env.config.num_tasks and np.all(env.status == EXPIRED)
    assert env.time >= env.tasks.deadline.max()


# --- collaboration -------------------------------------------------------------------------------------------

def shared_option(env, obs):
    """Two deciders with a common option task."""
    options = {}
    for agent in obs:
        row = env._decider_row[agent]
        for slot in np.flatnonzero(env._option_mask[row]):
            options.setdefault(int(env._open[env._option_index[row, slot]]), []).append(int(env._deciders[row]))
    for t, workers in sorted(options.items()):
        if len(workers) >= 2:
            return workers[0], workers[1], t
    raise AssertionError("no shared option")


def test_two_workers_finish_faster_than_one_on_the_exact_work_curve(cache_dir):
    seed, c = 11, make_env(cache_dir).config
    rate = c.work_rate / 60.0  # units per second

    def play(both: bool):
        env = make_env(cache_dir)
        obs, _ = env.reset(seed=seed)
        w1, w2, t = shared_option(env, obs)
        a = {w: env.time + road(env, w, t) / c.speed_mps for w in (w1, w2)}
        first, second = sorted((w1, w2), key=a.get)
        q = rate * (a[second] - a[first]) + 2 * rate * 300.0  # 300 s of joint work after both are on site
        env.remaining[t] = q
        row1, row2 = env._decider_row[worker_id(w1)], env._decider_row[worker_id(w2)]
        actions = {agent: 0 for agent in obs}
        for w, row in [(w1, row1), (w2, row2)][:2 if both else 1]:
            slot = [s for s in np.flatnonzero(env._option_mask[row]) if env._open[env._option_index[row, s]] == t][0]
            actions[worker_id(w)] = int(slot) + 1
        obs, *_ = env.step(actions)
        run_idle_until(env, obs, lambda: env.status[t] != OPEN)
        (entry,) = [e for e in env.stats.log if e.task == t]
        return entry, a, first, second, w1, q

    together, a, first, second, _, q = play(both=True)
    assert sorted(together.workers) == sorted([first, second])
    assert together.finish == pytest.approx(a[second] + 300.0, abs=1e-6)
    work = dict(zip(together.workers, together.work))
    assert work[first] == pytest.approx(rate * (together.finish - a[first]), rel=1e-9)
    assert work[second] == pytest.approx(rate * (together.finish - a[second]), rel=1e-9)
    assert sum(together.work) == pytest.approx(q, rel=1e-9)

    alone, a_alone, _, _, w1, q_alone = play(both=False)
    assert alone.workers == [w1] and q_alone == pytest.approx(q)
    assert alone.finish == pytest.approx(a_alone[w1] + q / rate, abs=1e-6)
    assert together.finish < alone.finish - 1.0
    assert together.payment >= alone.payment


def test_worker_arriving_after_the_finish_is_not_logged_as_a_contributor(cache_dir):
    env = make_env(cache_dir, reward="split")
    obs, _ = env.reset(seed=11)
    w1, w2, t = shared_option(env, obs)
    actions = {agent: 0 for agent in obs}
    for w in (w1, w2):
        row = env._decider_row[worker_id(w)]
        slot = [s for s in np.flatnonzero(env._option_mask[row]) if env._open[env._option_index[row, s]] == t][0]
        actions[worker_id(w)] = int(slot) + 1
    obs, *_ = env.step(actions)
    # monkeypatch arrivals into one interval: w1 at +5 s, w2 at +20 s; the task needs 10 s of w1's work
    t0, rate = env.time, env.config.work_rate / 60.0
    env.w_state[[w1, w2]] = TRAVELLING
    env.w_arrive[w1], env.w_arrive[w2] = t0 + 5.0, t0 + 20.0
    env.remaining[t] = rate * 10.0
    obs, rewards, *_ = env.step({agent: 0 for agent in obs})
    (entry,) = [e for e in env.stats.log if e.task == t]
    assert entry.finish == pytest.approx(t0 + 15.0)
    assert entry.workers == [w1] and entry.work == [pytest.approx(rate * 10.0)]
    assert rewards[worker_id(w1)] == pytest.approx(entry.payment)
    assert rewards.get(worker_id(w2), 0.0) == 0.0
    assert env.w_state[w2] == IDLE and env.w_task[w2] == -1 and env.w_node[w2] == env.tasks.node[t]


# --- reward modes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("actor", [RandomPolicy(), Greedy()], ids=["random", "greedy"])
def test_split_rewards_sum_to_revenue_and_follow_work(cache_dir, actor):
    env = make_env(cache_dir, reward="split")
    total = {"reward": 0.0}
    per_worker = np.zeros(env.config.num_workers)

    def add(env, obs, actions, rewards, *rest):
        for agent, r in rewards.items():
            total["reward"] += r
            per_worker[int(agent.split("_")[1])] += r

    episode(env, actor, seed=12, on_step=add)
    assert env.stats.revenue > 0
    assert total["reward"] == pytest.approx(env.stats.revenue, rel=1e-9)
    expected = np.zeros_like(per_worker)
    for e in env.stats.log:
        for w, work in zip(e.workers, e.work):
            expected[w] += e.payment * work / sum(e.work)
    np.testing.assert_allclose(per_worker, expected, rtol=1e-9, atol=1e-9)
    assert np.all(per_worker[~env.has_acted] == 0)


def test_team_rewards_give_every_acted_agent_the_step_revenue(cache_dir):
    env = make_env(cache_dir, reward="team")
    paid_steps = {"n": 0}

    def check(env, obs, actions, rewards, terminateds, truncateds, infos, before):
        if actions is None:
            return
        step_revenue = env.stats.revenue - before["revenue"]
        for w in range(env.config.num_workers):
            r = rewards.get(worker_id(w), 0.0)
            assert r == pytest.approx(step_revenue if env.has_acted[w] else 0.0, abs=1e-9), (w, r, step_revenue)
        paid_steps["n"] += step_revenue > 0

    episode(env, Greedy(), seed=13, on_step=check)
    assert paid_steps["n"] > 0


def test_ir_rewards_are_the_remaining_work_time_of_chosen_tasks(cache_dir):
    env = make_env(cache_dir, reward="ir", work_rate=2.0)
    rewarded = {"n": 0}

    def check(env, obs, actions, rewards, terminateds, truncateds, infos, before):
        if actions is None:
            return
        expected = np.zeros(env.config.num_workers)
        for agent, a in actions.items():
            w = int(agent.split("_")[1])
            if a > 0:  # greedy only picks unmasked options
                t = before["open"][before["option_index"][before["decider_row"][agent], a - 1]]
                assert env.skills[w, env.tasks.skill[t]]
                expected[w] = before["remaining"][t] / env.config.work_rate
        got = np.array([rewards.get(worker_id(w), 0.0) for w in range(env.config.num_workers)])
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        rewarded["n"] += int((expected > 0).sum())

    episode(env, Greedy(), seed=14, on_step=check)
    assert rewarded["n"] > 0


# --- determinism ---------------------------------------------------------------------------------------------

def trace(env, seed):
    record = []
    episode(env, RandomPolicy(), seed=seed,
            on_step=lambda env, obs, actions, rewards, *rest: record.append(
                (sorted(obs), np.stack(list(obs.values())) if obs else None, sorted(rewards.items()))))
    return record, env.episode_metrics()


def test_same_seed_same_episode_different_seed_differs(cache_dir):
    a, metrics_a = trace(make_env(cache_dir), 15)
    b, metrics_b = trace(make_env(cache_dir), 15)
    assert metrics_a == metrics_b
    assert len(a) == len(b)
    for (keys_a, obs_a, rew_a), (keys_b, obs_b, rew_b) in zip(a, b):
        assert keys_a == keys_b and rew_a == rew_b
        if obs_a is not None:
            np.testing.assert_array_equal(obs_a, obs_b)
    c, metrics_c = trace(make_env(cache_dir), 16)
    assert metrics_c != metrics_a
    assert c[0][0] != a[0][0] or not np.array_equal(c[0][1], a[0][1])


# --- Greedy against random -----------------------------------------------------------------------------------

def test_greedy_beats_random_on_revenue(cache_dir):
    # a sparser crowd in a wider city (400 m blocks), so choosing well matters
    env = make_env(cache_dir, num_workers=30, num_tasks=60, range_m=5000.0, num_optional_tasks=8,
                   city=dict(rows=12, cols=12, spacing_m=400.0))
    seeds = [0, 1, 2, 3]
    greedy, greedy_log = evaluate(env, Greedy(), seeds)
    random, _ = evaluate(env, RandomPolicy(), seeds)
    figures = (f"greedy revenue {greedy.revenue.mean():.1f} completion {greedy.completion_rate.mean():.2f}; "
               f"random revenue {random.revenue.mean():.1f} completion {random.completion_rate.mean():.2f}; "
               f"random decisions {random.decisions.sum():.0f}, invalid {random.invalid_actions.sum():.0f}")
    assert greedy.revenue.mean() > 1.1 * random.revenue.mean(), figures
    assert (greedy.revenue.to_numpy() > random.revenue.to_numpy()).all(), figures
    assert greedy.completion_rate.mean() > random.completion_rate.mean(), figures
    assert random.invalid_actions.sum() == 0 and greedy.invalid_actions.sum() == 0, figures
    assert random.decisions.sum() > 100, figures
    assert set(greedy_log.columns) >= {"task", "workers", "start", "finish", "payment", "seed"}
    assert greedy_log.payment.sum() == pytest.approx(greedy.revenue.sum())


# --- config validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, field, words", [
    (dict(num_workers=0), "world.num_workers", "no workers"),
    (dict(speed_mps=0.0), "world.speed_mps", "speed"),
    (dict(speed_mps=-3.0), "world.speed_mps", "speed"),
    (dict(reward="spilt"), "world.reward", "did you mean 'split'"),
    (dict(reward="teams"), "world.reward", "did you mean 'team'"),
    (dict(num_tasks=301), "world.num_tasks", "only 300"),
    (dict(num_worker=5), "world.num_worker", "did you mean 'num_workers'"),
    (dict(rules=dict(deadline_minutes=-1.0)), "world.rules.deadline_minutes", "t_d < t_e"),
])
def test_bad_world_config_names_the_field(cache_dir, override, field, words):
    with pytest.raises(InputError) as error:
        make_env(cache_dir, **override)
    assert error.value.where == field
    assert words in str(error.value)


@pytest.mark.parametrize("radius, window", [(0.0, 0.0), (800.0, 0.0), (1200.0, 300.0)])
def test_near_revenue_counts_completions_in_the_credit_radius_and_window(tmp_path, radius, window):
    """prev_near_revenue (CAFE's VAE target) is the payment of the tasks completed after a decision, within
    credit_radius_m of where it was made (0: range_m) and credit_window_s after it (0: no limit), until the
    worker's next observation: recomputed here from the public completion log."""
    env = CSCEnv({"world": {**WORLD, "credit_radius_m": radius, "credit_window_s": window},
                  "cache_dir": str(tmp_path), "credit_facts": True})
    policy = RandomPolicy()
    policy.reset(3)
    obs, _ = env.reset(seed=3)
    pending, checked, done = {}, 0, False
    radius, window = radius or WORLD["range_m"], window or np.inf
    while not done:
        xy = env.worker_xy()
        for agent in obs:
            pending[agent] = (env.time, xy[int(agent.split("_")[1])].copy())
        obs, _, terminated, truncated, infos = env.step(policy.act(env.decision_view(), obs))
        done = terminated["__all__"] or truncated["__all__"]
        for agent, info in infos.items():
            if agent not in pending:
                continue
            start, where = pending.pop(agent)
            expected = sum(entry["payment"] for entry in env.episode_log()
                           if start < entry["finish"] <= min(start + window, env.time)
                           and np.linalg.norm(env.task_xy[entry["task"]] - where) <= radius)
            assert info["prev_near_revenue"] == pytest.approx(expected, abs=1e-6)
            checked += expected > 0
    assert checked > 5


@pytest.mark.parametrize("field, value", [("credit_radius_m", -1.0), ("credit_window_s", -5.0)])
def test_negative_credit_radius_or_window_is_refused(tmp_path, field, value):
    with pytest.raises(InputError, match=field):
        make_env(tmp_path, **{field: value})
