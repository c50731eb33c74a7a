"""The reachable errors (rl_cs/experiment/sensing_bounds.py) against brute force on a 6-cell field, their
scorer against the world itself, and the grid writing them (and MPI's weights) beside every run."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from envs.inference import InferenceConfig
from envs.sensing import SensingWorld, SensingWorldConfig, run_online
from rl_cs.data.sensing_field import SyntheticFieldConfig, synthetic_field
from rl_cs.experiment.sensing_bounds import CycleScorer, best_fixed_set, clairvoyant, reachable_bounds

TINY = SyntheticFieldConfig(num_cells=6, num_cycles=8, missing_fraction=0.15, seed=3)


def tiny_world(method: str, participants: int, error_cells: str = "unsensed") -> SensingWorld:
    config = SensingWorldConfig(attributes=("PM10", "EMI"), num_participants=participants,
                                inference=InferenceConfig(method, knn_k=2, idw_neighbours=3),
                                normalisation="range", error_cells=error_cells)
    return SensingWorld(synthetic_field(TINY), config)


def brute_force_fixed(world: SensingWorld) -> float:
    sets = itertools.combinations(range(world.num_cells), world.config.num_participants)
    return min(run_online(world, lambda obs, cells=cells: np.array(cells), 0).aggregated_error for cells in sets)


def brute_force_clairvoyant(world: SensingWorld) -> float:
    """Each cycle, step a copy of the world with every set and keep the set with the lowest cycle error."""
    world.reset(0)
    outcomes = []
    sets = list(itertools.combinations(range(world.num_cells), world.config.num_participants))
    while not world.done:
        scores = []
        for cells in sets:
            outcome = copy.deepcopy(world).step(np.array(cells))
            mae = outcome.mae_all if world.config.error_cells == "all" else outcome.mae_unsensed
            scores.append(np.nansum(mae / world.scale))
        outcomes.append(world.step(np.array(sets[int(np.argmin(scores))])))
    from envs.sensing import Trajectory
    return Trajectory.from_outcomes(outcomes, world).aggregated_error


@pytest.mark.parametrize("method", ["knn", "idw"])
@pytest.mark.parametrize("participants", [2, 3])
def test_bounds_equal_brute_force_on_six_cells(method, participants):
    world = tiny_world(method, participants)
    fixed, cells = best_fixed_set(world)
    assert fixed == pytest.approx(brute_force_fixed(world), abs=1e-12)
    assert len(set(cells.tolist())) == participants
    per_cycle, sets = clairvoyant(world)
    assert per_cycle == pytest.approx(brute_force_clairvoyant(world), abs=1e-12)
    assert sets.shape == (world.num_cycles, participants)
    assert per_cycle <= fixed + 1e-12


def test_svr_bounds_search_and_screening():
    world = tiny_world("svr", 2, error_cells="all")
    # without screening the search itself equals brute force
    fixed, _ = best_fixed_set(world, screen_size=100)
    assert fixed == pytest.approx(brute_force_fixed(world), abs=1e-12)
    per_cycle, _ = clairvoyant(world, screen_size=100)
    assert per_cycle == pytest.approx(brute_force_clairvoyant(world), abs=1e-12)
    # screened (the default for SVR): still reachable allocations, never below the optimum
    bounds = reachable_bounds(world)
    assert bounds.best_fixed_set >= fixed - 1e-12 and bounds.clairvoyant >= per_cycle - 1e-12


@pytest.mark.parametrize("method", ["knn", "idw", "svr"])
@pytest.mark.parametrize("error_cells", ["all", "unsensed"])
def test_scorer_matches_the_world(method, error_cells):
    world = tiny_world(method, 3, error_cells)
    scorer = CycleScorer(world)
    rng = np.random.default_rng(1)
    sets = [rng.choice(6, 3, replace=False) for _ in range(world.num_cycles)]
    world.reset(0)
    previous = None
    for cycle, cells in enumerate(sets):
        mask = np.isin(np.arange(6), cells)
        value, inferred = scorer.score(cycle, mask[None], previous)
        outcome = world.step(cells)
        mae = outcome.mae_all if error_cells == "all" else outcome.mae_unsensed
        assert value[0] == pytest.approx(np.nansum(mae / world.scale), abs=1e-9)
        np.testing.assert_allclose(inferred[0], world.inferred[cycle], atol=1e-9)
        previous = inferred[0]


def test_grid_logs_bounds_and_weights():
    from rl_cs.experiment.sensing_config import load_config
    from rl_cs.experiment.sensing_grid import run_grid

    config = load_config(None, ["synthetic.num_cycles=6", "grid.workers=1", "grid.attribute_counts=[2]",
                                "grid.schemes=[qcota, uns-ta]", "world.normalisation=range"])
    sensing_field = synthetic_field(config.synthetic)
    runs, cycles = run_grid(sensing_field, config, ("PM10", "EMI", "TEMP", "WS"))
    assert (runs["clairvoyant_error"] <= runs["best_fixed_set_error"] + 1e-12).all()
    assert (runs["clairvoyant_error"] > 0).all() and runs["best_fixed_set"].str.split().map(len).eq(8).all()
    qcota = cycles[cycles.scheme == "qcota"]
    weights = qcota[["weight_PM10", "weight_EMI"]].to_numpy()
    assert ((weights > 0) & (weights < 1)).all() and np.allclose(weights.sum(1), 1.0)
    assert cycles[cycles.scheme == "uns-ta"][["weight_PM10", "weight_EMI"]].isna().all().all()


def test_report_puts_the_bounds_beside_each_scheme(tmp_path, capsys):
    import pandas as pd

    from rl_cs.report.sensing import reachable_section, reachable_table

    rows = []
    for scheme, error, cost in (("qcota", 0.15, 2.0), ("oo-mta", 0.18, 6.0), ("uns-ta", 0.20, 40.0)):
        for seed in (0, 1):
            rows.append({"scheme": scheme, "num_attributes": 2, "inference": "knn", "participants": 12, "seed": seed,
                         "error": error, "cost_km": cost, "clairvoyant_error": "0.1", "best_fixed_set_error": "0.12"})
    runs = pd.DataFrame(rows)
    table = reachable_table(runs).iloc[0]
    assert table["clairvoyant_ratio"] == pytest.approx(0.5) and table["best_fixed_set_ratio"] == pytest.approx(0.6)
    assert table["qcota_ratio"] == pytest.approx(0.75) and table["qcota_gain_share"] == pytest.approx(0.5)
    assert table["oo-mta_gain_share"] == pytest.approx(0.2)
    assert table["paper_qcota_ratio"] == pytest.approx(0.133 / 0.227)  # Table 1, 2 attributes, KNN, P = 12
    written = reachable_section(runs, tmp_path)
    printed = capsys.readouterr().out
    assert "| 2 | KNN | 12 | 0.200 | 0.100 x0.50 | 0.120 x0.60 | x0.75 | x0.59 | 0.50 | 0.20 |" in printed
    assert "below UNS-TA's in 1 of 1 cells" in printed and "cost ratio 0.050" in printed
    assert all(path.exists() for path in written)
    assert reachable_section(runs.drop(columns="clairvoyant_error"), tmp_path) == []  # an older results folder
