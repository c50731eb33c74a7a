"""Experiment config of the ``ridehailing`` world: the shared RLlib-world sections (experiment, training, model,
evaluation, grid; rl_cs.experiment.config) around envs.ridehailing_config.RideHailingConfig, read by the one YAML
loader (rl_cs.config). YAMLs: tune_configs/ridehailing_*.yaml."""

from __future__ import annotations

from envs.ridehailing_config import RideHailingConfig
from rl_cs.experiment.config import experiment_config_class

RideHailingExperimentConfig = experiment_config_class("ridehailing", RideHailingConfig, "RideHailingExperimentConfig")
RideHailingExperimentConfig.__module__ = __name__  # pickled by reference from here (Ray ships configs to trials)
