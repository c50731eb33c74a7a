"""A hyperparameter search on the sensing world (the ``search:`` section, rl_cs.experiment.search): each Tune
trial runs the configured grid with its sampled values (a function trainable) and reports QCO-TA's mean error
and cost and their mean ratios to UNS-TA over the grid's cells (SEARCH_TARGET). Trials are whole runs of
seeded episodes (no training), so the search takes no scheduler; its searcher is Optuna's TPE or random
sampling, and ``{grid: [...]}`` distributions (random searcher) give the exhaustive sweep of old."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rl_cs.data.sensing_field import SensingField
from rl_cs.errors import require
from rl_cs.experiment import search
from rl_cs.experiment.sensing_config import SEARCH_TARGET, SensingExperimentConfig
from rl_cs.experiment.sensing_grid import run_grid

METRICS = SEARCH_TARGET.metrics


def search_metrics(runs: pd.DataFrame) -> dict[str, float]:
    """QCO-TA's mean error and cost, and the mean over grid cells of QCO-TA / UNS-TA for each."""
    cells = runs.groupby(["scheme", "num_attributes", "inference", "participants"])[["error", "cost_km"]].mean()
    qcota, uniform = cells.loc["qcota"], cells.loc["uns-ta"]
    return {"error": float(qcota["error"].mean()), "cost_km": float(qcota["cost_km"].mean()),
            "error_ratio": float(np.mean(qcota["error"] / uniform["error"])),
            "cost_ratio": float(np.mean(qcota["cost_km"] / uniform["cost_km"]))}


def trial_config(base: SensingExperimentConfig, values: dict) -> SensingExperimentConfig:
    """The experiment config of one trial: ``base`` with the trial's sampled dotted fields, validated,
    without a nested search."""
    import dataclasses

    config = search.apply(base, values, "search trial")
    return dataclasses.replace(config, search=search.SearchSettings()).validate("search trial")


def sensing_trial(params: dict, sensing_field: SensingField, base: SensingExperimentConfig) -> None:
    from ray import tune

    config = trial_config(base, params[search.SEARCH])
    runs, _ = run_grid(sensing_field, config, config.grid.attribute_order)
    tune.report({**search_metrics(runs), "searched": search.sampled(params)})


def run_search(sensing_field: SensingField, config: SensingExperimentConfig, out: Path):
    """Search ``config.search.space`` with Ray Tune (storage under ``out/tune``): one row per trial, best
    first; the search's summary for experiment.json; the errors of failed trials."""
    require({"qcota", "uns-ta"} <= set(config.grid.schemes), "grid.schemes",
            "a search trial reports QCO-TA's error and its ratio to UNS-TA's", "list both qcota and uns-ta")
    from ray import tune

    from rl_cs.experiment.ray_session import start_ray

    settings = config.search
    metric, mode = search.resolved(settings, SEARCH_TARGET)
    start_ray()
    tuner = tune.Tuner(
        tune.with_parameters(sensing_trial, sensing_field=sensing_field, base=config),
        param_space=search.param_space(settings, {}),
        tune_config=search.tune_config(settings, SEARCH_TARGET, iterations=1,
                                       max_concurrent=settings.max_concurrent_trials),
        run_config=tune.RunConfig(storage_path=str((out / "tune").resolve()), name="search", verbose=0))
    results = tuner.fit()
    failed = [str(result.error) for result in results if result.error is not None]
    rows = []
    for result in results:
        rows.append({"trial": Path(result.path).name, **search.sampled(result.config),
                     **{key: (result.metrics or {}).get(key) for key in METRICS},
                     "iterations": (result.metrics or {}).get("training_iteration"), "stopped_early": False})
    table = search.ranked(pd.DataFrame(rows), metric, mode)
    return table, search.summary(settings, SEARCH_TARGET), failed
