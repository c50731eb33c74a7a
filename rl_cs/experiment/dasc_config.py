"""The DASC experiment's typed configuration (a YAML in tune_configs/, e.g. dasc_quick.yaml, mirrors it one to
one; rl_cs.config is the loader). Sections: ``experiment`` (what runs), ``world`` (envs.dasc_config.DASCConfig),
``evaluation`` (the seeded task streams every method is scored on) and ``baselines`` (GAME's and ODTA's open
parameters). The RMO step adds its own sections."""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.dasc_config import DASCConfig
from policies.dasc_baselines import DASCBaselineSettings
from rl_cs.errors import require

BASELINES = ("greedy-dasc", "km", "game", "odta", "odta-2stage")


@dataclass(frozen=True)
class DASCRunSettings:
    """What `rl-cs train --world dasc` runs."""

    name: str = ""
    """Experiment name (folder under the results dir); default <method>-dasc."""
    seeds: int = 3
    """Runs per method, one per seed; run r evaluates episodes seeded evaluation.seed + r x episodes + e."""
    methods: list = field(default_factory=lambda: list(BASELINES))
    """Methods run by `rl-cs train all --world dasc`."""

    def validate(self, where: str) -> None:
        from rl_cs.registry import get_method

        require(self.seeds >= 1, f"{where}.seeds", f"must be >= 1, got {self.seeds}")
        require(len(self.methods) > 0, f"{where}.methods", "empty list", f"e.g. [{', '.join(BASELINES)}]")
        for name in self.methods:
            require(isinstance(name, str), f"{where}.methods", f"expected method names, got {name!r}")
            get_method(name, "dasc", where=f"{where}.methods")


@dataclass(frozen=True)
class DASCEvaluationSettings:
    """The seeded task streams every method is compared on."""

    episodes: int = 1
    """Episodes per run."""
    seed: int = 12345
    """Seed of the first episode of run 0."""

    def validate(self, where: str) -> None:
        require(self.episodes >= 1, f"{where}.episodes", f"must be >= 1, got {self.episodes}")
        require(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}")

    def seeds(self, run: int) -> list[int]:
        """Episode seeds of run ``run``."""
        return [self.seed + run * self.episodes + episode for episode in range(self.episodes)]


@dataclass(frozen=True)
class DASCExperimentConfig:
    """One `rl-cs train|evaluate|check|bench --world dasc` experiment."""

    experiment: DASCRunSettings = field(default_factory=DASCRunSettings)
    """What runs and how many seeds."""
    world: DASCConfig = field(default_factory=DASCConfig)
    """The DASC world (envs.dasc_config)."""
    evaluation: DASCEvaluationSettings = field(default_factory=DASCEvaluationSettings)
    """The evaluation task streams."""
    baselines: DASCBaselineSettings = field(default_factory=DASCBaselineSettings)
    """Settings of the GAME and ODTA baselines."""

    world_name = "dasc"

    def validate(self, where: str = "") -> "DASCExperimentConfig":
        prefix = f"{where}: " if where else ""
        self.experiment.validate(f"{prefix}experiment")
        self.world.validate(f"{prefix}world")
        self.evaluation.validate(f"{prefix}evaluation")
        self.baselines.validate(f"{prefix}baselines")
        return self
