"""The vaccine world (envs.vaccine, a metapopulation SIR model): population is conserved per cell and in total
with travel, doses are conserved, travel is the only coupling between cells, a closed cell follows the SIR final
size, doing nothing averts nothing, a seed fixes the episode, rewards add up to infections averted, bad input is a
clear error (exit 2, nothing written), and train + report run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from envs.vaccine import HOLD, USE, VaccineEnv, action_mask, mixing_matrix
from envs.vaccine_config import VaccineConfig
from policies.vaccine_baselines import VaccineHotspot, VaccineLocal, VaccineNone, VaccineProportional
from rl_cs.cli import main
from rl_cs.errors import InputError
from rl_cs.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]
CHENGDU = REPO.parent / "shared" / "data" / "chengdu"


def _play(env, seed, choose):
    """One episode; ``choose(obs)`` gives the actions; returns the per-step rewards, infos and compartments."""
    obs, _ = env.reset(seed=seed)
    steps, done = [], False
    while not done:
        obs, rewards, terminated, truncated, infos = env.step(choose(obs))
        steps.append((rewards, infos, env.compartments()))
        done = terminated["__all__"]
    return steps


def _random(env, seed):
    rng = np.random.default_rng(seed)
    return lambda obs: {a: int(rng.choice(np.flatnonzero(action_mask(env, a, o)))) for a, o in obs.items()}


@pytest.mark.parametrize("world", [{"travel_fraction": 0.3, "days": 60},
                                   {"travel_fraction": 0.05, "grid_rows": 10, "grid_cols": 10, "days": 60}])
def test_population_is_conserved_per_cell_and_in_total_with_travel(world):
    env = VaccineEnv({"world": world})
    assert (env.mixing[env.residents > 0] > 0).sum(axis=1).min() > 1, "nobody travels: the test would be trivial"
    N = env.residents
    for _, _, c in _play(env, 1, _random(env, 1)):
        np.testing.assert_allclose(c["S"] + c["I"] + c["R"], N, rtol=1e-12, atol=1e-7)
        assert math.isclose(float((c["S"] + c["I"] + c["R"]).sum()), float(N.sum()), rel_tol=1e-12)
        assert (c["S"] >= -1e-9).all() and (c["I"] >= -1e-9).all() and (c["R"] >= 0).all()
    assert env.episode_metrics()["infections"] > 1000, "no epidemic happened"


def test_mixing_rows_sum_to_one_and_only_residents_mix():
    env = VaccineEnv({"world": {"grid_rows": 10, "grid_cols": 10}})
    M, inhabited = env.mixing, env.residents > 0
    np.testing.assert_allclose(M[inhabited].sum(axis=1), 1.0)
    assert (M[~inhabited] == 0).all() and (M[:, ~inhabited] == 0).all()
    np.testing.assert_allclose(np.diag(M)[inhabited], 1 - env.config.travel_fraction)
    far = mixing_matrix(env.grid, 0.05, 1e9)  # with a huge distance scale, contacts away spread evenly
    row = far[np.flatnonzero(inhabited)[0]]
    away = row[inhabited][1:]
    assert away.max() == pytest.approx(away.min(), rel=1e-3)


def test_doses_are_conserved_and_doing_nothing_averts_nothing():
    env = VaccineEnv({"world": {"days": 80}})
    for actor in (VaccineLocal(), VaccineProportional(), VaccineHotspot(), VaccineNone()):
        metrics, _ = evaluate(env, actor, [2])
        m = metrics.iloc[0]
        assert m["doses_delivered"] == pytest.approx(env.config.doses_share * env.config.population, rel=1e-9)
        assert m["doses_used"] + m["doses_in_stock"] == pytest.approx(m["doses_delivered"], rel=1e-9)
        averted = m["infections_no_vaccine"] - m["infections"]
        assert averted == pytest.approx(m["infections_averted"], rel=1e-9, abs=1e-6)
    assert m["infections_averted"] == 0.0 and m["doses_used"] == 0.0  # vaccine-none, last
    local, _ = evaluate(env, VaccineLocal(), [2])
    assert local.loc[0, "infections_averted"] > 0.05 * local.loc[0, "infections_no_vaccine"]


def test_travel_is_the_only_coupling_between_cells():
    env = VaccineEnv({"world": {"travel_fraction": 0.0, "outbreak_cells": 1, "days": 60}})
    env.reset(seed=0)
    seeded = np.flatnonzero(env.I > 0)
    assert len(seeded) == 1
    for _, _, c in _play(env, 0, lambda obs: {a: HOLD for a in obs}):
        others = np.ones(env.grid.num_cells, dtype=bool)
        others[seeded] = False
        assert (c["I"][others] == 0).all() and (c["R"][others] == 0).all()


def test_a_closed_cell_follows_the_sir_final_size():
    """Without travel or vaccines a cell is a closed SIR epidemic; its final attack rate z solves
    z = 1 - exp(-R0 z) (the discrete-day model is within a percent of the ODE's)."""
    env = VaccineEnv({"world": {"travel_fraction": 0.0, "days": 400, "r0": 2.0, "infectious_days": 7.0}})
    _play(env, 0, lambda obs: {a: HOLD for a in obs})
    cell = int(np.argmax(env.R))
    attack = env.R[cell] / env.residents[cell]
    z = 0.8
    for _ in range(200):
        z = 1 - math.exp(-2.0 * z)
    assert attack == pytest.approx(z, abs=0.01)


def test_rewards_add_up_to_infections_averted():
    shared = VaccineEnv({"world": {"days": 40}})
    local = VaccineEnv({"world": {"days": 40, "reward": "local"}})
    choose_shared, choose_local = _random(shared, 3), _random(local, 3)
    total_shared = sum(sum(r.values()) for r, _, _ in _play(shared, 3, choose_shared))
    total_local = sum(sum(r.values()) for r, _, _ in _play(local, 3, choose_local))
    averted = shared.episode_metrics()["infections_averted"]
    assert total_shared == pytest.approx(averted * shared.config.reward_scale, rel=1e-9)
    averted_local = local.episode_metrics()["infections_averted"]
    assert total_local == pytest.approx(averted_local * local.config.reward_scale, rel=1e-9)
    assert averted == pytest.approx(local.episode_metrics()["infections_averted"], rel=1e-9)  # same seeded actions


def test_a_seed_fixes_the_episode_and_places_the_outbreak():
    first, second = VaccineEnv({"world": {"days": 30}}), VaccineEnv({"world": {"days": 30}})
    a, log_a = evaluate(first, VaccineHotspot(), [6])
    b, log_b = evaluate(second, VaccineHotspot(), [6])
    assert a.equals(b) and log_a.equals(log_b)
    outbreaks = set()
    for seed in range(6):
        first.reset(seed=seed)
        outbreaks.add(int(np.flatnonzero(first.I > 0)[0]))
    assert len(outbreaks) > 1


def test_actions_ship_hold_and_use_doses_as_stated():
    env = VaccineEnv({"world": {"days": 5}})
    obs, _ = env.reset(seed=0)
    cell = next(i for i in range(env.grid.num_cells) if (env.grid.neighbour[i] >= 0).all())
    target = int(env.grid.neighbour[cell, 0])  # north
    stock = env.stock.copy()
    actions = {a: HOLD for a in obs}
    actions[f"cell_{cell}"] = 2  # send north
    actions[f"cell_{target}"] = USE
    S_before = env.S.copy()
    env.step(actions)
    used = min(stock[cell] + stock[target], env.capacity[target], S_before[target])
    assert env.stock[cell] == pytest.approx(env.delivery[cell])  # shipped all, then the next day's delivery
    assert env.stock[target] == pytest.approx(stock[cell] + stock[target] - used + env.delivery[target])
    holding = [i for i in range(env.grid.num_cells) if i not in (cell, target)]
    np.testing.assert_allclose(env.stock[holding], stock[holding] + env.delivery[holding])
    assert action_mask(env, f"cell_{cell}", obs[f"cell_{cell}"]).all()


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "vaccine-local", "--world", "vaccine", "--set", "world.grid_rows=40", "--set", "world.grid_cols=40"],
     "world.grid_rows/grid_cols: a 40 x 40 grid does not divide the map"),
    (["check", "vaccine", "--set", "world.grid_rows=0"], "world.grid_rows"),
    (["evaluate", "vaccine-local", "--world", "vaccine", "--set", "world.r0=-1"], "world.r0"),
    (["check", "vaccine", "--set", "world.infectious_days=0.5"], "world.infectious_days"),
    (["check", "vaccine", "--set", "world.capacity_per_day=0"], "world.capacity_per_day"),
    (["evaluate", "vaccine-local", "--world", "vaccine", "--set", "world.reward=team"], "world.reward"),
    (["train", "vaccine-local", "--world", "vaccine", "--set", "world.travel_fraction=1"], "world.travel_fraction"),
    (["train", "rh-greedy", "--world", "vaccine"], "does not run on world 'vaccine'"),
    # DyPS's M and SePS's k against the number of cells, before Ray starts
    (["train", "dyps", "--world", "vaccine", "--set", "dyps.num_groups=37"],
     "dyps.num_groups: M = 37 groups is more than the 36 agents"),
    (["train", "seps", "--world", "vaccine", "--set", "world.grid_rows=2", "--set", "world.grid_cols=2",
      "--set", "seps.clusters=5"], "seps.clusters: 5 clusters is more than the 4 agents"),
    (["train", "ps", "--world", "vaccine", "--set", "grid={world.grid_rows: [4, 6]}"],
     "grid.world.grid_rows: world.grid_rows sets the number of agents"),
])
def test_bad_input_exits_2_and_writes_nothing(argv, message, capsys, monkeypatch):
    from rl_cs.experiment import tune_runner

    monkeypatch.setattr(tune_runner, "start_ray", lambda: pytest.fail("Ray started"))
    monkeypatch.chdir(REPO)
    before = sorted(p.name for p in REPO.iterdir())
    assert cli(*argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in REPO.iterdir()) == before


