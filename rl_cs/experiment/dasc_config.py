"""The DASC experiment's typed configuration (a YAML in tune_configs/, e.g. dasc_quick.yaml, mirrors it one to
one; rl_cs.config is the loader). Sections: ``experiment`` (the shared RunSettings: what runs, how many seeds
and iterations), ``world`` (envs.dasc_config.DASCConfig), ``evaluation`` (the shared EvaluationSettings: the
seeded streams every method is scored on), one section per method config registered for the world
(rl_cs.methods): ``baselines`` (GAME's and ODTA's open parameters) and ``rmo`` (RMO's and REC's Table 1
settings with their RLlib ``training`` subsection, policies.rmo.config.RMOConfig), ``grid`` (world
fields to sweep, e.g. Table 2's axes) and ``search`` (a hyperparameter search of RMO or REC:
rl_cs.experiment.search; its PBT takes ``rmo.training.*``).

Unlike rl_cs.experiment.config.experiment_config_class, there is no top-level ``training`` or ``model``
section: RMO's network and RLlib settings are its own (``rmo``), and a CSC YAML (whose sections would
otherwise all fit: its world fields num_workers and num_tasks are DASC's too) is refused here, naming its
``training`` / ``model`` section or a method that does not run on DASC, so every YAML belongs to one world."""

from __future__ import annotations

import dataclasses
from dataclasses import field

from envs.dasc_config import DASCConfig
from rl_cs.config import with_override
from rl_cs.errors import InputError, require
from rl_cs.experiment import search
from rl_cs.experiment.config import FIXED_SECTIONS, EvaluationSettings, RunSettings
from rl_cs.registry import resolve, sections_for

BASELINES = ("greedy-dasc", "km", "game", "odta", "odta-2stage")


def _validate(self, where: str = ""):
    from rl_cs.registry import methods, methods_for

    prefix = f"{where}: " if where else ""
    self.experiment.validate(f"{prefix}experiment")
    here = [m.name for m in methods_for("dasc")]
    for name in self.experiment.methods:
        if name not in here:  # "unknown field": a YAML listing another world's methods is that world's
            runs_on = ", ".join(methods()[name].worlds) if name in methods() else "no world"
            raise InputError(f"{prefix}experiment.methods", f"unknown field value '{name}': not a method of world "
                             f"'dasc' (it runs on: {runs_on})", f"methods of dasc: {', '.join(here)}")
    self.world.validate(f"{prefix}world")
    self.evaluation.validate(f"{prefix}evaluation")
    for section in self.method_sections:
        getattr(self, section).validate(f"{prefix}{section}")
    for key, values in self.grid.items():
        require(isinstance(values, list) and values, f"{prefix}grid.{key}", "must be a non-empty list",
                f"e.g. grid: {{{key}: [a, b]}}")
        require(key.startswith("world."), f"{prefix}grid.{key}", "only world fields can be swept",
                "e.g. world.num_tasks")
        for value in values:  # every grid point must itself be a valid world
            with_override(self, key, value, f"{prefix}grid").world.validate(f"{prefix}grid.{key}={value}")
    search.check(self, where, search.Target.of_world("dasc"), FIXED_SECTIONS)
    search.check_run(self, where)
    return self


def _experiment_class() -> type:
    sections = [(section, resolve(reference), field(default_factory=resolve(reference)))
                for section, reference in sections_for("dasc").items()]
    fields = [
        ("experiment", RunSettings, field(default_factory=RunSettings)),
        ("world", DASCConfig, field(default_factory=DASCConfig)),
        ("evaluation", EvaluationSettings, field(default_factory=EvaluationSettings)),
        *sections,
        ("grid", dict, field(default_factory=dict)),
        ("search", search.SearchSettings, field(default_factory=search.SearchSettings)),
    ]
    cls = dataclasses.make_dataclass("DASCExperimentConfig", fields, frozen=True, namespace={
        "world_name": "dasc", "validate": _validate, "method_sections": tuple(name for name, _, _ in sections),
        "__doc__": "One `rl-cs train|evaluate|check|bench --world dasc` experiment (a YAML in tune_configs/)."})
    cls.__module__ = __name__  # pickled by reference (Ray ships configs to trials)
    return cls


DASCExperimentConfig = _experiment_class()


def evaluation_seeds(settings, run: int) -> list[int]:
    """Episode seeds of run ``run`` (a heuristic's run, a learned method's trial seed): evaluation.seed +
    run x episodes + e for e < episodes -- every method is scored on the same streams."""
    return [settings.seed + run * settings.episodes + episode for episode in range(settings.episodes)]
