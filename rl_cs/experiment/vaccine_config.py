"""Experiment config of the ``vaccine`` world: the shared RLlib-world sections (experiment, training, model,
evaluation, grid; rl_cs.experiment.config) around envs.vaccine_config.VaccineConfig, read by the one YAML loader
(rl_cs.config). YAMLs: tune_configs/vaccine_*.yaml."""

from __future__ import annotations

from envs.vaccine_config import VaccineConfig
from rl_cs.experiment.config import experiment_config_class

VaccineExperimentConfig = experiment_config_class("vaccine", VaccineConfig, "VaccineExperimentConfig")
VaccineExperimentConfig.__module__ = __name__  # pickled by reference from here (Ray ships configs to trials)
