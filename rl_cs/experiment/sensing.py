"""`rl-cs train|evaluate|bench --world sensing`: QCO-TA and its baselines on the sensing world.

``train`` validates everything first (config, data, grid against the data), then calibrates Gamma_a and the
attribute subsets on UNS-TA (see ``sensing_calibration``), runs the grid (or a hyperparameter search when the
config has ``search.space``: rl_cs.experiment.sensing_tune, search.csv), and writes ``<results-dir>/<name>/``: experiment.json, runs.csv, cycles.parquet,
calibration.csv. Files are written to a temporary name and moved into place.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from envs.sensing import SensingWorld, run_online
from envs.sensing_rllib import SensingMultiAgentEnv, env_config, load_sensing_field
from policies.qcota.schemes import DISPLAY_NAMES, SCHEMES, make_scheme
from rl_cs.atomic import write_atomically
from rl_cs.data.sensing_field import SensingField
from rl_cs.errors import closest, require
from rl_cs.experiment.sensing_config import SensingExperimentConfig, load_config, to_dict
from rl_cs.experiment.tune_runner import experiment_folder, writable_parent


def load_field(data_dir: str | None, config: SensingExperimentConfig) -> SensingField:
    """The Piemonte data from ``--data-dir`` (or RLCS_DATA_DIR), else the embedded synthetic field."""
    return load_sensing_field(data_dir, config.synthetic)


def make_env(config: SensingExperimentConfig, data_dir: str | None = None) -> SensingMultiAgentEnv:
    """The RLlib view of the configured world (for `rl-cs check` and RLlib users)."""
    return SensingMultiAgentEnv(env_config(config.world, data_dir, config.synthetic))


def check_grid(sensing_field: SensingField, config: SensingExperimentConfig) -> None:
    """Every grid cell is runnable on this field (before anything is written)."""
    grid = config.grid
    sensing_field.attribute_index(grid.attribute_order, "grid.attribute_order")
    for participants in grid.participants:
        require(participants <= sensing_field.num_cells, "grid.participants",
                f"P = {participants} but the data has only {sensing_field.num_cells} cells",
                f"use P <= {sensing_field.num_cells}")
    dataclasses.replace(config.world, attributes=grid.attribute_order[:1],
                        num_participants=min(grid.participants)).check_field(sensing_field)


def train(args: argparse.Namespace) -> int:
    require(args.method in SCHEMES, "method", f"unknown method '{args.method}' for the sensing world",
            closest(args.method, SCHEMES))
    config = load_config(args.config, args.set, args.seeds)
    if args.method != "qcota":
        config = dataclasses.replace(config, grid=dataclasses.replace(config.grid, schemes=(args.method,)))
    sensing_field = load_field(args.data_dir, config)
    check_grid(sensing_field, config)
    out = experiment_folder(args.results_dir, args.name or f"{args.method}-sensing", resume=False)
    writable_parent(out)
    if config.search.enabled:
        from rl_cs.experiment.search import check_method, origin_of
        from rl_cs.registry import get_method

        require(args.method == "qcota", "method", f"a sensing search tunes QCO-TA against UNS-TA, not "
                f"{args.method}", "rl-cs train qcota --world sensing with the search config")
        require({"qcota", "uns-ta"} <= set(config.grid.schemes), f"{args.config or '--set'}: grid.schemes",
                "a search trial reports QCO-TA's error and its ratio to UNS-TA's", "list both qcota and uns-ta")
        check_method(config, get_method(args.method, "sensing"), reads_section=True,
                     origin=origin_of(args.config, args.set))
    start = time.perf_counter()
    config, calibration = _calibrated(sensing_field, config)
    calibrated_at = time.perf_counter()
    if config.search.enabled:  # every trial runs the calibrated world
        from rl_cs.experiment.sensing_tune import run_search

        out.mkdir(parents=True)
        table, summary, failed = run_search(sensing_field, config, out)
        if failed:
            print(f"rl-cs: {len(failed)} search trial(s) failed; first error:\n{failed[0]}", file=sys.stderr)
            return 1
        write_atomically(out / "search.csv", lambda p: table.to_csv(p, index=False))
        if calibration is not None:
            write_atomically(out / "calibration.csv", lambda p: calibration.candidates.to_csv(p, index=False))
        _write_json(out, {"world": "sensing", "kind": "search", "method": args.method, "data": sensing_field.source,
                          "config": to_dict(config), "search": summary, "calibration": _record(calibration),
                          "wall_seconds": time.perf_counter() - start})
        best = table.iloc[0]
        print(table.to_markdown(index=False, floatfmt=".4g"))
        print(f"\nBest configuration ({best['trial']}): "
              + ", ".join(f"{key} = {best[key]}" for key in config.search.space)
              + f"; {summary['metric']} = {best[summary['metric']]:.4g} ({summary['mode']})")
        print(f"search written to {out}; report: rl-cs report {out}")
        return 0
    from rl_cs.experiment.sensing_grid import run_grid

    runs, cycles = run_grid(sensing_field, config, config.grid.attribute_order)
    finished = time.perf_counter()
    require(not out.exists(), str(out), "appeared while the grid ran (another run of the same name?)",
            "choose another --name; nothing was overwritten")
    out.mkdir(parents=True)
    write_atomically(out / "runs.csv", lambda p: runs.to_csv(p, index=False))
    write_atomically(out / "cycles.parquet", lambda p: cycles.to_parquet(p, index=False))
    if calibration is not None:
        write_atomically(out / "calibration.csv", lambda p: calibration.candidates.to_csv(p, index=False))
    _write_json(out, {
        "world": "sensing", "kind": "grid", "method": args.method, "data": sensing_field.source,
        "config": to_dict(config),
        "calibration": _record(calibration),
        "wall_seconds": {"calibration": calibrated_at - start, "grid": finished - calibrated_at,
                         "total": finished - start},
        "runs": len(runs), "workers": config.grid.workers or os.cpu_count(),
        "grid_cpu_seconds": float(runs["cpu_seconds"].sum())})
    summary = runs.groupby(["num_attributes", "inference", "participants", "scheme"], sort=False)[
        ["error", "cost_km"]].mean().round(4)
    print(summary.to_string())
    print(f"{len(runs)} runs in {finished - calibrated_at:.1f} s (calibration {calibrated_at - start:.1f} s); "
          f"results in {out}; tables: rl-cs report {out}")
    return 0


def _calibrated(sensing_field: SensingField, config: SensingExperimentConfig):
    """Apply the calibration's choice to the world and the attribute order (or keep them as configured)."""
    if not config.calibration.enabled:
        return config, None
    from rl_cs.experiment.sensing_calibration import calibrate

    calibration = calibrate(sensing_field, config)
    print(f"calibration on UNS-TA: Gamma_a = error / {calibration.normalisation}, cells = {calibration.error_cells}, "
          f"attribute order = {calibration.order_name} {list(calibration.order)} "
          f"(distance {calibration.candidates['distance'].iloc[0]:.4f})")
    world = dataclasses.replace(config.world, normalisation=calibration.normalisation,
                                error_cells=calibration.error_cells)
    grid = dataclasses.replace(config.grid, attribute_order=calibration.order)
    return dataclasses.replace(config, world=world, grid=grid), calibration


