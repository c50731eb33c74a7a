"""Smoke tests parametrised over the registries (BenchMARL's method x task rule): every method on every
world it runs on, with one tiny budget per world, asserting behaviour that could fail.

Heuristics: one seeded episode through the evaluation path every method shares; finite metrics, the
world's action mask honoured, something achieved. Learned methods: one `rl-cs train all` run per RLlib
world (one iteration each; the tiny CSC world; LBF, RWARE, ride-hailing and vaccine with tiny batches); every
trial sampled and trained, its losses are finite, its held-out figures exist, a reward-shaping method's
learner really rewrote the world's reward, and DyPS's selector and SePS's grouping did their part.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from rl_cs import registry
from rl_cs.cli import main
from rl_cs.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]
TINY = {"csc": [str(REPO / "tests" / "configs" / "csc_tiny.yaml"), []],
        "sensing": [None, ["world.cycles=15", "synthetic.num_cycles=20"]],
        "lbf": [None, ["world.max_episode_steps=20"]],
        "rware": [None, ["world.max_steps=40"]],
        "dasc": [None, ["world.num_workers=40", "world.num_tasks=8"]],
        "ridehailing": [None, ["world.episode_steps=6"]],
        "vaccine": [None, ["world.days=20"]]}
"""One tiny budget per world: (config file, --set overrides)."""

HEURISTICS = [(m.name, w) for m in registry.methods().values() if not m.learned for w in m.worlds]
LEARNED = [(m.name, w) for m in registry.methods().values() if m.learned for w in m.worlds]


def test_every_world_has_a_tiny_budget():
    assert set(TINY) == set(registry.worlds()), "add the new world's tiny budget to TINY"


def _config(world: str):
    path, overrides = TINY[world]
    return registry.get_world(world).load_config(path, overrides)


def _actor(method: registry.Method, world: str, config):
    if world == "sensing":
        from policies.qcota.actor import SchemeActor

        return SchemeActor(method.make_heuristic(config.qcota), method.name, config.world.num_participants,
                           len(config.world.attributes))
    return method.make_heuristic()


@pytest.mark.parametrize("method, world", HEURISTICS, ids=[f"{m}-{w}" for m, w in HEURISTICS])
def test_heuristic_runs_an_episode_on_its_world(method, world):
    spec, config = registry.get_method(method), _config(world)
    env = registry.get_world(world).make_env(config, None)
    metrics, log = evaluate(env, _actor(spec, world, config), [3])
    row = metrics.iloc[0]
    for name in registry.get_world(world).metrics:
        assert math.isfinite(row[name]), f"{name} = {row[name]}"
    assert len(log) > 0, "the episode log is empty: nothing happened"
    if world == "csc":
        assert row["invalid_actions"] == 0, "a planner chose an action outside the mask"
        assert row["revenue"] > 0 and 0 < row["completion_rate"] <= 1
    if world == "sensing":
        assert row["error"] > 0 and row["cost_km"] >= 0 and row["cycles"] == 15


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


LEARNED_BUDGET = {
    "csc": [],
    "lbf": ["training.num_envs_per_env_runner=1", "training.rollout_fragment_length=20", "training.minibatch_size=50",
            "training.train_batch_size=100", "training.num_epochs=1", "experiment.iterations=1",
            "evaluation.episodes=1", "seps.pretraining_steps=50"],
    "rware": ["training.num_envs_per_env_runner=1", "training.rollout_fragment_length=40", "training.minibatch_size=40",
              "training.train_batch_size=80", "training.num_epochs=1", "experiment.iterations=1",
              "evaluation.episodes=1", "seps.pretraining_steps=40"],
    "ridehailing": ["training.num_envs_per_env_runner=1", "training.rollout_fragment_length=6",
                    "training.minibatch_size=12", "training.train_batch_size=12", "training.num_epochs=1",
                    "experiment.iterations=1", "evaluation.episodes=1", "seps.pretraining_steps=6", "seps.clusters=4"],
    "vaccine": ["training.num_envs_per_env_runner=1", "training.rollout_fragment_length=20",
                "training.minibatch_size=20", "training.train_batch_size=20", "training.num_epochs=1",
                "experiment.iterations=1", "evaluation.episodes=1", "seps.pretraining_steps=20", "seps.clusters=4"],
    "dasc": ["rmo.training.minibatch_size=200", "rmo.training.train_batch_size=400", "rmo.training.num_epochs=1",
             "experiment.iterations=1", "evaluation.episodes=1"],
}
"""Per RLlib world with learned methods: --set overrides on top of TINY for its one `train all` run (one
iteration per method; a SePS run leaves its pre-sampling phase within it)."""


@pytest.fixture(scope="module")
def trained_all(tmp_path_factory):
    """``trained_all(world)``: the folder of one `rl-cs train all` run of every learned method of ``world``,
    one iteration each (run on first use, once per world)."""
    results = tmp_path_factory.mktemp("smoke")
    runs: dict[str, Path] = {}

    def run(world: str) -> Path:
        if world not in runs:
            names = [name for name, w in LEARNED if w == world]
            path, overrides = TINY[world]
            sets = [item for override in [*overrides, *LEARNED_BUDGET[world]] for item in ("--set", override)]
            config = ["--config", path] if path else []
            assert cli("train", "all", "--world", world, *config, "--results-dir", str(results), "--name",
                       f"smoke-{world}", "--set", f"experiment.methods=[{', '.join(names)}]", *sets) == 0
            runs[world] = results / f"smoke-{world}"
        return runs[world]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("method, world", LEARNED, ids=[f"{m}-{w}" for m, w in LEARNED])
def test_learned_method_trains_on_its_world(method, world, trained_all):
    assert world in LEARNED_BUDGET, "a new RLlib world needs its own budget in LEARNED_BUDGET (one fixture run)"
    spec = registry.get_method(method)
    trial = next((trained_all(world) / method).glob("*/params.json")).parent
    progress = pd.read_csv(trial / "progress.csv")
    assert progress["training_iteration"].tolist() == [1]
    assert (progress["num_env_steps_sampled_lifetime"] > 0).all()
    result = json.loads((trial / "result.json").read_text().splitlines()[-1])
    learners = result["learners"]
    heldout = json.loads((trial / "heldout.json").read_text())
    assert all(math.isfinite(heldout[name]) for name in registry.get_world(world).metrics)
    if world == "dasc":
        _check_rmo_method(method, learners)
        return
    if world != "csc" or spec.section == "dyps":  # DyPS on CSC: M attention group modules (policies.dyps.csc)
        _check_sharing_method(method, learners)
        return
    for key in ("policy_loss", "vf_loss", "total_loss"):
        assert math.isfinite(learners["shared"][key]), f"{method}: {key} = {learners['shared'][key]}"
    shapers = set(learners) - {"shared", "__all_modules__"}
    if spec.section:  # a reward-shaping method: its module rewrote the rewards PPO trained on
        assert len(shapers) == 1, shapers
        change = learners[shapers.pop()]["reward_change_abs_mean"]
        assert change > 0, f"{method} left the world's reward unchanged"
    else:
        assert not shapers


def _check_rmo_method(method: str, learners: dict) -> None:
    """RMO and REC: the meta-learner's inner (theta_hat) and outer (theta) losses are finite; RMO moved its
    matching utility eta (a non-zero meta-gradient), REC (greedy matching, no eta) has none."""
    shared = learners["shared"]
    for key in ("loss_theta", "loss_theta_hat", "vf_loss", "total_loss", "meta_norm"):
        assert math.isfinite(shared[key]), f"{method}: {key} = {shared[key]}"
    assert math.isfinite(learners["theta_hat"]["total_loss"]) and shared["non_finite_meta"] == 0
    world = registry.get_world("dasc").load_config(None, TINY["dasc"][1]).world
    if method == "rec":  # greedy matching: eta is not learned, it stays the world's
        assert (shared["alpha"], shared["beta"]) == pytest.approx((world.alpha, world.beta))
    else:
        assert shared["eta_grad_alpha"] != 0 or shared["eta_grad_beta"] != 0, "RMO's eta got no meta-gradient"


def _check_sharing_method(method: str, learners: dict) -> None:
    """DyPS and the sharing baselines: every policy module that trained has finite losses; the helper module
    did its part (DyPS: selector and ELBO steps; SePS: groups fixed after pre-sampling)."""
    trained = [m for m, values in learners.items() if isinstance(values, dict) and "policy_loss" in values]
    assert trained, f"{method}: no policy module trained"
    for module in trained:
        for key in ("policy_loss", "vf_loss", "total_loss"):
            assert math.isfinite(learners[module][key]), f"{method} {module}: {key} = {learners[module][key]}"
    if method.startswith("dyps"):
        assert learners["dyps"]["selector_updates"] > 0 and math.isfinite(learners["dyps"]["selector_actor_loss"])
        assert all(m.startswith("group_") for m in trained)
    elif method == "seps":
        assert learners["seps"]["num_groups"] >= 1
    else:
        expected = {"ps": {"shared"}, "ps-id": {"shared"}}.get(method)
        assert expected is None or set(trained) == expected
