"""PAU (policies.pau) and the CSC report (rl_cs.report.csc): the potential-game core on hand-made cases, PAU
on the world (masked actions only, better than Random, seeded), the experiment YAMLs, and `rl-cs train all`
on a tiny grid followed by `rl-cs report` (table equal to the trials' mean ± std, a PNG, bad folders)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.csc import CSCEnv, env_config
from envs.csc_config import CSCConfig
from policies.heuristics import RandomPolicy
from policies.pau import NONE, PAU, CoalitionGame, finish_time
from rl_cs.atomic import write_atomically
from rl_cs.cli import main, run
from rl_cs.data.city import SyntheticCityConfig
from rl_cs.evaluation import evaluate
from rl_cs.experiment.config import load_experiment
from rl_cs.registry import methods_for

REPO = Path(__file__).resolve().parents[1]
TINY_GRID = REPO / "tests" / "configs" / "cafe_grid_tiny.yaml"
CSC_CONFIGS = sorted([*(REPO / "tune_configs").glob("csc_*.yaml"), *(REPO / "tune_configs").glob("cafe_*.yaml")])
ZETA = 0.5 / 1000.0


# ---------------------------------------------------------------------- the potential-game core
def game(options) -> CoalitionGame:
    """Two tasks: t0 (600 worker-s, pays 10, t_e 1000, t_d 2000) one worker finishes in time; t1 (1200
    worker-s, pays 20, t_e 600, t_d 1000) needs two workers starting at 0 (alone it ends at 1200 > t_d)."""
    return CoalitionGame([600.0, 1200.0], [10.0, 20.0], [1000.0, 600.0], [2000.0, 1000.0], ZETA, [[], []], options)


MIXED = [[(0, 0.0, 0.1), (1, 0.0, 0.1)], [(1, 0.0, 0.2), (0, 100.0, 0.2)], [(0, 50.0, 0.05)]]
"""Three players: p0 may take t0 or t1, p1 t1 or t0 (arriving later), p2 only t0."""


def test_finish_time_of_staggered_workers():
    assert finish_time([0.0], 600.0) == 600.0
    assert finish_time([0.0, 0.0], 1200.0) == 600.0
    assert finish_time([0.0, 300.0], 600.0) == 450.0  # 300 s alone, then 150 s together
    assert finish_time([0.0, 900.0], 600.0) == 600.0  # the second arrives after the finish
    assert finish_time([], 600.0) == np.inf


def test_exact_potential_every_unilateral_move_changes_phi_by_the_movers_utility():
    g = game(MIXED)
    profiles = itertools.product(*[range(NONE, len(slots)) for slots in MIXED])
    for profile in profiles:
        for player, slot in enumerate(profile):
            g.move(player, slot)
        for player, slots in enumerate(MIXED):
            for deviation in range(NONE, len(slots)):
                start, before = g.choice[player], g.phi
                gain = g.utility(player, deviation) - g.utility(player, start)
                g.move(player, deviation)
                assert g.phi - before == pytest.approx(gain, abs=1e-9), (profile, player, deviation)
                assert g.phi == pytest.approx(g.potential())
                g.move(player, start)


def test_best_response_strictly_raises_the_potential_and_ends_in_an_equilibrium():
    g = game(MIXED)
    for player, slot in enumerate([1, 1, NONE]):  # p0 and p1 on t1: phi = 20 - 0.3; p2 could add t0
        g.move(player, slot)
    g.move(0, 0)  # now t1 fails and t0 is taken: a poor start
    moved = True
    while moved:
        moved = False
        for player in range(len(MIXED)):
            slot = g.best_slot(player)
            if slot != g.choice[player]:
                before = g.phi
                g.move(player, slot)
                assert g.phi > before
                moved = True
    assert all(g.best_slot(p) == g.choice[p] for p in range(len(MIXED)))


def test_greedy_founds_a_coalition_best_response_alone_cannot_start():
    pair = [[(1, 0.0, 0.1)], [(1, 0.0, 0.2)]]  # t1 pays only if both go
    stuck = game(pair)
    stuck.best_response(range(2))
    assert stuck.choice == [NONE, NONE], "alone neither gains: doing nothing is an equilibrium"
    founded = game(pair)
    founded.greedy()
    assert founded.choice == [0, 0]
    assert founded.phi == pytest.approx(20.0 - 0.3)
    assert founded.best_response(range(2)) == [], "the founded coalition is an equilibrium"


def test_annealing_escapes_the_greedy_equilibrium():
    greedy_only = game(MIXED)
    greedy_only.greedy()
    greedy_only.best_response(range(3))
    assert greedy_only.phi == pytest.approx(10.0 - 0.1), "p0 takes t0 first; t1 is never formed"
    annealed = game(MIXED)
    choice = annealed.solve(np.random.default_rng(0), t0=15.0, alpha=0.95, iterations=100)
    assert choice == [1, 0, 0], "p0 and p1 on t1, p2 on t0"
    assert annealed.phi == pytest.approx(20.0 - 0.3 + 10.0 - 0.05)


# ---------------------------------------------------------------------- PAU on the world
@pytest.fixture(scope="module")
def world(cache_dir) -> CSCEnv:
    """Fewer workers than tasks on a small city, so assignment choices matter."""
    config = CSCConfig(num_workers=30, num_tasks=60, city=SyntheticCityConfig(rows=12, cols=12))
    return CSCEnv(env_config(config, cache_dir=str(cache_dir)))


def test_pau_takes_only_allowed_actions(world):
    pau = PAU()
    obs, _ = world.reset(seed=3)
    pau.reset(3)
    done, checked = False, 0
    while not done:
        actions = pau.act(world.decision_view(), obs)
        assert set(actions) == set(obs)
        for agent, action in actions.items():
            mask = obs[agent][-world.layout.num_actions:]
            assert mask[action] == 1.0, (agent, action)
            if action:
                row = world._decider_row[agent]
                task = world._open[world._option_index[row, action - 1]]
                assert world.skills[world._deciders[row], world.tasks.skill[task]], "skill mismatch"
                checked += 1
        obs, _, terminated, truncated, _ = world.step(actions)
        done = terminated["__all__"] or truncated["__all__"]
    assert checked > 0 and world.stats.invalid_actions == 0


def test_pau_beats_random_on_revenue(world):
    seeds = [11, 12, 13]
    pau, _ = evaluate(world, PAU(), seeds)
    rand, _ = evaluate(world, RandomPolicy(), seeds)
    assert pau["revenue"].mean() > rand["revenue"].mean()
    assert (pau["revenue"].to_numpy() >= rand["revenue"].to_numpy()).sum() >= 2


def test_pau_is_deterministic_under_a_seed(world):
    first, first_log = evaluate(world, PAU(), [5])
    again, again_log = evaluate(world, PAU(), [5])
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first_log, again_log)


def test_pau_runs_through_rl_cs_evaluate(capsys):
    tiny = REPO / "tests" / "configs" / "csc_tiny.yaml"
    assert run(["evaluate", "pau", "--world", "csc", "--config", str(tiny), "--episodes", "1"]) == 0
    assert capsys.readouterr().out.startswith("pau on ")


# ---------------------------------------------------------------------- experiment YAMLs
@pytest.mark.parametrize("path", CSC_CONFIGS, ids=lambda p: p.name)
def test_experiment_yaml_loads_and_names_known_methods(path):
    config = load_experiment(path)
    unknown = set(config.experiment.methods) - {m.name for m in methods_for("csc")}
    assert not unknown, f"{path.name} names unknown methods {sorted(unknown)}"


def test_paper_grids():
    table1, table2 = load_experiment(REPO / "tune_configs/cafe_table1.yaml"), load_experiment(
        REPO / "tune_configs/cafe_table2.yaml")
    sweep = list(range(50, 351, 50))
    assert table1.grid == {"world.num_tasks": sweep} and table1.world.num_workers == 200
    assert table2.grid == {"world.num_workers": sweep} and table2.world.num_tasks == 200
    for config in (table1, table2):
        assert config.experiment.seeds == 5
        # the paper's methods (Greedy, IPPO, PAU, CA-noFE, CAFE) and the baselines of its Fig. 7, plus ours
        assert {"greedy", "ippo", "pau", "ca-nofe", "cafe", "ir", "ices", "relara", "greedy-coord"} == set(
            config.experiment.methods)
    fig7 = load_experiment(REPO / "tune_configs/cafe_fig7.yaml")
    assert fig7.experiment.methods == ["ir", "ices", "relara", "ca-nofe", "cafe"] and not fig7.grid


# ---------------------------------------------------------------------- train all + report
@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """`rl-cs train all` on the tiny grid (Greedy and Random, N_tau in {10, 20}, 2 seeds, 2 iterations),
    then `rl-cs report` on the run's folder; shared by the tests below."""
    results = tmp_path_factory.mktemp("results")
    assert run(["train", "all", "--world", "csc", "--config", str(TINY_GRID), "--results-dir", str(results)]) == 0
    folder = results / "grid_tiny"
    assert run(["report", str(folder)]) == 0
    return folder


