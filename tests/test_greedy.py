"""The paper's Greedy (``greedy``: uncoordinated, nearest skill-matching task) against our coordinated variant
(``greedy-coord``); the world's maximum payable (episode_metrics()["max_payable"]); the report's columns of
revenue as a share of it and as a ratio to Greedy; the paper-axis configs name both greedies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.csc import IDLE, WORKING, CSCEnv
from envs.csc_config import CSCConfig
from envs.csc_view import DecisionView
from policies.heuristics import CoordinatedGreedy, Greedy
from rl_cs import registry
from rl_cs.evaluation import evaluate
from rl_cs.experiment.config import load_experiment
from rl_cs.report.csc import report

REPO = Path(__file__).resolve().parents[1]
WORLD = dict(num_workers=20, num_tasks=30, range_m=2000.0, num_optional_tasks=4, num_near_tasks=4,
             num_near_workers=4, num_idle_workers=4, city=dict(rows=12, cols=12),
             synthetic_tasks=dict(num_tasks=300, num_pois=200))


def view_of(*, remaining, options, roads, masks=None, working=()) -> DecisionView:
    """Deciders 0..D-1 with option tasks ``options`` (rows) at ``roads`` metres; workers D.. WORKING on the
    tasks ``working``, on site now. 10 m/s, one work unit per worker-minute, t_e = 600 s, t_d = 1200 s."""
    options = np.array(options)
    num_tasks, deciders = len(remaining), len(options)
    workers = deciders + len(working)
    masks = options >= 0 if masks is None else np.array(masks)
    config = CSCConfig(num_workers=workers, num_tasks=num_tasks, num_optional_tasks=options.shape[1])
    return DecisionView(
        time=0.0, config=config, expected=np.full(num_tasks, 600.0), deadline=np.full(num_tasks, 1200.0),
        rho_max=np.full(num_tasks, 10.0), zeta=0.5 / 600.0, remaining=np.array(remaining, dtype=float),
        worker_state=np.array([IDLE] * deciders + [WORKING] * len(working), dtype=np.int8),
        worker_task=np.array([-1] * deciders + list(working), dtype=np.int64), worker_arrival=np.zeros(workers),
        deciders=np.arange(deciders), agents=tuple(f"worker_{w}" for w in range(deciders)),
        option_task=np.where(masks, options, -1), option_mask=masks, option_road=np.array(roads, dtype=float))


def act(actor, view, agents=None):
    actor.reset(0)
    return actor.act(view, {agent: None for agent in (view.agents if agents is None else agents)})


# --------------------------------------------------------------------------- the paper's Greedy
def test_greedy_is_uncoordinated_two_workers_nearest_the_same_task_both_go():
    # task 0 is the nearest option of both deciders, needs 1 worker-minute and a worker is already on it:
    # the paper's Greedy sends both anyway; greedy-coord sees it covered and sends neither (task 1 instead).
    view = view_of(remaining=[1.0, 5.0], options=[[0, 1], [0, 1]], roads=[[100, 900], [200, 800]], working=[0])
    assert act(Greedy(), view) == {"worker_0": 1, "worker_1": 1}
    coordinated = act(CoordinatedGreedy(), view)
    assert list(coordinated.values()).count(1) == 0 and coordinated == {"worker_0": 2, "worker_1": 0}


def test_greedy_honours_the_mask_and_takes_the_nearest_allowed_slot():
    # the nearest slot is masked: the nearest allowed one (slot 3, 150 m, not slot 2 at 400 m) is taken, even
    # if the slots were not sorted by distance; a row with nothing allowed waits (tau_0).
    view = view_of(remaining=[5.0, 5.0, 5.0], options=[[0, 1, 2], [0, 1, 2]],
                   roads=[[10, 400, 150], [10, 20, 30]], masks=[[False, True, True], [False, False, False]])
    assert act(Greedy(), view) == {"worker_0": 3, "worker_1": 0}
    # only the agents asked about are answered, in their order
    assert act(Greedy(), view, agents=["worker_1", "worker_0"]) == {"worker_1": 0, "worker_0": 3}
    assert act(Greedy(), view, agents=[]) == {}


def test_greedy_on_the_world_always_takes_the_nearest_allowed_option(cache_dir):
    env = CSCEnv({"world": WORLD, "cache_dir": str(cache_dir)})
    obs, _ = env.reset(seed=5)
    steps = 0
    while True:
        view = env.decision_view()
        actions = Greedy().act(view, obs)
        for row, agent in enumerate(view.agents):
            allowed = np.flatnonzero(obs[agent][-view.num_actions:] > 0.5)
            assert actions[agent] in allowed and actions[agent] != 0, "every decider has an option: it goes"
            assert actions[agent] == 1 + np.argmin(np.where(view.option_mask[row], view.option_road[row], np.inf))
        obs, _, terminated, truncated, _ = env.step(actions)
        steps += 1
        if terminated["__all__"] or truncated["__all__"]:
            break
    metrics = env.episode_metrics()
    assert steps > 5 and metrics["invalid_actions"] == 0 and metrics["revenue"] > 0


def test_both_greedies_are_registered_under_their_names():
    assert isinstance(registry.get_method("greedy", "csc").make_heuristic(), Greedy)
    coordinated = registry.get_method("greedy-coord", "csc").make_heuristic()
    assert isinstance(coordinated, CoordinatedGreedy) and not isinstance(coordinated, Greedy)
    assert (Greedy.name, CoordinatedGreedy.name) == ("greedy", "greedy-coord")
    assert "ours" in CoordinatedGreedy.__doc__ and "paper" in Greedy.__doc__


# --------------------------------------------------------------------------- the maximum payable
def test_max_payable_is_the_sum_of_the_window_rho_max_and_bounds_revenue(cache_dir):
    env = CSCEnv({"world": WORLD, "cache_dir": str(cache_dir)})
    for seed in (0, 1):
        env.reset(seed=seed)
        window = env.tasks.rho_max.copy()
        assert env.episode_metrics()["max_payable"] == pytest.approx(window.sum())
    metrics, _ = evaluate(env, Greedy(), [0, 1])
    assert (metrics["max_payable"] > 0).all() and (metrics["revenue"] <= metrics["max_payable"] + 1e-9).all()
    assert metrics["max_payable"].iloc[0] != metrics["max_payable"].iloc[1], "another seed, another window"


# --------------------------------------------------------------------------- report columns
def write_experiment(root: Path, method: str, trials: dict) -> None:
    """A `train all` experiment folder: trials = {name: (num_tasks, seed, training, heldout or None)}."""
    folder = root / method
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps({"world": "csc", "method": method, "config": {
        "experiment": {"methods": ["greedy", "ippo"]}, "grid": {"world.num_tasks": [10, 20]}}}))
    for name, (tasks, seed, training, heldout) in trials.items():
        trial = folder / name
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps({"seed": seed, "env_config": {
            "world": {**WORLD, "num_tasks": tasks}, "data_dir": None, "cache_dir": str(root / "cache")}}))
        (trial / "result.json").write_text(json.dumps({"training_iteration": 1, "env_runners": training}) + "\n")
        if heldout is not None:
            (trial / "heldout.json").write_text(json.dumps(heldout))


def test_report_gives_revenue_as_share_of_max_payable_and_ratio_to_greedy(tmp_path):
    results = tmp_path / "run"
    run = {"completion_rate": 0.5}
    held = {"completion_rate": 0.5, "episodes": 2, "seeds": [12345, 12346]}
    write_experiment(results, "greedy", {
        "g0": (10, 0, {**run, "revenue": 1.0, "max_payable": 9.0}, {**held, "revenue": 50.0, "max_payable": 100.0}),
        "g1": (10, 1, {**run, "revenue": 1.0, "max_payable": 9.0}, {**held, "revenue": 50.0, "max_payable": 100.0}),
        "g2": (20, 0, {**run, "revenue": 100.0, "max_payable": 200.0}, None),
        "g3": (20, 1, {**run, "revenue": 120.0, "max_payable": 200.0}, None)})
    write_experiment(results, "ippo", {
        "i0": (10, 0, {**run, "revenue": 1.0, "max_payable": 9.0}, {**held, "revenue": 60.0, "max_payable": 100.0}),
        "i1": (10, 1, {**run, "revenue": 1.0, "max_payable": 9.0}, {**held, "revenue": 70.0, "max_payable": 100.0}),
        "i2": (20, 0, {**run, "revenue": 165.0, "max_payable": 200.0}, None),
        "i3": (20, 1, {**run, "revenue": 165.0, "max_payable": 200.0}, None)})
    assert report(results) == 0
    table = pd.read_csv(results / "csc_table.csv").set_index(["metric", "method", "column"])
    assert {"revenue", "completion_rate", "revenue_share", "revenue_vs_greedy"} <= set(table.index.levels[0])
    share, ratio = table.loc["revenue_share"], table.loc["revenue_vs_greedy"]
    assert share.loc[("greedy", "N_tau = 10"), "mean"] == pytest.approx(0.5)
    assert share.loc[("ippo", "N_tau = 10"), "mean"] == pytest.approx(0.65)
    assert share.loc[("ippo", "N_tau = 10"), "std"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert share.loc[("ippo", "N_tau = 20"), "mean"] == pytest.approx(165.0 / 200.0)  # training source
    assert ratio.loc[("greedy", "N_tau = 10"), "mean"] == pytest.approx(1.0)
    assert ratio.loc[("ippo", "N_tau = 10"), "mean"] == pytest.approx(1.3)
    assert ratio.loc[("ippo", "N_tau = 20"), "mean"] == pytest.approx(1.5)
    markdown = (results / "csc_table.md").read_text()
    assert "## Revenue as a share of the maximum payable (%)" in markdown
    assert "| Greedy | 50.0 ± 0.0 | 55.0 ± 7.1 |" in markdown and "| IPPO | 65.0 ± 7.1 | 82.5 ± 0.0 |" in markdown
    assert "## Revenue / Greedy's" in markdown and "| IPPO | 1.300 ± 0.141 | 1.500 ± 0.000 |" in markdown


def test_report_recomputes_max_payable_for_heldout_files_without_it(tmp_path, cache_dir):
    results = tmp_path / "old"
    seeds = [12345, 12346]
    held = {"revenue": 40.0, "completion_rate": 0.5, "episodes": 2, "seeds": seeds}  # written before max_payable
    write_experiment(results, "greedy", {"g0": (10, 0, {"revenue": 1.0, "completion_rate": 0.5}, held)})
    assert report(results) == 0
    env = CSCEnv({"world": {**WORLD, "num_tasks": 10}, "cache_dir": str(cache_dir)})
    payable = []
    for seed in seeds:
        env.reset(seed=seed)
        payable.append(env.tasks.rho_max.sum())
    share = pd.read_csv(results / "csc_table.csv").query("metric == 'revenue_share'")["mean"].item()
    assert share == pytest.approx(40.0 / np.mean(payable))


# --------------------------------------------------------------------------- the paper-axis configs
def test_paper_axis_configs_name_both_greedies_and_every_method():
    every = ["greedy", "greedy-coord", "pau", "ippo", "ir", "ices", "relara", "ca-nofe", "cafe"]
    for name, axis in (("cafe_table1", "world.num_tasks"), ("cafe_table2", "world.num_workers")):
        config = load_experiment(REPO / f"tune_configs/{name}.yaml")
        assert config.experiment.methods == every and config.grid == {axis: list(range(50, 351, 50))}
    scarce = load_experiment(REPO / "tune_configs/cafe_scarce.yaml")
    assert scarce.experiment.methods == every and scarce.experiment.seeds == 3
    assert all(registry.get_method(name, "csc") for name in every)
