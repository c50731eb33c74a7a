"""DyPS on the CSC world (policies/dyps/csc.py): M attention group policies over the workers, whose histories are
their own decisions. RLlib's agent -> module mapping is the episode's draw for every worker, also for workers
that first decide late in the episode, fixed over all the chunks of an episode and drawn again for the next;
R is the revenue the episode paid out; the evaluation actor keeps the same (decision, reward) histories as
training; `rl-cs train dyps --world csc` trains end to end and `rl-cs evaluate` reads its checkpoint; bad M
exits 2 before Ray starts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_dyps_rllib import force_group

from policies.dyps.rllib import DYPS, RECORD, episode_trajectories
from policies.sharing.schemes import GROUPS, agent_index, group_module
from rl_cs.cli import main
from rl_cs.config import to_dict
from rl_cs.experiment.config import load_experiment
from rl_cs.registry import REPOSITORY, get_method

TINY = str(REPOSITORY / "tests" / "configs" / "csc_tiny.yaml")


def _algorithm_config(method: str = "dyps", sets=()):
    import envs

    envs.register()
    config = load_experiment(TINY, list(sets))
    return config, get_method(method, "csc").build_algorithm(config, {"world": to_dict(config.world)}, 0)


def _modules(chunk) -> dict:
    return {agent: chunk.module_for(agent) for agent in chunk.agent_ids}


def test_mapping_is_the_episodes_draw_for_every_worker_fixed_within_it_and_redrawn_for_the_next():
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    _, algo_config = _algorithm_config(sets=["dyps.num_groups=3"])
    runner = MultiAgentEnvRunner(config=algo_config.env_runners(rollout_fragment_length=5))
    module = runner.module[DYPS]
    chunks = []

    def sample(steps: int) -> None:
        for _ in range(steps // 5):
            chunks.extend(runner.sample(num_timesteps=5, random_actions=True))

    sample(150)
    by_episode: dict = {}
    for chunk in chunks:
        groups = chunk.custom_data[GROUPS]
        assert len(groups) == 20  # drawn for all 20 workers at the episode's creation
        assert _modules(chunk) == {a: group_module(groups[agent_index(a)]) for a in chunk.agent_ids}
        by_episode.setdefault(chunk.id_, []).append(chunk)
    late = 0
    for parts in by_episode.values():
        seen: dict = {}
        for chunk in parts:
            for agent, module_id in _modules(chunk).items():
                assert seen.setdefault(agent, module_id) == module_id, "a worker changed module within an episode"
        first = set(parts[0].agent_ids)
        late += sum(agent not in first for agent in seen)
    assert late, "no worker first decided after its episode's first chunk"
    assert any(len(parts) > 1 for parts in by_episode.values()), "no episode was cut into chunks"
    # R: the revenue of the episode (the sum of every worker's rewards over all its chunks)
    done = [parts for parts in by_episode.values() if parts[-1].is_done]
    assert done
    for parts in done:
        rewards = sum(float(np.sum(r)) for _, _, r in episode_trajectories(parts).values())
        assert parts[-1].custom_data[RECORD]["return"] == pytest.approx(rewards)
    revenue = runner.get_metrics()["revenue"].peek()
    assert np.mean([p[-1].custom_data[RECORD]["return"] for p in done]) == pytest.approx(revenue, rel=1e-5)
    # the selector now puts everyone in group 1: the episode already drawn (running, or created when the last
    # one ended) keeps its draw, the ones created after the change map every worker to group_1
    force_group(module, 1)
    chunks.clear()
    sample(200)
    order = list(dict.fromkeys(c.id_ for c in chunks))
    assert len(order) >= 3
    drawn_before = [c for c in chunks if c.id_ == order[0]]
    assert all(c.custom_data[GROUPS] == drawn_before[0].custom_data[GROUPS] for c in drawn_before)
    assert any(g != 1 for g in drawn_before[0].custom_data[GROUPS])  # (drawn near-uniformly over 3 groups)
    assert all(set(_modules(c).values()) == {"group_1"} for c in chunks if c.id_ != order[0])
    runner.stop()


def test_evaluation_actor_maps_late_workers_and_keeps_their_decision_histories():
    """The actor's histories on CSC are each worker's decisions (observation, action), the rewards it received
    between them summed (read from the env's steps), and the final observation: together the episode's
    revenue; a worker that first decides late is mapped from the episode's one draw."""
    from envs.csc import CSCEnv
    from policies.dyps.actor import DyPSActor
    from rl_cs.evaluation import run_episode

    config, algo_config = _algorithm_config()
    modules = {mid: spec.build() for mid, spec in algo_config.rl_module_spec.rl_module_specs.items()}
    actor = DyPSActor(modules, {"agent_id": False, "global_state": False})
    env = CSCEnv({"world": to_dict(config.world)})
    mappings = []
    act = actor.act

    def act_and_watch(view, obs):
        actions = act(view, obs)
        assert set(actions) == set(obs)
        mappings.append(dict(actor.mapping))
        return actions

    actor.act = act_and_watch
    metrics = run_episode(env, actor, seed=3)
    assert len(mappings[0]) < len(mappings[-1]), "every worker decided in the first step"
    for earlier, later in zip(mappings, mappings[1:]):  # mapped once, never changed within the episode
        assert all(later[agent] == module for agent, module in earlier.items())
    assert all(module == group_module(actor.record["groups"][agent_index(agent)])
               for agent, module in mappings[-1].items())
    decisions = {agent_index(agent) for agent in mappings[-1]}
    actor.reset(4)
    assert set(actor._history) == decisions
    total = 0.0
    for obs, actions, rewards in actor._history.values():
        assert len(obs) == len(actions) + 1 == len(rewards) + 1 and obs.shape[1] == env.layout.size
        total += float(rewards.sum())
    assert total == pytest.approx(metrics["revenue"], rel=1e-5)
    run_episode(env, actor, seed=4)  # the second episode draws from those histories
    assert actor.record["roles"] is not None and np.isfinite(actor.record["roles"]).all()


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.mark.parametrize("override, field", [
    ("dyps.num_groups=0", "dyps.num_groups"), ("dyps.num_groups=21", "dyps.num_groups"),
    ("dyps.group_policy=mappo", "dyps.group_policy"), ("grid={world.num_workers: [20, 30]}", "grid.world.num_workers")])
def test_bad_m_exits_2_naming_the_field_before_ray_starts(override, field, capsys, tmp_path, monkeypatch):
    from rl_cs.experiment import tune_runner

    monkeypatch.setattr(tune_runner, "start_ray", lambda: pytest.fail("Ray started"))
    assert cli("train", "dyps", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path / "r"),
               "--set", override) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_m_equal_to_the_number_of_workers_builds():
    _, algo_config = _algorithm_config(sets=["dyps.num_groups=20"])
    specs = algo_config.rl_module_spec.rl_module_specs
    assert set(specs) == {DYPS, *(group_module(m) for m in range(20))}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dyps", "dyps-wo-cvae", "dyps-wo-vlstm"])
