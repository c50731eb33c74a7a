"""The ride-hailing world (envs.ridehailing): matching never assigns a driver outside the cell it was dispatched to
(its own or a neighbour), drivers and orders are conserved step by step, rewards add up to GMV, a seed fixes the
episode, drivers keep the paper's orders per driver per step, the rule-based baselines behave as stated, a grid
that does not divide the map is a clear error (exit 2, nothing written), and train + report run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from envs.ridehailing import LOST, SERVED, WAITING, RideHailingEnv, action_mask
from envs.ridehailing_config import RIDEHAILING_SIZES, RideHailingConfig
from policies.ridehailing_baselines import RideHailingGreedy, RideHailingNearest, RideHailingStay
from rl_cs.cli import main
from rl_cs.errors import InputError
from rl_cs.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]
CHENGDU = REPO.parent / "shared" / "data" / "chengdu"
needs_chengdu = pytest.mark.skipif(not CHENGDU.is_dir(), reason=f"real data not present: no folder {CHENGDU}")


def _random_policy(env, seed):
    rng = np.random.default_rng(seed)
    return lambda obs: {agent: int(rng.choice(np.flatnonzero(action_mask(env, agent, o)))) for agent, o in obs.items()}


def _episode(env, seed, policy=None, actor=None):
    """One episode; yields (step before, step after, actions, rewards, infos) and checks nothing itself."""
    obs, _ = env.reset(seed=seed)
    if actor is not None:
        actor.reset(seed)
    done = False
    while not done:
        before = {"t": env.t, "revealed": int((env.o_bin <= env.t).sum()), "state": env.order_state().copy()}
        actions = actor.act(env.decision_view(), obs) if actor is not None else policy(obs)
        obs, rewards, terminated, truncated, infos = env.step(actions)
        done = terminated["__all__"] or truncated["__all__"]
        yield before, actions, rewards, infos, done


@pytest.fixture(scope="module")
def env():
    return RideHailingEnv({"world": {"size": "rh1"}})


@pytest.mark.parametrize("driver", ["random", "rh-greedy", "rh-nearest"])
def test_matching_never_assigns_a_driver_outside_its_cell(env, driver):
    actor = {"rh-greedy": RideHailingGreedy(), "rh-nearest": RideHailingNearest()}.get(driver)
    for seed in (0, 1):
        for _ in _episode(env, seed, policy=_random_policy(env, seed), actor=actor):
            pass
        log = env.episode_log()
        assert log, "nothing was served"
        reachable = {cell: {cell, *env.grid.neighbour[cell][env.grid.neighbour[cell] >= 0].tolist()}
                     for cell in range(env.grid.num_cells)}
        for record in log:
            assert record["order_cell"] == record["dispatch_cell"], record
            assert record["dispatch_cell"] in reachable[record["driver_cell"]], record
            assert env.grid.node_cell[env.scenario.tasks.node[record["order"]]] == record["order_cell"]
        sent = [r for r in log if r["dispatch_cell"] != r["driver_cell"]]
        if driver != "rh-nearest" or seed == 0:
            assert sent, "no order was served by a driver sent from a neighbouring cell"
        drivers_per_step = {}
        for record in log:  # a driver serves at most one order per step, an order is served once
            drivers_per_step.setdefault(record["step"], []).append(record["driver"])
        assert all(len(d) == len(set(d)) for d in drivers_per_step.values())
        assert len({r["order"] for r in log}) == len(log)


def test_drivers_and_orders_are_conserved_and_rewards_add_up_to_gmv(env):
    gmv = 0.0
    for before, actions, rewards, infos, done in _episode(env, 3, policy=_random_policy(env, 3)):
        state = env.order_state()
        assert len(env.driver_state()["node"]) == env.num_drivers  # nobody appears or vanishes
        step_log = [r for r in env.episode_log() if r["step"] == before["t"]]
        served_now = int(((before["state"] == WAITING) & (state == SERVED)).sum())
        assert served_now == len(step_log) == sum(info["served"] for info in infos.values())
        scale = env.config.reward_scale
        assert sum(rewards.values()) == pytest.approx(scale * sum(r["fare"] for r in step_log))
        gmv += sum(rewards.values()) / scale
        revealed = before["revealed"]
        counts = np.bincount(state[env.o_bin <= before["t"]], minlength=3)
        assert counts.sum() == revealed  # revealed orders are served, lost or (max_wait > 1) still waiting
        assert (state[env.o_bin > before["t"]] == WAITING).all()  # future orders untouched
        assert counts[WAITING] == 0 or env.config.max_wait_steps > 1
        free = env.driver_state()["free_at_s"]
        assert (free[[r["driver"] for r in step_log]] > env.time_s - env.step_s).all()
    metrics = env.episode_metrics()
    assert (env.order_state() != WAITING).all()
    assert metrics["served"] + int((env.order_state() == LOST).sum()) == metrics["orders"] == len(env.o_state)
    assert metrics["gmv"] == pytest.approx(gmv) and metrics["return"] == pytest.approx(gmv * env.config.reward_scale)
    assert 0 < metrics["order_response_rate"] <= 1 and 0 < metrics["gmv_share"] <= 1


def test_orders_wait_max_wait_steps_and_shared_rewards_split_gmv():
    env = RideHailingEnv({"world": {"max_wait_steps": 3, "reward": "shared"}})
    stay = RideHailingStay()
    for before, actions, rewards, infos, done in _episode(env, 5, actor=stay):
        values = list(rewards.values())
        assert max(values) == pytest.approx(min(values))
        state = env.order_state()
        waiting = (state == WAITING) & (env.o_bin <= before["t"])
        assert (env.o_bin[waiting] > before["t"] - 3).all() or done
    assert env.episode_metrics()["reposition_km"] == 0.0  # nobody was ever dispatched


def test_a_seed_fixes_the_episode_and_another_seed_changes_it():
    first, second = RideHailingEnv({}), RideHailingEnv({})
    greedy = RideHailingGreedy()
    a, log_a = evaluate(first, greedy, [4])
    b, log_b = evaluate(second, greedy, [4])
    assert a.equals(b) and log_a.equals(log_b)
    c, _ = evaluate(first, greedy, [5])
    assert not a.drop(columns="seed").equals(c.drop(columns="seed"))


def test_drivers_keep_the_papers_orders_per_driver_per_step(env):
    assert RIDEHAILING_SIZES["rh1"].orders_per_driver_step == pytest.approx(30_000 / 144 / 360)
    assert RIDEHAILING_SIZES["rh2"].orders_per_driver_step == pytest.approx(70_000 / 144 / 1_000)
    assert env.num_drivers == round(env.orders_per_step / (30_000 / 144 / 360))
    assert len(env.possible_agents) == 36
    rh2 = RideHailingEnv({"world": {"size": "rh2"}})
    assert len(rh2.possible_agents) == 100 and rh2.num_drivers == round(rh2.orders_per_step / (70_000 / 144 / 1_000))
    fixed = RideHailingEnv({"world": {"num_drivers": 7}})
    fixed.reset(seed=0)
    assert fixed.num_drivers == 7 and len(fixed.driver_state()["node"]) == 7


@needs_chengdu
def test_chengdu_grids_and_driver_counts():
    rh1 = RideHailingEnv({"world": {"size": "rh1"}, "data_dir": str(CHENGDU)})
    rh2 = RideHailingEnv({"world": {"size": "rh2"}, "data_dir": str(CHENGDU)})
    assert len(rh1.scenario.tasks) == 1134 and rh1.orders_per_step == pytest.approx(63.4, abs=0.1)
    assert (rh1.num_drivers, rh2.num_drivers) == (109, 130)
    assert rh1.grid.valid.all() and int((~rh2.grid.valid).sum()) == 2  # two 10 x 10 cells hold no road
    void = np.flatnonzero(~rh2.grid.valid)
    assert not np.isin(rh2.grid.neighbour, void).any()  # nothing can be sent into a void cell
    obs, _ = rh2.reset(seed=0)
    assert rh2.episode_metrics()["orders"] == 1134  # the file spans the 3-hour episode
    assert (rh2.grid.node_cell[rh2.driver_state()["node"]] != void[0]).all()


def test_rule_based_baselines_do_what_they_say(env):
    obs, _ = env.reset(seed=2)
    view = env.decision_view()
    greedy, nearest = RideHailingGreedy().act(view, obs), RideHailingNearest().act(view, obs)
    has_orders = np.bincount(view.order_cell, minlength=len(view.agents)) > 0
    for agent, cell in zip(obs, view.rows(obs)):
        mask = action_mask(env, agent, obs[agent])
        assert mask[greedy[agent]] and mask[nearest[agent]]
        if view.idle_drivers[cell] == 0 or has_orders[cell]:
            assert nearest[agent] == 0
        if greedy[agent]:
            target = view.neighbour[cell, greedy[agent] - 1]
            n = view.idle_drivers[cell]
            top = lambda c: np.sort(view.order_fare[view.order_cell == c])[::-1][:n].sum()  # noqa: E731
            assert top(target) > top(cell)
    metrics, _ = evaluate(env, RideHailingStay(), [0])
    assert metrics.loc[0, "reposition_km"] == 0 and metrics.loc[0, "invalid_actions"] == 0


def test_view_is_read_only(env):
    env.reset(seed=0)
    view = env.decision_view()
    with pytest.raises(ValueError):
        view.idle_drivers[0] = 99


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "rh-greedy", "--world", "ridehailing", "--set", "world.grid_rows=40", "--set", "world.grid_cols=40"],
     "world.grid_rows/grid_cols: a 40 x 40 grid does not divide the map"),
    (["check", "ridehailing", "--set", "world.grid_rows=-1"], "world.grid_rows"),
    (["check", "ridehailing", "--set", "world.grid_rows=1", "--set", "world.grid_cols=1"], "world.grid_rows/grid_cols"),
    (["evaluate", "rh-greedy", "--world", "ridehailing", "--set", "world.size=rh3"], "unknown ride-hailing size"),
    (["evaluate", "rh-greedy", "--world", "ridehailing", "--set", "world.reward=team"], "world.reward"),
    (["evaluate", "rh-greedy", "--world", "ridehailing", "--set", "world.speed_mps=0"], "world.speed_mps"),
    (["train", "rh-greedy", "--world", "ridehailing", "--set", "world.grid_rows=40", "--set", "world.grid_cols=40"],
     "does not divide the map"),
    (["evaluate", "greedy", "--world", "ridehailing"], "did you mean 'rh-greedy'"),
    (["train", "greedy", "--world", "ridehailing"], "does not run on world 'ridehailing'"),
    # DyPS's M and SePS's k against the number of cells (36 on Ride-Hailing (1)), before Ray starts
    (["train", "dyps", "--world", "ridehailing", "--set", "dyps.num_groups=37"],
     "dyps.num_groups: M = 37 groups is more than the 36 agents"),
    (["train", "seps", "--world", "ridehailing", "--set", "seps.clusters=37"],
     "seps.clusters: 37 clusters is more than the 36 agents"),
    (["train", "dyps", "--world", "ridehailing", "--set", "world.grid_rows=3", "--set", "world.grid_cols=3",
      "--set", "dyps.num_groups=10"], "dyps.num_groups: M = 10 groups is more than the 9 agents"),
    (["train", "dyps", "--world", "ridehailing", "--set", "grid={world.size: [rh1, rh2]}"],
     "grid.world.size: world.size sets the number of agents"),
    (["train", "ps", "--world", "ridehailing", "--set", "world.reward_scale=0"], "world.reward_scale"),
    (["train", "dyps", "--world", "ridehailing", "--set", "dyps.return_scale=0"], "dyps.return_scale"),
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
    with pytest.raises(InputError, match="world.max_wait_steps"):
        RideHailingConfig(max_wait_steps=0).validate()


@pytest.mark.slow
def test_train_all_heuristics_and_report(tmp_path, capsys):
    assert cli("train", "all", "--world", "ridehailing", "--results-dir", str(tmp_path), "--name", "rh",
               "--set", "experiment.seeds=2", "--set", "world.episode_steps=4", "--set", "evaluation.episodes=1") == 0
    for method in ("rh-greedy", "rh-nearest", "rh-stay"):
        heldout = [json.loads(p.read_text()) for p in (tmp_path / "rh" / method).glob("*/heldout.json")]
        assert len(heldout) == 2 and all(h["gmv"] > 0 for h in heldout)
    assert cli("report", str(tmp_path / "rh")) == 0
    table = (tmp_path / "rh" / "ridehailing_table.md").read_text()
    assert "rh-greedy" in table and "GMV / best rule-based" in table and "DyPS / best baseline = 1.221" in table


# --- learned methods (DyPS, the sharing baselines) -----------------------------------------------------------------
def test_table6_ride_hailing_column_is_the_default():
    from rl_cs import registry

    config = registry.get_world("ridehailing").load_config(None, [])
    t = config.training
    assert (t.lr, t.gamma, t.clip_param, t.lambda_, t.minibatch_size) == (1e-3, 0.97, 0.2, 0.95, 1024)
    assert config.dyps.selector_actor_lr == config.dyps.selector_critic_lr == 1e-4
    assert config.world.num_agents == 36 and config.world.reward_scale == 0.01


def test_learned_options_extend_the_observation_and_share_the_reward():
    plain = RideHailingEnv({})
    options = RideHailingEnv({"agent_id": True, "global_state": True, "team_reward": True})
    n, size = plain.grid.num_cells, plain.observation_spaces["cell_0"].shape[0]
    assert options.observation_spaces["cell_0"].shape == (size + n + n * 5 + 1,)
    a, _ = plain.reset(seed=2)
    b, _ = options.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(4):
        for i, agent in enumerate(plain.possible_agents):
            assert options.observation_spaces[agent].contains(b[agent])
            np.testing.assert_array_equal(b[agent][:size], a[agent])  # o_i first, unchanged
            assert b[agent][size + i] == 1 and b[agent][size:size + n].sum() == 1  # one-hot id
            state = b[agent][size + n:]
            np.testing.assert_array_equal(state[:-1], np.stack([a[c][:5] for c in plain.possible_agents]).ravel())
            assert state[-1] == a[agent][45]  # every cell's own five features, then the step
        actions = {agent: int(rng.choice(np.flatnonzero(action_mask(plain, agent, a[agent]))))
                   for agent in plain.possible_agents}
        a, ra, *_ = plain.step(actions)
        b, rb, *_ = options.step(actions)
        assert all(rb[agent] == pytest.approx(sum(ra.values())) for agent in rb)  # the team reward
    assert options.episode_metrics()["return"] == pytest.approx(plain.episode_metrics()["return"])
    view = plain.decision_view()
    np.testing.assert_allclose(view.last_rewards, [ra[agent] for agent in plain.possible_agents])


def test_action_mask_layout_reads_the_same_mask_as_action_mask(env):
    from policies.sharing.modules import masked_logits
    import torch

    obs, _ = env.reset(seed=0)
    for agent, o in obs.items():
        logits = masked_logits(torch.zeros(1, 9), torch.as_tensor(o)[None], **env.action_mask_layout)
        np.testing.assert_array_equal((logits > -1e30).numpy()[0], action_mask(env, agent, o))


@pytest.mark.slow
def test_dyps_and_ps_train_end_to_end_and_report_with_role_maps(tmp_path):
    """`rl-cs train all` of DyPS and PS on a tiny Ride-Hailing (1) (2 iterations), the rule-based Greedy beside them;
    every trial scored on the held-out episodes, DyPS's role log in progress.csv, the report's ratio and PNG."""
    sets = ["experiment.methods=[rh-greedy, dyps, ps]", "experiment.seeds=1", "experiment.iterations=2",
            "world.episode_steps=6", "training.num_envs_per_env_runner=1", "training.rollout_fragment_length=6",
            "training.minibatch_size=12", "training.train_batch_size=12", "training.num_epochs=1",
            "evaluation.episodes=2"]
    assert cli("train", "all", "--world", "ridehailing", "--results-dir", str(tmp_path), "--name", "rh",
               *[item for s in sets for item in ("--set", s)]) == 0
    for method in ("rh-greedy", "dyps", "ps"):
        heldout = [json.loads(p.read_text()) for p in (tmp_path / "rh" / method).glob("*/heldout.json")]
        assert len(heldout) == 1 and heldout[0]["gmv"] > 0 and heldout[0]["invalid_actions"] == 0
    import pandas as pd

    progress = pd.read_csv(next((tmp_path / "rh" / "dyps").glob("*/progress.csv")))
    roles = progress[[f"learners/dyps/role_{n}" for n in range(36)]].to_numpy()
    assert roles.shape == (2, 36) and set(np.unique(roles)) <= {0, 1, 2, 3}
    assert (tmp_path / "rh" / "dyps" / "comparison.csv").is_file()
    assert cli("report", str(tmp_path / "rh")) == 0
    table = (tmp_path / "rh" / "ridehailing_table.md").read_text()
    assert "dyps / best baseline (" in table and "GMV" in table
    assert (tmp_path / "rh" / "role_maps_dyps.png").stat().st_size > 1000