def _trial_finals(folder: Path) -> pd.DataFrame:
    """Each trial's iterations (Tune's progress.csv) and held-out revenue and completion rate (heldout.json,
    the final policy on the experiment's evaluation episodes), read straight from the trial folders."""
    rows = []
    for params_path in folder.glob("*/*/params.json"):
        params = json.loads(params_path.read_text())
        last = pd.read_csv(params_path.parent / "progress.csv").iloc[-1]
        heldout = json.loads((params_path.parent / "heldout.json").read_text())
        rows.append({"method": params["method"], "column": f"N_tau = {params['env_config']['world']['num_tasks']}",
                     "seed": params["seed"], "iterations": last["training_iteration"],
                     "revenue": heldout["revenue"], "completion_rate": heldout["completion_rate"]})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_report_table_equals_the_trials_mean_and_std(reported):
    finals = _trial_finals(reported)
    assert len(finals) == 2 * 2 * 2 and (finals["iterations"] == 2).all()
    table = pd.read_csv(reported / "csc_table.csv")
    assert set(table["method"]) == {"greedy", "random"} and set(table["column"]) == {"N_tau = 10", "N_tau = 20"}
    for metric in ("revenue", "completion_rate"):
        expected = finals.groupby(["method", "column"])[metric].agg(["mean", "std"])
        ours = table[table.metric == metric].set_index(["method", "column"]).sort_index()
        assert np.allclose(ours["mean"], expected["mean"]) and np.allclose(ours["std"], expected["std"])
        assert (ours["seeds"] == 2).all()
    markdown = (reported / "csc_table.md").read_text()
    assert "| Method | N_tau = 10 | N_tau = 20 |" in markdown
    assert "held-out (1 episode(s))" in markdown and "training" not in markdown
    greedy = finals[(finals.method == "greedy") & (finals.column == "N_tau = 10")]["revenue"]
    expected_cell = f"{greedy.mean():.2f} ± {greedy.std():.2f}"
    assert f"| Greedy | {expected_cell} |" in markdown


