"""Cost of RMO (issue 10, "Performance"; a benchmark, not a test).

On the DASC world (default: Table 2's middle point, 300 workers and 60 tasks):
- the learner update of one RMO iteration (Algorithm 1: theta, theta-hat, the Eq. 6-7 meta-gradient by double
  backward, the Eq. 14-19 eta step) against a plain MAPPO iteration (the same network and critic,
  ``rmo.training_signal=sparse``: theta alone on the sparse reward) on the same recorded episodes (target: at
  most 2.5x);
- subtask decisions per second sampled through RLlib (one local env runner, RMO's GAT actor acting) against
  the raw world stepping the same number of decisions with uniformly random recommendations, as a ratio;
- Kuhn-Munkres time per matching step (utility matrix + linear_sum_assignment) in the raw world.

    .venv/bin/python benchmarks/rmo_cost.py [--workers 300 --tasks 60 --batch 2000 --repeats 3]
                                            [--data-dir ../shared/data/chengdu] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

import envs
from envs.dasc import DASCEnv, env_config
from rl_cs.experiment.dasc import load, rmo_config
from rl_cs.experiment.tune_runner import start_ray
from timing import learner_update, timed


def build(config, signal: str, data_dir):
    config = dataclasses.replace(config, rmo=dataclasses.replace(config.rmo, training_signal=signal))
    return rmo_config(config, env_config(config.world, data_dir), 0).build_algo()


def decisions_in(episodes) -> int:
    return sum(len(agent) for episode in episodes for agent in episode.agent_episodes.values())


def raw_world(config, data_dir, decisions: int, seed: int = 0) -> tuple[float, float, int]:
    """(decisions/s, KM ms per matching step, matching steps) of the raw world, random recommendations."""
    env = DASCEnv(env_config(config.world, data_dir))
    rng = np.random.default_rng(seed)
    done_decisions, matching_s, matching_steps, episode = 0, 0.0, 0, 0
    start = time.perf_counter()
    while done_decisions < decisions:
        obs, _ = env.reset(seed=episode)
        done = False
        while not done and done_decisions < decisions:
            done_decisions += len(obs)
            obs, _, terminated, truncated, _ = env.step({agent: int(rng.integers(2)) for agent in obs})
            done = terminated["__all__"] or truncated["__all__"]
        matching_s, matching_steps, episode = matching_s + env.stats.matching_s, matching_steps + env.stats.matching_steps, episode + 1
    elapsed = time.perf_counter() - start
    return done_decisions / elapsed, 1000.0 * matching_s / max(matching_steps, 1), matching_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--minibatch", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load(None, [f"world.num_workers={args.workers}", f"world.num_tasks={args.tasks}",
                         f"rmo.training.train_batch_size={args.batch}", f"rmo.training.minibatch_size={args.minibatch}",
                         f"rmo.training.num_epochs={args.epochs}", "rmo.training.num_envs_per_env_runner=1", *args.set])
    start_ray()
    envs.register()
    rmo, mappo = build(config, "meta", args.data_dir), build(config, "sparse", args.data_dir)
    for algo in (rmo, mappo):
        algo.train()  # warm-up: first resets, module set-up
    start = time.perf_counter()
    episodes = rmo.env_runner.sample(num_timesteps=args.batch)
    sample_s = time.perf_counter() - start
    decisions = decisions_in(episodes)
    updates = {name: timed(lambda: learner_update(algo, episodes), args.repeats)
               for name, algo in (("mappo", mappo), ("rmo", rmo))}
    raw_rate, km_ms, km_steps = raw_world(config, args.data_dir, decisions)
    rllib_rate = decisions / sample_s
    print(f"DASC world ({'Chengdu' if args.data_dir else 'synthetic'}) N_w={args.workers}, {args.tasks} tasks; "
          f"{decisions} subtask decisions in the recorded batch (train batch {args.batch} decisions), minibatch "
          f"{args.minibatch}, {args.epochs} epoch(s); median of {args.repeats}")
    frame = pd.DataFrame([
        {"measurement": "learner update on the same episodes, s", "mappo": updates["mappo"], "rmo": updates["rmo"],
         "ratio": updates["rmo"] / updates["mappo"]},
        {"measurement": "subtask decisions/s (RLlib sampling | raw world)", "mappo": rllib_rate, "rmo": raw_rate,
         "ratio": rllib_rate / raw_rate},
    ])
    print(frame.to_markdown(index=False, floatfmt=".3f"))
    print(f"RMO learner update / plain MAPPO (target <= 2.5x): {updates['rmo'] / updates['mappo']:.2f}x")
    print(f"RLlib sampling with RMO's actor: {rllib_rate:.0f} decisions/s; raw world: {raw_rate:.0f} decisions/s "
          f"(ratio {rllib_rate / raw_rate:.3f})")
    print(f"Kuhn-Munkres per matching step (raw world, {km_steps} steps): {km_ms:.2f} ms")
    rmo.stop()
    mappo.stop()


if __name__ == "__main__":
    main()