def test_tiny_cli_training_has_finite_losses_and_a_held_out_evaluation(method, tmp_path, capsys):
    results = tmp_path / "r"
    assert cli("train", method, "--world", "csc", "--config", TINY, "--results-dir", str(results),
               "--set", "experiment.iterations=1") == 0
    trial = next((results / f"{method}-csc").glob("*/params.json")).parent
    learners = json.loads((trial / "result.json").read_text().splitlines()[-1])["learners"]
    groups = [m for m in learners if m.startswith("group_")]
    assert groups and all(math.isfinite(learners[g][key]) for g in groups for key in ("policy_loss", "vf_loss"))
    dyps = learners[DYPS]
    assert dyps["selector_updates"] > 0
    parts = ["selector_actor_loss", "selector_critic_loss"] + (["vlstm_elbo"] if method != "dyps-wo-vlstm" else []) \
        + (["cvae_elbo"] if method != "dyps-wo-cvae" else [])
    assert all(math.isfinite(dyps[key]) for key in parts), {key: dyps.get(key) for key in parts}
    heldout = json.loads((trial / "heldout.json").read_text())
    assert math.isfinite(heldout["revenue"]) and heldout["episodes"] == 1
    out = capsys.readouterr().out
    assert f"{method} vs greedy" in out
    if method != "dyps":
        return
    checkpoint = sorted(trial.glob("checkpoint_*"))[-1]
    assert cli("evaluate", str(checkpoint), "--world", "csc", "--config", TINY, "--episodes", "1") == 0
    shown = capsys.readouterr().out
    assert f"dyps ({checkpoint.name})" in shown and "revenue" in shown