def _record(calibration) -> dict | None:
    """What experiment.json records of the calibration (None: it was off)."""
    return None if calibration is None else {
        "normalisation": calibration.normalisation, "error_cells": calibration.error_cells,
        "order": calibration.order_name, "attributes": list(calibration.order),
        "distance": float(calibration.candidates["distance"].iloc[0])}


def _write_json(out: Path, data: dict) -> None:
    write_atomically(out / "experiment.json", lambda p: p.write_text(json.dumps(data, indent=2)))


def evaluate(args: argparse.Namespace) -> int:
    """One scheme on ``config.world`` for ``--episodes`` seeds from ``--seed``, through the evaluation path
    every world shares (rl_cs.evaluation); ``--log`` writes the cells sensed per cycle and participant."""
    from policies.qcota.actor import SchemeActor
    from rl_cs.evaluation import evaluate as evaluate_actor
    from rl_cs.registry import get_method

    method = get_method(args.policy, "sensing", where="policy")
    config = load_config(args.config, args.set)
    if args.log:
        writable_parent(Path(args.log).resolve(), where="--log")
        require(not Path(args.log).is_dir(), "--log", f"{args.log} is a folder", "give a file name, e.g. cells.parquet")
    env = make_env(config, args.data_dir)
    actor = SchemeActor(method.make_heuristic(config.qcota), method.name, config.world.num_participants,
                        len(config.world.attributes))
    table, log = evaluate_actor(env, actor, [args.seed + episode for episode in range(args.episodes)])
    print(f"{DISPLAY_NAMES[args.policy]} on {env.world.field.source}, attributes {list(config.world.attributes)}, "
          f"{config.world.inference.method}, P = {config.world.num_participants}")
    print(table[["seed", "error", "cost_km"]].to_string(index=False))
    if args.log:
        path = Path(args.log)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = ["seed", "cycle", "participant", "cell", "cost_km"]
        write_atomically(path, lambda p: log[columns].to_parquet(p, index=False))
    return 0


def bench(args: argparse.Namespace) -> int:
    """Cycles per second of each scheme on the plain loop, and RLlib env steps per second."""
    config = load_config(args.config, args.set)
    sensing_field = load_field(args.data_dir, config)
    world = SensingWorld(sensing_field, config.world)
    rows = []
    for name in SCHEMES:
        scheme = make_scheme(name, config.qcota)
        cycles, start, episode = 0, time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            scheme.reset(config.world.num_participants, len(config.world.attributes), episode)
            cycles += len(run_online(world, scheme.act, episode).epsilon)
            episode += 1
        rows.append({"scheme": DISPLAY_NAMES[name], "cycles_per_s": cycles / (time.perf_counter() - start)})
    from envs.sensing_rllib import SensingMultiAgentEnv

    env = SensingMultiAgentEnv({"field": sensing_field, "world": config.world})
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    env.reset(seed=0)
    while time.perf_counter() - start < args.seconds:
        _, _, _, truncated, _ = env.step({agent: int(rng.integers(world.num_cells)) for agent in env.agents})
        steps += 1
        if truncated["__all__"]:
            env.reset(seed=steps)
    rows.append({"scheme": "RLlib env, random actions", "cycles_per_s": steps / (time.perf_counter() - start)})
    print(f"sensing world on {sensing_field.source}, P = {config.world.num_participants}, "
          f"{config.world.inference.method}")
    print(pd.DataFrame(rows).round(1).to_string(index=False))
    return 0
