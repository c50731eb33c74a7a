"""`rl-cs train|evaluate|bench --world dasc`: the DASC world (RMO, paper 001) and its non-learned baselines.

``train`` runs heuristics: each method on ``experiment.seeds`` runs of ``evaluation.episodes`` seeded episodes
through the one evaluation path (rl_cs.evaluation), and writes ``<results-dir>/<name>/``: experiment.json,
runs.csv (one row per method, run and episode) and assignments.parquet (every matched subtask). A folder is
never overwritten (rl_cs.experiment.tune_runner.experiment_folder). A learned method is refused: RMO's RLlib
training lands in the next step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from envs.dasc import DASCEnv, env_config
from rl_cs import registry
from rl_cs.atomic import write_atomically
from rl_cs.config import to_dict
from rl_cs.errors import InputError, require
from rl_cs.experiment.dasc_config import DASCExperimentConfig
from rl_cs.experiment.tune_runner import experiment_folder, writable_parent

WORLD = "dasc"
TABLE_METRICS = ("revenue", "revenue_share", "completion_rate", "subtask_match_rate", "recommendation_success",
                 "travel_km", "mean_lateness_s")


def make_env(config: DASCExperimentConfig, data_dir: str | None = None) -> DASCEnv:
    """The configured world (for `rl-cs check`, evaluation and RLlib users)."""
    return DASCEnv(env_config(config.world, data_dir))


def load(path: str | None, overrides: list[str] = ()) -> DASCExperimentConfig:
    """The experiment config of ``path`` (default: tune_configs/dasc_quick.yaml) with ``--set`` overrides."""
    return registry.get_world(WORLD).load_config(path, overrides)


def heuristic(name: str, where: str = "method", config: DASCExperimentConfig | None = None):
    """The planner of a DASC baseline, with the config's ``baselines`` settings if it has any; a learned
    method is an InputError (its training is not here yet)."""
    method = registry.get_method(name, WORLD, where=where)
    if method.learned:
        baselines = ", ".join(m.name for m in registry.methods_for(WORLD) if not m.learned)
        raise InputError(where, f"'{name}' is a learned method: RMO training on the DASC world lands in the next "
                         "step", f"run a baseline: {baselines}")
    return method.make_heuristic(config.baselines if config is not None and method.settings else None)


def run_method(env: DASCEnv, name: str, config: DASCExperimentConfig, seeds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``seeds`` runs of one heuristic through rl_cs.evaluation: (metrics per episode, assignment log)."""
    from rl_cs.evaluation import evaluate as evaluate_actor

    tables, logs = [], []
    for run in range(seeds):
        table, log = evaluate_actor(env, heuristic(name, config=config), config.evaluation.seeds(run))
        tables.append(table.assign(method=name, run=run))
        logs.append(log.assign(method=name, run=run))
    return pd.concat(tables, ignore_index=True), pd.concat(logs, ignore_index=True)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over each run's episodes, then mean and std over runs, per method (in first-seen order)."""
    per_run = runs.groupby(["method", "run"], sort=False)[list(TABLE_METRICS)].mean().reset_index()
    grouped = per_run.groupby("method", sort=False)[list(TABLE_METRICS)]
    return grouped.mean().join(grouped.std(ddof=0).add_suffix("_std")).reset_index()


