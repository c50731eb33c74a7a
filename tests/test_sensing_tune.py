"""A hyperparameter search of QCO-TA parameters (the ``search:`` section) through the CLI, on a small synthetic
field: each trial runs the grid with its sampled values and reports QCO-TA's error and its ratio to UNS-TA."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rl_cs.cli import main
from rl_cs.experiment.sensing_config import SensingExperimentConfig
from rl_cs.experiment.sensing_tune import search_metrics, trial_config

CONFIGS = Path(__file__).resolve().parents[1] / "tune_configs"


def test_search_metrics_are_ratios_to_uniform_sampling():
    runs = pd.DataFrame({"scheme": ["qcota", "uns-ta", "qcota", "uns-ta"], "num_attributes": [2, 2, 2, 2],
                         "inference": ["knn"] * 4, "participants": [8, 8, 10, 10],
                         "error": [0.1, 0.2, 0.3, 0.3], "cost_km": [1.0, 10.0, 2.0, 10.0]})
    metrics = search_metrics(runs)
    assert metrics["error"] == pytest.approx(0.2) and metrics["error_ratio"] == pytest.approx(0.75)
    assert metrics["cost_ratio"] == pytest.approx(0.15)


def test_trial_config_sets_dotted_fields():
    config = trial_config(SensingExperimentConfig(), {"qcota.beta": 0.3, "world.inference.knn_k": 5})
    assert config.qcota.beta == 0.3 and config.world.inference.knn_k == 5 and not config.search.enabled


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


def test_a_search_of_another_scheme_is_refused(tmp_path, capsys):
    assert cli("train", "uns-ta", "--world", "sensing", "--results-dir", str(tmp_path), "--config",
               str(CONFIGS / "qcota_search.yaml")) == 2
    assert "tunes QCO-TA against UNS-TA" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_search_end_to_end(tmp_path, capsys):
    assert cli("train", "qcota", "--world", "sensing", "--results-dir", str(tmp_path), "--name", "search",
               "--config", str(CONFIGS / "qcota_search.yaml"), "--set", "synthetic.num_cycles=8",
               "--set", "synthetic.num_cells=12", "--set", "grid.participants=[4]", "--set", "grid.attribute_counts=[2]",
               "--set", "grid.inference=[knn]", "--set", "search.searcher=random",  # before the grid: Optuna takes none
               "--set", "search.space={qcota.beta: {grid: [0.3, 0.6]}}", "--set", "search.num_samples=1") == 0
    table = pd.read_csv(tmp_path / "search" / "search.csv")
    assert sorted(table["qcota.beta"]) == [0.3, 0.6] and (table["error_ratio"] > 0).all()
    assert table["error_ratio"].is_monotonic_increasing, "best (lowest error ratio) first"
    metadata = json.loads((tmp_path / "search" / "experiment.json").read_text())
    assert metadata["kind"] == "search" and metadata["search"]["metric"] == "error_ratio"
    assert metadata["search"]["mode"] == "min" and metadata["search"]["searcher"] == "random"
    assert "Best configuration" in capsys.readouterr().out
    assert cli("report", str(tmp_path / "search")) == 0
    assert "## Trials, best first by error_ratio (min)" in capsys.readouterr().out
    assert (tmp_path / "search" / "search_metric.png").exists()