def test_config_validate_names_the_field():
    with pytest.raises(InputError, match="world.efficacy"):
        VaccineConfig(efficacy=1.5).validate()


@pytest.mark.skipif(not CHENGDU.is_dir(), reason=f"real data not present: no folder {CHENGDU}")
def test_chengdu_grid_spreads_residents_by_requests_and_roads():
    env = VaccineEnv({"world": {"grid_rows": 10, "grid_cols": 10, "days": 10}, "data_dir": str(CHENGDU)})
    assert env.residents.sum() == pytest.approx(1_000_000)
    assert (env.residents[~env.grid.valid] == 0).all() and (env.residents[env.grid.valid] > 0).all()
    metrics, _ = evaluate(env, VaccineLocal(), [0])
    assert metrics.loc[0, "doses_used"] > 0


@pytest.mark.slow
def test_train_all_heuristics_and_report(tmp_path):
    assert cli("train", "all", "--world", "vaccine", "--results-dir", str(tmp_path), "--name", "vx",
               "--set", "experiment.seeds=2", "--set", "world.days=30", "--set", "evaluation.episodes=1") == 0
    heldout = [json.loads(p.read_text()) for p in (tmp_path / "vx" / "vaccine-local").glob("*/heldout.json")]
    assert len(heldout) == 2 and all(h["infections_averted"] > 0 for h in heldout)
    assert cli("report", str(tmp_path / "vx")) == 0
    table = (tmp_path / "vx" / "vaccine_table.md").read_text()
    assert "vaccine-hotspot" in table and "/ vaccine-local" in table


