"""Smoke tests parametrised over the registries (BenchMARL's method x task rule): every method on every
world it runs on, with one tiny budget per world, asserting behaviour that could fail.

Heuristics: one seeded episode through the evaluation path every method shares; finite metrics, the
world's action mask honoured, something achieved. Learned methods: one `rl-cs train all` run (one
iteration each, one fixture) on the tiny CSC world; every trial sampled and trained, its losses are finite,
its held-out figures exist, and a reward-shaping method's learner really rewrote the world's reward.
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


@pytest.fixture(scope="module")
def trained_all(tmp_path_factory):
    """Every learned CSC method, one iteration each, in one `rl-cs train all` run."""
    results = tmp_path_factory.mktemp("smoke")
    names = [name for name, world in LEARNED if world == "csc"]
    path, overrides = TINY["csc"]
    sets = [item for override in overrides for item in ("--set", override)]
    assert cli("train", "all", "--world", "csc", "--config", path, "--results-dir", str(results), "--name", "smoke",
               "--set", f"experiment.methods=[{', '.join(names)}]", *sets) == 0
    return results / "smoke"


@pytest.mark.slow
@pytest.mark.parametrize("method, world", LEARNED, ids=[f"{m}-{w}" for m, w in LEARNED])
def test_learned_method_trains_on_its_world(method, world, trained_all):
    assert world == "csc", "a new RLlib world needs its own fixture run here"
    spec = registry.get_method(method)
    trial = next((trained_all / method).glob("*/params.json")).parent
    progress = pd.read_csv(trial / "progress.csv")
    assert progress["training_iteration"].tolist() == [1]
    assert (progress["num_env_steps_sampled_lifetime"] > 0).all()
    result = json.loads((trial / "result.json").read_text().splitlines()[-1])
    learners = result["learners"]
    for key in ("policy_loss", "vf_loss", "total_loss"):
        assert math.isfinite(learners["shared"][key]), f"{method}: {key} = {learners['shared'][key]}"
    heldout = json.loads((trial / "heldout.json").read_text())
    assert all(math.isfinite(heldout[name]) for name in registry.get_world(world).metrics)
    shapers = set(learners) - {"shared", "__all_modules__"}
    if spec.section:  # a reward-shaping method: its module rewrote the rewards PPO trained on
        assert len(shapers) == 1, shapers
        change = learners[shapers.pop()]["reward_change_abs_mean"]
        assert change > 0, f"{method} left the world's reward unchanged"
    else:
        assert not shapers
