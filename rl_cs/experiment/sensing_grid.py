"""Runs the grid of §5.5: one online episode per (scheme, attributes, inference, P, seed), in parallel."""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from envs.sensing import SensingWorld, Trajectory, run_online
from policies.qcota.schemes import make_scheme
from rl_cs.data.sensing_field import SensingField
from rl_cs.experiment.sensing_config import SensingExperimentConfig


@dataclass(frozen=True)
class RunSpec:
    """One episode of the grid."""

    scheme: str
    attributes: tuple[str, ...]
    inference: str
    participants: int
    seed: int


def grid_specs(config: SensingExperimentConfig, order: tuple[str, ...]) -> list[RunSpec]:
    """Every combination of the grid, attributes taken as the first k of ``order``."""
    grid = config.grid
    return [RunSpec(scheme, tuple(order[:count]), method, participants, seed)
            for count in grid.attribute_counts for method in grid.inference for participants in grid.participants
            for scheme in grid.schemes for seed in range(grid.seeds)]


def run_spec(sensing_field: SensingField, config: SensingExperimentConfig, spec: RunSpec) -> Trajectory:
    """One episode: the world of ``config.world`` with the spec's attributes, inference and P."""
    world_config = dataclasses.replace(
        config.world, attributes=spec.attributes, num_participants=spec.participants,
        inference=dataclasses.replace(config.world.inference, method=spec.inference))
    world = SensingWorld(sensing_field, world_config)
    scheme = make_scheme(spec.scheme, config.qcota)
    scheme.reset(spec.participants, len(spec.attributes), spec.seed + 1_000_003)
    return run_online(world, scheme.act, spec.seed)


_SHARED: dict = {}


def _init(sensing_field: SensingField, config: SensingExperimentConfig) -> None:
    _SHARED["field"], _SHARED["config"] = sensing_field, config


def _run_shared(spec: RunSpec) -> tuple[Trajectory, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    trajectory = run_spec(_SHARED["field"], _SHARED["config"], spec)
    return trajectory, time.perf_counter() - start, time.process_time() - cpu


def run_many(sensing_field: SensingField, config: SensingExperimentConfig,
             specs: list[RunSpec]) -> list[tuple[Trajectory, float, float]]:
    """Run the specs (in parallel when grid.workers != 1); (trajectory, wall s, CPU s) in spec order."""
    workers = config.grid.workers or os.cpu_count() or 1
    if workers == 1 or len(specs) == 1:
        _init(sensing_field, config)
        return [_run_shared(spec) for spec in specs]
    # Slow specs (SVR, schemes needing leave-one-out residuals) first, so the pool ends evenly.
    order = sorted(range(len(specs)), key=lambda i: (specs[i].inference != "svr", -specs[i].participants))
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(sensing_field, config)) as pool:
        done = list(pool.map(_run_shared, [specs[i] for i in order], chunksize=1))
    results: list = [None] * len(specs)
    for position, result in zip(order, done):
        results[position] = result
    return results


def run_grid(sensing_field: SensingField, config: SensingExperimentConfig,
             order: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The grid's per-run metrics (Eq. 15, Eq. 16) and per-cycle records (error and mean cost per cycle)."""
    specs = grid_specs(config, order)
    runs, cycles = [], []
    for spec, (trajectory, seconds, cpu_seconds) in zip(specs, run_many(sensing_field, config, specs)):
        key = {"scheme": spec.scheme, "num_attributes": len(spec.attributes), "inference": spec.inference,
               "participants": spec.participants, "seed": spec.seed}
        runs.append({**key, "attributes": "+".join(spec.attributes), "error": trajectory.aggregated_error,
                     "cost_km": trajectory.average_cost,
                     "cycles_without_estimate": trajectory.cycles_without_estimate, "seconds": seconds,
                     "cpu_seconds": cpu_seconds})
        count = len(trajectory.epsilon)
        cycles.append(pd.DataFrame({**{k: np.repeat(v, count) for k, v in key.items()},
                                    "cycle": np.arange(count), "epsilon": trajectory.epsilon,
                                    "cost_km": trajectory.cost_km.mean(1)}))
    return pd.DataFrame(runs), pd.concat(cycles, ignore_index=True)
