"""The public decision view of the CSC world (envs.csc_view): read-only snapshot, consistent with the
observations; heuristics act through it only (never the env); their behaviour on hand-built views; trained
modules act through RLlib's forward_inference and action distribution, seeded and within the mask."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

import policies.heuristics
import policies.pau
from envs.csc import IDLE, WORKING, CSCEnv
from envs.csc_config import CSCConfig
from envs.csc_view import DecisionView
from policies.attention import AttentionActorCritic
from policies.heuristics import CoordinatedGreedy, Greedy, RandomPolicy
from policies.pau import PAU
from rl_cs.evaluation import ModuleActor, run_episode

WORLD = dict(num_workers=30, num_tasks=40, range_m=2000.0, num_optional_tasks=4, num_near_tasks=4,
             num_near_workers=4, num_idle_workers=4, city=dict(rows=12, cols=12),
             synthetic_tasks=dict(num_tasks=300, num_pois=200))


@pytest.fixture
def env(cache_dir) -> CSCEnv:
    return CSCEnv({"world": WORLD, "cache_dir": str(cache_dir)})


def arrays(view: DecisionView) -> dict[str, np.ndarray]:
    return {f.name: getattr(view, f.name) for f in dataclasses.fields(view)
            if isinstance(getattr(view, f.name), np.ndarray)}


# --------------------------------------------------------------------------- the view of a real world
def test_view_is_read_only_and_leaves_the_env_writable_and_stepping(env):
    obs, _ = env.reset(seed=3)
    view = env.decision_view()
    assert set(arrays(view)) == {"expected", "deadline", "rho_max", "remaining", "worker_state", "worker_task",
                                 "worker_arrival", "deciders", "option_task", "option_mask", "option_road"}
    for name, array in arrays(view).items():
        assert not array.flags.writeable, name
        with pytest.raises(ValueError):
            array[...] = array  # any write, even of the same values
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.time = 0.0
    for array in (env.remaining, env.w_state, env.w_task, env.w_arrive, env.tasks.expected, env.tasks.deadline,
                  env.tasks.rho_max):
        assert array.flags.writeable
        assert not any(np.shares_memory(array, mine) for mine in arrays(view).values())
    remaining, time = view.remaining.copy(), view.time
    steps = 0
    while steps < 20:  # the env still steps (and mutates its own arrays) after views were taken
        obs, _, terminated, truncated, _ = env.step(Greedy().act(env.decision_view(), obs))
        steps += 1
        if terminated["__all__"] or truncated["__all__"]:
            break
    assert env.time > time and np.array_equal(view.remaining, remaining) and view.time == time, "a snapshot"


def test_view_matches_the_observation_and_the_world(env):
    obs, _ = env.reset(seed=4)
    for _ in range(5):
        view = env.decision_view()
        assert view.agents == tuple(obs) and len(view.deciders) == len(obs)
        assert [f"worker_{w}" for w in view.deciders] == list(view.agents)
        assert np.array_equal(view.rows(reversed(list(obs))), np.arange(len(obs))[::-1])
        x = env.config.num_optional_tasks
        assert view.option_task.shape == view.option_mask.shape == view.option_road.shape == (len(obs), x)
        for row, agent in enumerate(view.agents):
            assert np.array_equal(obs[agent][-view.num_actions:], np.r_[1.0, view.option_mask[row]])
        assert (view.option_task[~view.option_mask] == -1).all()
        workers, slots = np.nonzero(view.option_mask)
        tasks = view.option_task[workers, slots]
        deciders = view.deciders[workers]
        assert (env.skills[deciders, env.tasks.skill[tasks]]).all()
        assert (view.worker_state[deciders] == IDLE).all()
        road = env.scenario.city.distance.between(env.w_node[deciders], env.tasks.node[tasks])
        assert np.allclose(np.diagonal(road), view.option_road[workers, slots])
        assert np.array_equal(view.remaining, env.remaining) and view.time == env.time
        obs, *_ = env.step(Greedy().act(view, obs))


# --------------------------------------------------------------------------- heuristics never see the env
@pytest.mark.parametrize("module", [policies.heuristics, policies.pau])
def test_heuristics_read_no_env_and_no_private_attribute_of_another_object(module):
    tree = ast.parse(Path(module.__file__).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "env" not in names and "CSCEnv" not in names
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            assert isinstance(node.value, ast.Name) and node.value.id == "self", ast.unparse(node)


@pytest.mark.parametrize("cls", [Greedy, CoordinatedGreedy, RandomPolicy, PAU])
def test_act_takes_the_view_and_the_observations(cls):
    assert list(inspect.signature(cls.act).parameters) == ["self", "view", "obs"]


# --------------------------------------------------------------------------- behaviour on hand-built views
def view_of(*, remaining, options, roads, masks=None, working=(), expected=600.0, deadline=1200.0,
            time=0.0) -> DecisionView:
    """Deciders 0..D-1 with option tasks ``options`` (rows) at ``roads`` metres; workers D.. are WORKING on
    ``working`` (task per worker, arrived at ``time``). Speed 10 m/s, one work unit per worker-minute."""
    options = np.array(options)
    num_tasks, deciders = len(remaining), len(options)
    workers = deciders + len(working)
    masks = options >= 0 if masks is None else np.array(masks)
    config = CSCConfig(num_workers=workers, num_tasks=num_tasks, num_optional_tasks=options.shape[1])
    state = np.array([IDLE] * deciders + [WORKING] * len(working), dtype=np.int8)
    task = np.array([-1] * deciders + list(working), dtype=np.int64)
    return DecisionView(
        time=time, config=config, expected=np.full(num_tasks, expected), deadline=np.full(num_tasks, deadline),
        rho_max=np.full(num_tasks, 10.0), zeta=0.5 / 600.0, remaining=np.array(remaining, dtype=float),
        worker_state=state, worker_task=task, worker_arrival=np.full(workers, time),
        deciders=np.arange(deciders), agents=tuple(f"worker_{w}" for w in range(deciders)),
        option_task=np.where(masks, options, -1), option_mask=masks, option_road=np.array(roads, dtype=float))


def act(actor, view):
    actor.reset(0)
    return actor.act(view, {agent: None for agent in view.agents})


def test_greedy_coord_takes_the_nearest_uncovered_slot_nearest_decider_first():
    # worker 2 works task 0 (10 min of capacity by t_e, 1 needed): covered. worker_1 is nearer (50 m), so it is
    # served first and takes task 1; then worker_0 finds task 0 and task 1 covered (9.9 >= 5) and waits.
    covered = view_of(remaining=[1.0, 5.0, 5.0], options=[[0, 1], [1, 2]], roads=[[100, 500], [50, 300]],
                      working=[0])
    assert act(CoordinatedGreedy(), covered) == {"worker_1": 1, "worker_0": 0}
    # task 1 needs 12 minutes: worker_1's 9.9 do not cover it, so worker_0 joins it (its slot 2).
    assert act(CoordinatedGreedy(), dataclasses.replace(covered, remaining=np.array([1.0, 12.0, 5.0]))) == \
        {"worker_1": 1, "worker_0": 2}
    # a masked slot is never taken, even when it is the nearest uncovered one.
    masked = view_of(remaining=[5.0, 5.0], options=[[0, 1]], roads=[[10, 20]], masks=[[False, True]])
    assert act(CoordinatedGreedy(), masked) == {"worker_0": 2}


def test_pau_founds_a_coalition_that_no_worker_finishes_alone():
    # 25 worker-minutes by t_d = 1200 s: alone a worker finishes at 1510 s (pays 0), together at 760 s.
    view = view_of(remaining=[25.0], options=[[0], [0]], roads=[[100], [100]])
    assert act(PAU(), view) == {"worker_0": 1, "worker_1": 1}
    # already finished by t_e by the worker on site: joining only costs travel, so both wait.
    assert act(PAU(), view_of(remaining=[1.0], options=[[0], [0]], roads=[[100], [100]], working=[0])) == \
        {"worker_0": 0, "worker_1": 0}


def test_random_takes_only_allowed_actions_and_repeats_with_its_seed(env):
    obs, _ = env.reset(seed=5)
    view = env.decision_view()
    first, second = RandomPolicy(), RandomPolicy()
    first.reset(7), second.reset(7)
    for _ in range(20):
        a, b = first.act(view, obs), second.act(view, obs)
        assert a == b and set(a) == set(obs)
        assert all(obs[agent][-view.num_actions + action] == 1.0 for agent, action in a.items())


# --------------------------------------------------------------------------- trained modules
@pytest.fixture
def module(env):
    torch.manual_seed(0)
    return AttentionActorCritic(observation_space=env.observation_spaces["worker_0"],
                                action_space=env.action_spaces["worker_0"], inference_only=True,
                                model_config={"layout": env.layout.to_dict(), "embed_dim": 16, "num_heads": 2,
                                              "hidden_dim": 32})


def test_module_actor_uses_forward_inference_within_the_mask(env, module):
    obs, _ = env.reset(seed=6)
    view = env.decision_view()
    batch = torch.from_numpy(np.stack(list(obs.values())))
    logits = module.forward_inference({"obs": batch})["action_dist_inputs"]
    greedy = ModuleActor(module, deterministic=True)
    greedy.reset(0)
    assert list(greedy.act(view, obs).values()) == logits.argmax(dim=-1).tolist()
    sampler = ModuleActor(module)
    for _ in range(10):
        for agent, action in sampler.act(view, obs).items():
            assert obs[agent][-view.num_actions + action] == 1.0, (agent, action)


def test_module_actor_sampling_repeats_per_episode_seed(module, cache_dir):
    env = CSCEnv({"world": {**WORLD, "num_tasks": 15}, "cache_dir": str(cache_dir)})
    actor = ModuleActor(module)
    first = run_episode(env, actor, seed=8)
    again = run_episode(env, actor, seed=8)
    assert first == again and first["invalid_actions"] == 0 and first["decisions"] > 0