# --- learned methods (DyPS, the sharing baselines) -----------------------------------------------------------------
def test_table6_medical_column_is_the_default():
    from rl_cs import registry

    config = registry.get_world("vaccine").load_config(None, [])
    t = config.training
    assert (t.lr, t.gamma, t.clip_param, t.lambda_, t.minibatch_size) == (1e-4, 0.99, 0.2, 0.95, 512)
    assert config.dyps.selector_actor_lr == config.dyps.selector_critic_lr == 1e-5
    assert config.world.num_agents == 36


def test_learned_options_extend_the_observation_and_share_the_reward():
    world = {"days": 15}
    plain = VaccineEnv({"world": world})
    options = VaccineEnv({"world": world, "agent_id": True, "global_state": True, "team_reward": True})
    n, size = plain.grid.num_cells, plain.observation_spaces["cell_0"].shape[0]
    assert options.observation_spaces["cell_0"].shape == (size + n + n * 6 + 1,)
    choose = _random(plain, 1)
    a, _ = plain.reset(seed=4)
    b, _ = options.reset(seed=4)
    for _ in range(15):
        for i, agent in enumerate(plain.possible_agents):
            assert options.observation_spaces[agent].contains(b[agent])
            np.testing.assert_array_equal(b[agent][:size], a[agent])
            assert b[agent][size + i] == 1 and b[agent][size:size + n].sum() == 1
            state = b[agent][size + n:]
            np.testing.assert_array_equal(state[:-1], np.stack([a[c][:6] for c in plain.possible_agents]).ravel())
            assert state[-1] == a[agent][-1]
        actions = choose(a)
        a, ra, *_ = plain.step(actions)
        b, rb, *_ = options.step(actions)
        assert all(rb[agent] == pytest.approx(sum(ra.values())) for agent in rb)
    metrics = plain.episode_metrics()
    assert metrics["return"] == pytest.approx(metrics["infections_averted"] * plain.config.reward_scale)
    assert options.episode_metrics()["return"] == pytest.approx(metrics["return"])


@pytest.mark.slow
def test_dyps_and_nops_train_end_to_end(tmp_path):
    """`rl-cs train all` of DyPS and NoPS on a tiny vaccine world (one iteration), scored on the held-out episodes
    next to vaccine-local, and reported with DyPS's ratio to the best other method."""
    sets = ["experiment.methods=[vaccine-local, dyps, nops]", "experiment.seeds=1", "experiment.iterations=1",
            "world.days=20", "training.num_envs_per_env_runner=1", "training.rollout_fragment_length=20",
            "training.minibatch_size=20", "training.train_batch_size=20", "training.num_epochs=1",
            "evaluation.episodes=1"]
    assert cli("train", "all", "--world", "vaccine", "--results-dir", str(tmp_path), "--name", "vx",
               *[item for s in sets for item in ("--set", s)]) == 0
    for method in ("dyps", "nops"):
        heldout = [json.loads(p.read_text()) for p in (tmp_path / "vx" / method).glob("*/heldout.json")]
        assert len(heldout) == 1 and math.isfinite(heldout[0]["infections_averted"])
        assert heldout[0]["invalid_actions"] == 0
        assert (tmp_path / "vx" / method / "comparison.csv").is_file()
    assert cli("report", str(tmp_path / "vx")) == 0
    assert "dyps / best baseline (" in (tmp_path / "vx" / "vaccine_table.md").read_text()
