"""The DASC baselines (policies/dasc_baselines.py) through the one evaluation path, what each one promises
(nearest worker, Nash equilibrium, threshold, two stages), and the `rl-cs train|evaluate|report|bench
--world dasc` commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from envs.dasc import PLANNER_ASSIGNMENT, DASCEnv, env_config
from envs.dasc_config import DASCConfig
from envs.dasc_matching import kuhn_munkres
from policies.dasc_baselines import Game, Greedy, Odta, OdtaTwoStage, arrival_order, odta_utility
from rl_cs import registry
from rl_cs.cli import main
from rl_cs.evaluation import evaluate

BASELINES = [m.name for m in registry.methods_for("dasc") if not m.learned]
SMALL = DASCConfig(num_workers=30, num_tasks=8)


def make_env(**changes) -> DASCEnv:
    return DASCEnv(env_config(DASCConfig(**{**vars(SMALL), **changes})))


def views(env: DASCEnv, seed: int, steps: int = 400):
    """Decision views of one episode in which every decider is recommended (the world's KM)."""
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        view = env.decision_view()
        if len(view.agents):
            yield view, obs
        obs, _, terminated, truncated, _ = env.step({agent: 1 for agent in obs})
        if terminated["__all__"] or truncated["__all__"]:
            return


def test_the_baselines_are_registered():
    assert set(BASELINES) == {"greedy-dasc", "km", "game", "odta", "odta-2stage"}


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_runs_through_the_evaluation_path(name):
    env = make_env()
    table, log = evaluate(env, registry.get_method(name).make_heuristic(), [0, 1])
    assert len(table) == 2 and len(log) > 0
    for metric in registry.get_world("dasc").metrics:
        assert table[metric].map(math.isfinite).all(), metric
    assert (table["invalid_actions"] == 0).all(), "a planner submitted a pair the world refused"
    assert (table["revenue"] <= table["max_payable"]).all()
    if name != "odta":  # ODTA's random threshold may refuse nearly every pair in an episode (k large): by design
        assert (table["revenue"] > 0).all() and (table["completion_rate"] > 0).all()
    if name != "km":  # planners recommend exactly what they assign: no failed recommendation
        assert (table["failed_recommendations"] == 0).all()


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_are_deterministic_given_the_seed(name):
    method = registry.get_method(name)
    first, _ = evaluate(make_env(), method.make_heuristic(), [4])
    second, _ = evaluate(make_env(), method.make_heuristic(), [4])
    pd.testing.assert_frame_equal(first, second)


def test_greedy_gives_each_subtask_in_arrival_order_its_nearest_free_feasible_worker():
    env = make_env()
    checked = 0
    for view, obs in views(env, 2):
        actions = Greedy().act(view, obs)
        assignment = actions[PLANNER_ASSIGNMENT]
        taken = set()
        for row in arrival_order(view).tolist():
            free = view.feasible[row] & ~np.isin(view.workers, list(taken))
            agent = view.agents[row]
            if not free.any():
                assert agent not in assignment and actions[agent] == 0
                continue
            nearest = view.workers[np.argmin(np.where(free, view.road[row], np.inf))]
            assert assignment[agent] == nearest and actions[agent] == 1
            taken.add(int(nearest))
            checked += 1
    assert checked > 20


def _best_response_gain(view, value, choice, col):
    """The strict gain a worker could still make by changing its choice (Game's marginal-contribution utility)."""
    rows = value.shape[0]
    gains = np.zeros(rows)
    for row in range(rows):
        others = [value[row, w] for w in np.flatnonzero(choice == row) if w != col]
        best_other = max(others) if others else -np.inf
        gains[row] = max(0.0, value[row, col] - max(0.0, best_other)) if np.isfinite(value[row, col]) else 0.0
    current = choice[col]
    return gains.max() - (gains[current] if current >= 0 else 0.0)


def test_game_ends_in_a_nash_equilibrium_of_its_potential_game():
    env = make_env(num_workers=12, num_tasks=8)
    checked = 0
    for view, obs in views(env, 1):
        game = Game()
        actions = game.act(view, obs)
        value = np.where(view.feasible, view.pair_value(), -np.inf)
        value = np.where(value > 0, value, -np.inf)
        choice = np.full(len(view.workers), -1)
        for agent, worker in actions[PLANNER_ASSIGNMENT].items():
            choice[int(np.flatnonzero(view.workers == worker)[0])] = view.agents.index(agent)
            assert view.feasible[view.agents.index(agent), int(np.flatnonzero(view.workers == worker)[0])]
        # the submitted profile (each chosen subtask's best holder) leaves no worker a strict improvement
        for col in range(len(view.workers)):
            assert _best_response_gain(view, value, choice, col) <= 1e-9
        assert game.rounds < game.settings.game_max_rounds
        checked += 1
    assert checked > 5


def test_odta_matches_only_above_its_threshold():
    env = make_env()
    for seed in range(6):
        odta = Odta()
        odta.reset(seed)
        for view, obs in views(env, seed):
            actions = odta.act(view, obs)
            score = odta_utility(view)
            for agent, worker in actions[PLANNER_ASSIGNMENT].items():
                row, col = view.agents.index(agent), int(np.flatnonzero(view.workers == worker)[0])
                assert score[row, col] >= odta.bound and view.feasible[row, col]
        theta = math.ceil(math.log(view.payment_bound + 1.0))
        assert 0 <= odta.k < theta and odta.bound == (0.0 if odta.k == 0 else math.exp(odta.k))


def test_odta_two_stage_switches_from_greedy_to_the_hungarian_matching():
    env = make_env()
    planner = OdtaTwoStage()
    planner.reset(0)
    stages = set()
    for view, obs in views(env, 0):
        actions = planner.act(view, obs)
        if len(planner.seen) >= math.floor(0.5 * view.total_subtasks):
            stages.add("hungarian")
            score = odta_utility(view)
            rows, cols = kuhn_munkres(score, view.feasible & (score > 0), max_cardinality=False)
            assert actions[PLANNER_ASSIGNMENT] == {view.agents[r]: int(view.workers[c]) for r, c in zip(rows, cols)}
        else:
            stages.add("greedy")
    assert stages == {"greedy", "hungarian"}


# ------------------------------------------------------------------------------------------------ commands
def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


SMALL_SETS = ["--set", "world.num_workers=30", "--set", "world.num_tasks=6"]


def test_train_all_writes_runs_and_report_makes_the_table(tmp_path, capsys):
    assert cli("train", "all", "--world", "dasc", "--results-dir", str(tmp_path), "--name", "base",
               "--seeds", "2", *SMALL_SETS) == 0
    folder = tmp_path / "base"
    runs = pd.read_csv(folder / "runs.csv")
    assert sorted(runs["method"].unique()) == sorted(BASELINES) and sorted(runs["run"].unique()) == [0, 1]
    metadata = json.loads((folder / "experiment.json").read_text())
    assert metadata["world"] == "dasc" and metadata["config"]["experiment"]["seeds"] == 2
    assert len(pd.read_parquet(folder / "assignments.parquet")) > 0
    capsys.readouterr()
    assert cli("report", str(folder)) == 0
    table = (folder / "dasc_table.md").read_text()
    for name in BASELINES:
        assert f"| {name} | 2 |" in table
    # a second run under the same name is refused, the first one kept
    assert cli("train", "km", "--world", "dasc", "--results-dir", str(tmp_path), "--name", "base", *SMALL_SETS) == 2
    assert "already exists" in capsys.readouterr().err
    assert pd.read_csv(folder / "runs.csv").equals(runs)


def test_evaluate_prints_metrics_and_writes_the_log(tmp_path, capsys):
    log = tmp_path / "game.parquet"
    assert cli("evaluate", "game", "--world", "dasc", "--episodes", "2", "--log", str(log), *SMALL_SETS) == 0
    out = capsys.readouterr().out
    assert "revenue" in out and "completion_rate" in out
    frame = pd.read_parquet(log)
    assert set(frame["seed"]) == {12345, 12346} and {"task", "worker", "finish"} <= set(frame.columns)


def test_bench_reports_steps_and_kuhn_munkres_time(capsys):
    assert cli("bench", "--world", "dasc", "--workers", "30", "--tasks", "6", "--seconds", "0.05") == 0
    out = capsys.readouterr().out
    assert "KM ms/matching step" in out and "recommend all" in out


def test_rmo_and_rec_are_the_learned_methods_of_the_world():
    learned = {m.name: m for m in registry.methods_for("dasc") if m.learned}
    assert set(learned) == {"rmo", "rec"}
    assert learned["rec"].build == learned["rmo"].build and learned["rec"].build_options == {"matching": "greedy"}


def test_train_all_with_a_grid_writes_one_row_set_per_point(tmp_path):
    assert cli("train", "km", "--world", "dasc", "--results-dir", str(tmp_path), "--name", "grid", "--seeds", "1",
               *SMALL_SETS, "--set", "grid={world.num_workers: [20, 30]}") == 0
    runs = pd.read_csv(tmp_path / "grid" / "runs.csv")
    assert sorted(runs["num_workers"].unique()) == [20, 30] and set(runs["method"]) == {"km"}


@pytest.mark.parametrize("argv, message", [
    (["train", "greedy", "--world", "dasc"], "does not run on world 'dasc'"),
    (["train", "km", "--world", "dasc", "--set", "experiment.methods=[km, pau]"], "experiment.methods"),
    (["train", "km", "--world", "dasc", "--resume"], "--resume: does not apply to world 'dasc'"),
    (["evaluate", "nope", "--world", "dasc"], "unknown method 'nope'"),
    (["train", "km", "--world", "dasc", "--config", "tune_configs/csc_quick.yaml"], "a config for world 'csc'"),
])
def test_bad_commands_exit_2_before_anything_is_written(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(registry.REPOSITORY)
    assert cli(*argv, "--results-dir", str(tmp_path)) == 2 if argv[0] == "train" else cli(*argv) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