@pytest.mark.slow
def test_report_draws_learning_curves(reported):
    png = reported / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not atomic_temp_files(reported), "a temp file was left behind"


def atomic_temp_files(folder: Path) -> list[Path]:
    """Files under ``folder`` named like rl_cs.atomic's temp files, '.<target name>.<random><target suffix>'
    (tempfile.mkstemp with prefix '.<name>.' and suffix '<suffix>': the random part is 8 of [a-z0-9_], which
    keeps Ray's own dot files such as '.metadata.json' out)."""

    def is_temp(name: str) -> bool:
        body = name[1:] if name.startswith(".") else ""
        for i in (i for i, char in enumerate(body) if char == "."):  # body = target "." random suffix
            target, rest = body[:i], body[i + 1:]
            suffix = Path(target).suffix
            random = rest[:len(rest) - len(suffix)] if rest.endswith(suffix) else ""
            if target and re.fullmatch(r"[a-z0-9_]{8}", random):
                return True
        return False

    return sorted(path for path in folder.rglob(".*") if path.is_file() and is_temp(path.name))


def test_temp_file_check_sees_the_temp_file_rl_cs_atomic_writes(tmp_path):
    seen = []

    def write(temporary: Path) -> None:  # runs while the temp file exists, before the rename
        temporary.write_bytes(b"\x89PNG")
        seen.extend(atomic_temp_files(tmp_path))

    for name in ("learning_curves.png", "csc_table.md", "heldout.json", "no_suffix"):
        seen.clear()
        write_atomically(tmp_path / "sub" / name, write)
        assert len(seen) == 1 and seen[0].name.startswith(f".{name}."), (name, seen)
    assert atomic_temp_files(tmp_path) == [], "after the rename no temp file is left"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [
        "csc_table.md", "heldout.json", "learning_curves.png", "no_suffix"]


def _exit_code(*argv: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    return stopped.value.code


def test_report_on_a_folder_without_results_exits_2(tmp_path, capsys):
    assert _exit_code("report", str(tmp_path)) == 2
    assert "experiment.json" in capsys.readouterr().err
    assert _exit_code("report", str(tmp_path / "missing")) == 2
    (tmp_path / "experiment.json").write_text(json.dumps({"world": "csc", "method": "greedy", "config": {}}))
    assert _exit_code("report", str(tmp_path)) == 2
    assert "no Tune trial folders" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.json"], "nothing written"
