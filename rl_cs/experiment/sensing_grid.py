"""Runs the grid of §5.5: one online episode per (scheme, attributes, inference, P, seed), in parallel, and the
reachable errors of each grid cell (``rl_cs.experiment.sensing_bounds``: clairvoyant per cycle, best fixed set
in hindsight), which do not depend on the scheme or the seed."""

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
from rl_cs.experiment.sensing_bounds import ReachableBounds, reachable_bounds
from rl_cs.experiment.sensing_config import SensingExperimentConfig


@dataclass(frozen=True)
class RunSpec:
    """One episode of the grid."""

    scheme: str
    attributes: tuple[str, ...]
    inference: str
    participants: int
    seed: int


@dataclass(frozen=True)
class BoundSpec:
    """The reachable errors of one grid cell (any scheme, any seed)."""

    attributes: tuple[str, ...]
    inference: str
    participants: int


def grid_specs(config: SensingExperimentConfig, order: tuple[str, ...]) -> list[RunSpec]:
    """Every combination of the grid, attributes taken as the first k of ``order``."""
    grid = config.grid
    return [RunSpec(scheme, tuple(order[:count]), method, participants, seed)
            for count in grid.attribute_counts for method in grid.inference for participants in grid.participants
            for scheme in grid.schemes for seed in range(grid.seeds)]


def grid_world(sensing_field: SensingField, config: SensingExperimentConfig, spec: RunSpec | BoundSpec) -> SensingWorld:
    """The world of ``config.world`` with the spec's attributes, inference and P."""
    world_config = dataclasses.replace(
        config.world, attributes=spec.attributes, num_participants=spec.participants,
        inference=dataclasses.replace(config.world.inference, method=spec.inference))
    return SensingWorld(sensing_field, world_config)


def run_spec(sensing_field: SensingField, config: SensingExperimentConfig,
             spec: RunSpec) -> tuple[Trajectory, np.ndarray]:
    """One episode: the world of ``config.world`` with the spec's attributes, inference and P; the trajectory
    and (Y, A) MPI's attribute weights used in each cycle (NaN for a scheme that does not use them).

    The scheme is told the episode's horizon Y (for the Hedge rate of Eq. 7) and the world's Gamma_a
    divisors (Eq. 2 / 15: the objective's normalisation, in which MPI's loss and the set-based SPE are
    measured)."""
    world = grid_world(sensing_field, config, spec)
    scheme = make_scheme(spec.scheme, config.qcota)
    scheme.reset(spec.participants, len(spec.attributes), spec.seed + 1_000_003, horizon=world.num_cycles,
                 attribute_scale=world.scale)
    weights = []

    def act(observation):
        cells = scheme.act(observation)
        weights.append(scheme.weights.weights.copy() if scheme.uses_attribute_weights
                       else np.full(len(spec.attributes), np.nan))
        return cells

    trajectory = run_online(world, act, spec.seed)
    return trajectory, np.array(weights)


_SHARED: dict = {}


def _init(sensing_field: SensingField, config: SensingExperimentConfig) -> None:
    _SHARED["field"], _SHARED["config"] = sensing_field, config


def _run_shared(spec: RunSpec | BoundSpec) -> tuple:
    """An episode: (trajectory, wall s, CPU s, (Y, A) weights); a bound: (ReachableBounds, wall s, CPU s)."""
    start, cpu = time.perf_counter(), time.process_time()
    if isinstance(spec, BoundSpec):
        bounds = reachable_bounds(grid_world(_SHARED["field"], _SHARED["config"], spec))
        return bounds, time.perf_counter() - start, time.process_time() - cpu
    trajectory, weights = run_spec(_SHARED["field"], _SHARED["config"], spec)
    return trajectory, time.perf_counter() - start, time.process_time() - cpu, weights


def run_many(sensing_field: SensingField, config: SensingExperimentConfig, specs: list) -> list[tuple]:
    """Run the specs (RunSpec or BoundSpec; in parallel when grid.workers != 1), results in spec order:
    (trajectory, wall s, CPU s, weights) per RunSpec, (ReachableBounds, wall s, CPU s) per BoundSpec."""
    workers = config.grid.workers or os.cpu_count() or 1
    if workers == 1 or len(specs) == 1:
        _init(sensing_field, config)
        return [_run_shared(spec) for spec in specs]
    # Slow specs first (bounds, SVR, large P), so the pool ends evenly.
    order = sorted(range(len(specs)), key=lambda i: (not isinstance(specs[i], BoundSpec),
                                                     specs[i].inference != "svr", -specs[i].participants))
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(sensing_field, config)) as pool:
        done = list(pool.map(_run_shared, [specs[i] for i in order], chunksize=1))
    results: list = [None] * len(specs)
    for position, result in zip(order, done):
        results[position] = result
    return results


def run_grid(sensing_field: SensingField, config: SensingExperimentConfig,
             order: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The grid's per-run metrics and per-cycle records.

    runs: one row per episode with Eq. 15's error, Eq. 16's cost, and the grid cell's reachable errors
    (``clairvoyant_error``, ``best_fixed_set_error``, ``best_fixed_set``: the same on every row of a cell).
    cycles: one row per episode and cycle with the cycle's error, mean cost and MPI's attribute weights used
    in that cycle (``weight_<attribute>``; NaN for an attribute not in the run or a scheme without MPI).
    """
    specs = grid_specs(config, order)
    cells = list(dict.fromkeys(BoundSpec(spec.attributes, spec.inference, spec.participants) for spec in specs))
    results = run_many(sensing_field, config, specs + cells)
    bounds: dict[BoundSpec, ReachableBounds] = {cell: result[0] for cell, result in zip(cells, results[len(specs):])}
    names = list(dict.fromkeys(name for spec in specs for name in spec.attributes))
    runs, cycles = [], []
    for spec, (trajectory, seconds, cpu_seconds, weights) in zip(specs, results):
        key = {"scheme": spec.scheme, "num_attributes": len(spec.attributes), "inference": spec.inference,
               "participants": spec.participants, "seed": spec.seed}
        reachable = bounds[BoundSpec(spec.attributes, spec.inference, spec.participants)]
        runs.append({**key, "attributes": "+".join(spec.attributes), "error": trajectory.aggregated_error,
                     "cost_km": trajectory.average_cost,
                     "cycles_without_estimate": trajectory.cycles_without_estimate, "seconds": seconds,
                     "cpu_seconds": cpu_seconds, "clairvoyant_error": reachable.clairvoyant,
                     "best_fixed_set_error": reachable.best_fixed_set,
                     "best_fixed_set": " ".join(str(cell) for cell in reachable.fixed_set)})
        count = len(trajectory.epsilon)
        columns = {f"weight_{name}": (weights[:, spec.attributes.index(name)] if name in spec.attributes
                                      else np.full(count, np.nan)) for name in names}
        cycles.append(pd.DataFrame({**{k: np.repeat(v, count) for k, v in key.items()},
                                    "cycle": np.arange(count), "epsilon": trajectory.epsilon,
                                    "cost_km": trajectory.cost_km.mean(1), **columns}))
    return pd.DataFrame(runs), pd.concat(cycles, ignore_index=True)
