"""RMO and REC through RLlib and the evaluation path: `rl-cs train rmo --world dasc` end to end (tiny budget),
eta learned on the learner, synced to the env runners that match and checkpointed with the policy's weights;
a trained policy rebuilt from its method's own builder (weights only); REC's recommendations matched
greedily through rl_cs.evaluation; bad RMO settings refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from envs.dasc import DASCEnv, env_config
from policies.dasc_baselines import greedy_pairs
from rl_cs.cli import main
from rl_cs.config import to_dict
from rl_cs.evaluation import WEIGHTS_FILE, ModuleActor, evaluate, load_actor, read_weights, write_weights
from rl_cs.experiment.dasc import THETA, load, rmo_config

SMALL = ["--set", "world.num_workers=30", "--set", "world.num_tasks=6"]
TINY_TRAINING = ["--set", "rmo.training.minibatch_size=100", "--set", "rmo.training.train_batch_size=200",
                 "--set", "rmo.training.num_epochs=1", "--set", "experiment.iterations=3", "--set", "evaluation.episodes=1"]


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


def small_config(*overrides: str):
    return load(None, ["world.num_workers=30", "world.num_tasks=6", *overrides])


def fake_experiment(root: Path, method: str, config, eta=None) -> Path:
    """An experiment folder as `rl-cs train` lays it out, with an untrained theta of ``method``."""
    folder = root / f"{method}-dasc"
    checkpoint = folder / "PPO_dasc_00000_0_seed=0" / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps(
        {"world": "dasc", "method": method, "data_dir": None, "config": to_dict(config), "seeds": [0]}))
    (checkpoint.parent / "params.json").write_text(json.dumps(
        {"seed": 0, "env_config": {"world": to_dict(config.world), "data_dir": None}}))
    matching = "greedy" if method == "rec" else None
    spec = rmo_config(config, env_config(config.world), 0, matching=matching).rl_module_spec.rl_module_specs[THETA]
    torch.manual_seed(0)
    module = spec.build()
    if eta is not None:
        module.eta.copy_(torch.tensor(eta))
    write_weights(module.get_state(), checkpoint / WEIGHTS_FILE)
    return checkpoint


def test_a_trained_policy_is_rebuilt_by_its_methods_builder_with_its_eta(tmp_path):
    config = small_config()
    checkpoint = fake_experiment(tmp_path, "rmo", config, eta=(0.8, 0.2))
    actor = load_actor(str(checkpoint), world="dasc")
    assert isinstance(actor, ModuleActor) and actor.module.inference_only and not hasattr(actor.module, "critic")
    env = DASCEnv(env_config(config.world))
    table, log = evaluate(env, actor, [12345])
    assert env.eta == pytest.approx((0.8, 0.2)) and env.matching == "km"
    assert len(log) > 0 and set(log["alpha"].round(6)) == {0.8}
    assert table["invalid_actions"].iloc[0] == 0


def test_rec_recommends_with_the_policy_and_matches_greedily_through_evaluation(tmp_path):
    config = small_config()
    actor = load_actor(str(fake_experiment(tmp_path, "rec", config)), world="dasc")
    env = DASCEnv(env_config(config.world))  # the world's own matching stage is Kuhn-Munkres
    table, _ = evaluate(env, actor, [12345])
    assert env.matching == "greedy" and table["revenue"].iloc[0] != 0
    # step by step: the module's recommendations, then each recommended subtask in order of readiness takes its
    # nearest free feasible worker
    actor.prepare(env)
    obs, _ = env.reset(seed=7)
    actor.reset(7)
    recommended = declined = 0
    for _ in range(300):
        view = env.decision_view()
        actions = actor.act(view, obs)
        chosen = np.array([actions[agent] == 1 for agent in view.agents])
        expected = greedy_pairs(view, allowed=np.repeat(chosen[:, None], len(view.workers), axis=1))
        obs, _, terminated, truncated, _ = env.step(actions)
        for row, col in expected.items():
            assert env.worker[view.subtask[row]] == view.workers[col]
        recommended, declined = recommended + int(chosen.sum()), declined + int((~chosen).sum())
        if terminated["__all__"] or truncated["__all__"]:
            break
    assert recommended > 0 and declined > 0  # an untrained policy does both


@pytest.mark.slow
def test_train_rmo_end_to_end_learns_syncs_and_checkpoints_eta(tmp_path, capsys):
    """`rl-cs train rmo --world dasc`: RLlib training (theta, theta-hat, meta-gradients) with a large eta rate
    so that eta visibly moves; the env runners match with the learner's eta, every checkpoint carries it,
    runs.csv scores the trial on the heuristics' streams, and `rl-cs evaluate` replays the checkpoint."""
    assert cli("train", "rmo", "--world", "dasc", "--results-dir", str(tmp_path), "--name", "rmo", "--seeds", "1",
               *SMALL, *TINY_TRAINING, "--set", "rmo.eta_lr=3000", "--set", "rmo.optimizer=adam") == 0
    folder = tmp_path / "rmo"
    trial = next(folder.glob("PPO_dasc_*"))
    progress = pd.read_csv(trial / "progress.csv")
    learned = progress["learners/shared/alpha"].to_numpy()
    assert len(learned) == 3 and np.abs(learned - 0.5).max() > 1e-4, learned  # eta moved (Eq. 14)
    # each finished episode logs the eta it ran with; an iteration in which no episode ended logs none (NaN: a
    # CI run's third iteration), so read the iterations that have one
    ran = progress["env_runners/alpha"].dropna().to_numpy()
    assert len(ran) >= 2, progress["env_runners/num_episodes"].tolist()
    assert ran[0] == pytest.approx(0.5) and abs(ran[-1] - 0.5) > 1e-5  # the env runners matched with it
    assert min(0.5, learned.min()) - 1e-9 <= ran[-1] <= max(0.5, learned.max()) + 1e-9
    assert (progress["learners/shared/xi"].diff().dropna() < 0).all()  # xi decays
    checkpoint = sorted(trial.glob("checkpoint_*"))[-1]
    weights = read_weights(checkpoint / WEIGHTS_FILE)
    assert float(weights["eta"][0]) == pytest.approx(learned[-1], abs=1e-6)
    runs = pd.read_csv(folder / "runs.csv")
    assert set(runs["method"]) == {"rmo"} and {"revenue", "revenue_share", "num_workers"} <= set(runs.columns)
    assert (trial / "heldout.json").exists() and (folder / "comparison.csv").exists()
    capsys.readouterr()
    assert cli("evaluate", str(checkpoint), "--world", "dasc", *SMALL) == 0
    assert "revenue" in capsys.readouterr().out
    assert cli("report", str(folder)) == 0
    assert "| rmo | 1 |" in (folder / "dasc_table.md").read_text()
    for figure in ("dasc_fig5_learning_curves.png", "dasc_fig6_eta.png"):  # Fig. 5 and Fig. 6
        assert (folder / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("override, field", [
    ("rmo.xi_0=-1", "rmo.xi_0"), ("rmo.chi=0", "rmo.chi"), ("rmo.chi=1.5", "rmo.chi"),
    ("world.alpha=1.5", "world.alpha"), ("world.beta=-0.1", "world.beta"), ("world.ready_when=now", "world.ready_when"),
])
def test_bad_rmo_settings_exit_2_name_the_field_and_write_nothing(override, field, tmp_path, capsys):
    assert cli("train", "rmo", "--world", "dasc", "--results-dir", str(tmp_path), "--set", override) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_learned_method_name_is_not_a_policy_to_evaluate(capsys):
    assert cli("evaluate", "rmo", "--world", "dasc") == 2
    assert "evaluate a trained checkpoint" in capsys.readouterr().err


def test_connector_columns_align_each_decision_with_what_it_earned():
    """Row t (observation t) gets s_t from infos[t], and from infos[t + 1] the shaped reward and the utility of
    the match its action led to; the bootstrap row (the last) earned nothing."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from policies.rmo.connector import MATCHED, SHAPED_REWARDS, UTILITY, episode_columns
    from policies.rmo.network import STATE

    state = [np.full(3, float(t)) for t in range(4)]
    infos = [{"sparse": 0.0, "shaped": 0.0, "state": state[0]},
             {"sparse": -1.0, "shaped": -1.0, "state": state[1]},                            # recommended, no worker
             {"sparse": 0.0, "shaped": 42.0, "state": state[2], "utility": [0.5, 0.25, 0.1]},  # matched, finished
             {"sparse": 0.0, "shaped": 42.0, "state": state[2], "utility": [0.5, 0.25, 0.1]}]  # bootstrap copy
    episode = SingleAgentEpisode(observations=[np.zeros(2)] * 4, infos=infos, actions=[1, 1, 0],
                                 rewards=[-1.0, 0.0, 0.0], len_lookback_buffer=0)
    columns = episode_columns([episode])
    assert columns[SHAPED_REWARDS].tolist() == [-1.0, 42.0, 0.0]
    assert columns[MATCHED].tolist() == [False, True, False]
    assert np.allclose(columns[UTILITY], [[0, 0, 0], [0.5, 0.25, 0.1], [0, 0, 0]])
    assert np.allclose(columns[STATE][:, 0], [0.0, 1.0, 2.0])



def test_a_run_where_no_trial_reported_the_metric_compares_its_first_trial(tmp_path, capsys):
    """A run too short for any episode to end (e.g. one iteration of 100 DASC subtask decisions) reports no
    training metric: the comparison takes the first trial and says so, instead of ending a finished run in
    Tune's 'No best trial found' RuntimeError."""
    from types import SimpleNamespace

    from rl_cs.experiment.dasc import DASC
    from rl_cs.experiment.rllib_commands import _best_trial

    class NoMetric(list):
        def get_best_result(self, metric, mode):
            raise RuntimeError(f"No best trial found for the given metric: {metric}.")

    results = NoMetric([SimpleNamespace(path=str(tmp_path / "trial_0")), SimpleNamespace(path=str(tmp_path / "t1"))])
    assert _best_trial(DASC, results) == tmp_path / "trial_0"
    assert "no trial reported env_runners/revenue" in capsys.readouterr().err
