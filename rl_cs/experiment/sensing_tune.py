"""Ray Tune sweep over sensing-experiment fields: each trial runs the configured grid (a function trainable)
and reports QCO-TA's mean error and cost and their mean ratios to UNS-TA over the grid's cells."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

from rl_cs.data.sensing_field import SensingField
from rl_cs.errors import require
from rl_cs.experiment.sensing_config import SensingExperimentConfig, build, set_field, to_dict
from rl_cs.experiment.sensing_grid import run_grid

METRICS = ("error", "cost_km", "error_ratio", "cost_ratio")


def sweep_metrics(runs: pd.DataFrame) -> dict[str, float]:
    """QCO-TA's mean error and cost, and the mean over grid cells of QCO-TA / UNS-TA for each."""
    cells = runs.groupby(["scheme", "num_attributes", "inference", "participants"])[["error", "cost_km"]].mean()
    qcota, uniform = cells.loc["qcota"], cells.loc["uns-ta"]
    return {"error": float(qcota["error"].mean()), "cost_km": float(qcota["cost_km"].mean()),
            "error_ratio": float(np.mean(qcota["error"] / uniform["error"])),
            "cost_ratio": float(np.mean(qcota["cost_km"] / uniform["cost_km"]))}


def trial_config(base: dict, params: dict) -> SensingExperimentConfig:
    """The experiment config of one trial: ``base`` with the trial's dotted fields set, no nested sweep."""
    data = copy.deepcopy(base)
    for key, value in params.items():
        set_field(data, key, value)
    data["sweep"]["space"] = {}
    config = build(SensingExperimentConfig, data, "")
    config.validate()
    return config


def _trial(params: dict, sensing_field: SensingField, base: dict) -> None:
    from ray import tune

    config = trial_config(base, params)
    runs, _ = run_grid(sensing_field, config, config.grid.attribute_order)
    tune.report(sweep_metrics(runs))


def sweep(sensing_field: SensingField, config: SensingExperimentConfig, out: Path) -> pd.DataFrame:
    """Grid-search ``config.sweep.space`` with Ray Tune (storage under ``out/tune``); one row per trial."""
    require({"qcota", "uns-ta"} <= set(config.grid.schemes), "grid.schemes",
            "a sweep compares QCO-TA with UNS-TA", "list both qcota and uns-ta")
    from ray import tune

    space = {key: tune.grid_search(list(values)) for key, values in config.sweep.space.items()}
    for key in config.sweep.space:  # fail before Ray starts if a swept value is invalid
        for value in config.sweep.space[key]:
            trial_config(to_dict(config), {key: value})
    tuner = tune.Tuner(
        tune.with_parameters(_trial, sensing_field=sensing_field, base=to_dict(config)),
        param_space=space,
        tune_config=tune.TuneConfig(metric=config.sweep.metric, mode="min", num_samples=config.sweep.num_samples),
        run_config=tune.RunConfig(storage_path=str((out / "tune").resolve()), name="sweep", verbose=0))
    frame = tuner.fit().get_dataframe()
    columns = {f"config/{key}": key for key in config.sweep.space}
    return frame[list(columns) + list(METRICS)].rename(columns=columns).sort_values(config.sweep.metric)
