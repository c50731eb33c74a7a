"""`rl-cs bench`: worker decisions per second of the CSC world, raw and through RLlib sampling.

Raw: a plain loop stepping the world with a trivial policy (nearest option), i.e. the world's own cost.
RLlib: PPO's local EnvRunner sampling with the attention RLModule (module forward, connectors and
episode bookkeeping included), for one and several vectorised worlds per runner. The ratio RLlib/raw is
the figure to watch; absolute numbers depend on the machine.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd

from envs.csc import CSCEnv, env_config
from envs.csc_config import MAX_EPISODE_TASKS, MAX_WORKERS
from rl_cs.errors import require
from rl_cs.experiment.config import load_experiment


def raw_decisions_per_second(env: CSCEnv, seconds: float) -> float:
    decisions, seed, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            decisions += len(obs)
            obs, _, terminated, truncated, _ = env.step({agent: 1 for agent in obs})
            done = terminated["__all__"] or truncated["__all__"]
        seed += 1
    return decisions / (time.perf_counter() - start)


def rllib_decisions_per_second(config, data_dir, num_envs: int, seconds: float) -> float:
    """Agent steps per second of ``EnvRunner.sample`` on the local runner (one core)."""
    import envs
    from rl_cs.experiment.ppo import ppo_config

    envs.register()
    training = dataclasses.replace(config.training, num_env_runners=0, num_envs_per_env_runner=num_envs)
    algo = ppo_config(dataclasses.replace(config, training=training), env_config(config.world, data_dir),
                      seed=0).build_algo()
    runner = algo.env_runner
    runner.sample(num_timesteps=50)  # warm-up: module tracing, first resets
    decisions, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        episodes = runner.sample(num_timesteps=200 * num_envs)
        decisions += sum(episode.agent_steps() for episode in episodes)
    rate = decisions / (time.perf_counter() - start)
    algo.stop()
    return rate


def check_args(args) -> None:
    """The bench flags, before any world is built: a finite time budget, a world size the machine can hold."""
    require(math.isfinite(args.seconds) and args.seconds > 0, "--seconds",
            f"must be a finite number of seconds > 0, got {args.seconds}", "e.g. --seconds 10")
    require(1 <= args.workers <= MAX_WORKERS, "--workers", f"must be in 1..{MAX_WORKERS:,}, got {args.workers}",
            "the default is 200")
    require(1 <= args.tasks <= MAX_EPISODE_TASKS, "--tasks", f"must be in 1..{MAX_EPISODE_TASKS:,}, got {args.tasks}",
            "the default is 200")


def run_bench(args) -> int:
    from rl_cs.experiment.tune_runner import start_ray

    check_args(args)
    config = load_experiment(args.config, [f"world.num_workers={args.workers}", f"world.num_tasks={args.tasks}",
                                           *args.set])
    env = CSCEnv(env_config(config.world, args.data_dir))
    print(f"CSC world: {env.scenario.source}; N_w={args.workers}, N_tau={args.tasks}, "
          f"decision interval {config.world.decision_interval_s:.0f} s; {args.seconds:.0f} s per measurement")
    raw = raw_decisions_per_second(env, args.seconds)
    rows = [{"measurement": "raw env loop", "worker decisions/s": raw, "ratio to raw": 1.0}]
    start_ray()
    for num_envs in (1, 4):
        rate = rllib_decisions_per_second(config, args.data_dir, num_envs, args.seconds)
        rows.append({"measurement": f"RLlib sampling, 1 runner, {num_envs} env(s)", "worker decisions/s": rate,
                     "ratio to raw": rate / raw})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    return 0 if np.isfinite(raw) else 1