def train(args: argparse.Namespace) -> int:
    config = load(args.config, args.set)
    names = list(config.experiment.methods) if args.method == "all" else [args.method]
    for name in names:
        heuristic(name)
    seeds = args.seeds or config.experiment.seeds
    require(seeds >= 1, "--seeds", f"must be >= 1, got {seeds}")
    name = args.name or config.experiment.name or f"{args.method}-{WORLD}"
    out = experiment_folder(args.results_dir, name, resume=False)
    writable_parent(out)
    env = make_env(config, args.data_dir)
    start = time.perf_counter()
    tables, logs, seconds = [], [], {}
    for method in names:
        began = time.perf_counter()
        table, log = run_method(env, method, config, seeds)
        seconds[method] = time.perf_counter() - began
        tables.append(table)
        logs.append(log)
    runs, log = pd.concat(tables, ignore_index=True), pd.concat(logs, ignore_index=True)
    require(not out.exists(), str(out), "appeared while the methods ran (another run of the same name?)",
            "choose another --name; nothing was overwritten")
    out.mkdir(parents=True)
    write_atomically(out / "runs.csv", lambda p: runs.to_csv(p, index=False))
    write_atomically(out / "assignments.parquet", lambda p: log.to_parquet(p, index=False))
    metadata = {"world": WORLD, "kind": "heuristics", "method": args.method, "methods": names,
                "data": env.scenario.source, "config": to_dict(dataclasses.replace(
                    config, experiment=dataclasses.replace(config.experiment, seeds=seeds, methods=names))),
                "wall_seconds": {"total": time.perf_counter() - start, **seconds}}
    write_atomically(out / "experiment.json", lambda p: p.write_text(json.dumps(metadata, indent=2)))
    print(f"DASC world on {env.scenario.source}; N_w = {config.world.num_workers}, {config.world.num_tasks} tasks; "
          f"{seeds} run(s) x {config.evaluation.episodes} episode(s) per method")
    print(summary(runs).round(3).to_string(index=False))
    print(f"results in {out}; table: rl-cs report {out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """One baseline on ``--episodes`` seeded episodes from ``--seed``, through rl_cs.evaluation; ``--log``
    writes the per-subtask assignment log (parquet)."""
    from rl_cs.evaluation import evaluate as evaluate_actor

    heuristic(args.policy, where="policy")  # a bad name is refused before the config is read
    config = load(args.config, args.set)
    actor = heuristic(args.policy, where="policy", config=config)
    if args.log:
        writable_parent(Path(args.log).resolve(), where="--log")
        require(not Path(args.log).is_dir(), "--log", f"{args.log} is a folder", "give a file name, e.g. dasc.parquet")
    env = make_env(config, args.data_dir)
    table, log = evaluate_actor(env, actor, [args.seed + episode for episode in range(args.episodes)])
    print(f"{args.policy} on the DASC world ({env.scenario.source}), N_w = {config.world.num_workers}, "
          f"{config.world.num_tasks} tasks, eta = ({env.alpha}, {env.beta})")
    print(table[["seed", "revenue", "max_payable", "revenue_share", "completion_rate", "subtask_match_rate",
                 "travel_km", "mean_lateness_s", "invalid_actions"]].round(3).to_string(index=False))
    if args.log:
        write_atomically(Path(args.log), lambda p: log.to_parquet(p, index=False))
    return 0


def bench(args: argparse.Namespace) -> int:
    """The raw world: env steps and subtask decisions per second (every decider recommended, the world's
    Kuhn-Munkres matching; and uniformly random recommendations), and Kuhn-Munkres time per matching step
    (utility matrix + linear_sum_assignment) at ``--workers`` workers and ``--tasks`` tasks."""
    config = load(args.config, [f"world.num_workers={args.workers}", f"world.num_tasks={args.tasks}", *args.set])
    env = make_env(config, args.data_dir)
    rows = []
    for policy in ("recommend all", "random"):
        rng = np.random.default_rng(0)
        steps = decisions = episodes = 0
        matching_s, matching_steps, sizes = 0.0, 0, []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds or episodes == 0:
            obs, _ = env.reset(seed=episodes)
            done = False
            while not done:
                decisions += len(obs)
                actions = ({agent: 1 for agent in obs} if policy == "recommend all"
                           else {agent: int(rng.integers(2)) for agent in obs})
                obs, _, terminated, truncated, _ = env.step(actions)
                steps += 1
                done = terminated["__all__"] or truncated["__all__"]
            episodes += 1
            matching_s += env.stats.matching_s
            matching_steps += env.stats.matching_steps
            sizes.extend(env.stats.matching_sizes)
        elapsed = time.perf_counter() - start
        size = np.array(sizes or [(0, 0)], dtype=np.float64)
        rows.append({"policy": policy, "episodes": episodes, "env steps/s": steps / elapsed,
                     "subtask decisions/s": decisions / elapsed,
                     "KM ms/matching step": 1000.0 * matching_s / max(matching_steps, 1),
                     "recommended x idle (mean)": f"{size[:, 0].mean():.1f} x {size[:, 1].mean():.1f}",
                     "largest": f"{int(size[:, 0].max())} x {int(size[:, 1].max())}"})
    print(f"DASC world on {env.scenario.source}; N_w = {args.workers}, {args.tasks} tasks, decision interval "
          f"{config.world.decision_interval_s:.0f} s; at least {args.seconds:.0f} s per policy")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))
    return 0
