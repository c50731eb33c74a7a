"""A Ray Tune sweep of QCO-TA parameters through the CLI, on a small synthetic field."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pathlib import Path

from rl_cs.cli import main
from rl_cs.experiment.sensing_tune import sweep_metrics, trial_config
from rl_cs.experiment.sensing_config import SensingExperimentConfig, to_dict

CONFIGS = Path(__file__).resolve().parents[1] / "tune_configs"


def test_sweep_metrics_are_ratios_to_uniform_sampling():
    runs = pd.DataFrame({"scheme": ["qcota", "uns-ta", "qcota", "uns-ta"], "num_attributes": [2, 2, 2, 2],
                         "inference": ["knn"] * 4, "participants": [8, 8, 10, 10],
                         "error": [0.1, 0.2, 0.3, 0.3], "cost_km": [1.0, 10.0, 2.0, 10.0]})
    metrics = sweep_metrics(runs)
    assert metrics["error"] == pytest.approx(0.2) and metrics["error_ratio"] == pytest.approx(0.75)
    assert metrics["cost_ratio"] == pytest.approx(0.15)


def test_trial_config_sets_dotted_fields():
    config = trial_config(to_dict(SensingExperimentConfig()), {"qcota.beta": 0.3, "world.inference.knn_k": 5})
    assert config.qcota.beta == 0.3 and config.world.inference.knn_k == 5


@pytest.mark.slow
def test_tune_sweep_end_to_end(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "qcota", "--world", "sensing", "--results-dir", str(tmp_path), "--name", "sweep",
              "--config", str(CONFIGS / "qcota_sweep.yaml"), "--set", "synthetic.num_cycles=8",
              "--set", "synthetic.num_cells=12", "--set", "grid.participants=[4]", "--set", "grid.attribute_counts=[2]",
              "--set", "grid.inference=[knn]", "--set", "sweep.space={qcota.beta: [0.3, 0.6]}"])
    assert exit_.value.code == 0
    table = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert sorted(table["qcota.beta"]) == [0.3, 0.6] and (table["error_ratio"] > 0).all()
    assert json.loads((tmp_path / "sweep" / "experiment.json").read_text())["kind"] == "sweep"
