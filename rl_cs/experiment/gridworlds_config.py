"""Experiment configs of the ``lbf`` and ``rware`` worlds: the shared RLlib-world sections (experiment,
training, model, evaluation, grid; rl_cs.experiment.config) around each world's own config, read by the one
YAML loader (rl_cs.config). YAMLs: tune_configs/lbf_*.yaml, tune_configs/rware_*.yaml."""

from __future__ import annotations

from pathlib import Path

from envs.lbf_config import LBFConfig
from envs.rware_config import RWAREConfig
from rl_cs.config import load_config
from rl_cs.experiment.config import experiment_config_class

REPOSITORY = Path(__file__).resolve().parents[2]


def _here(cls: type) -> type:
    """Pickle by reference from this module (Ray ships configs to trials)."""
    cls.__module__ = __name__
    return cls


LBFExperimentConfig = _here(experiment_config_class("lbf", LBFConfig, "LBFExperimentConfig"))
RWAREExperimentConfig = _here(experiment_config_class("rware", RWAREConfig, "RWAREExperimentConfig"))

CONFIGS = {"lbf": LBFExperimentConfig, "rware": RWAREExperimentConfig}
QUICK = {"lbf": REPOSITORY / "tune_configs" / "lbf_quick.yaml",
         "rware": REPOSITORY / "tune_configs" / "rware_quick.yaml"}


def load_experiment(world: str, path: str | Path | None, overrides: list[str] = ()):
    """Read, override (``--set key=value``) and validate a world's experiment YAML (default: its quick one)."""
    return load_config(CONFIGS[world], path, overrides, default=QUICK[world])
