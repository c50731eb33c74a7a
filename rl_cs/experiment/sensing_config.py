"""The sensing experiment's typed configuration, read from YAML (tune_configs/qcota_*.yaml) and validated here.

Every key of a YAML file must be a field of these dataclasses (an unknown key is an InputError suggesting the
nearest valid one); ``--set section.key=value`` overrides one field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from envs.inference import METHODS
from envs.sensing import ERROR_CELLS, NORMALISATIONS, SensingWorldConfig
from policies.qcota.config import QcotaConfig
from policies.qcota.schemes import SCHEMES
from rl_cs.data.sensing_field import PAPER_ATTRIBUTES, SyntheticFieldConfig
from rl_cs.config import from_dict, to_dict
from rl_cs.config import load_config as load_yaml_config
from rl_cs.errors import closest, require
from rl_cs.experiment.search import SearchSettings, Target, check


@dataclass(frozen=True)
class GridConfig:
    """The grid of §5.5: attribute counts x inference methods x P x schemes, each run for several seeds.

    Per grid cell it overrides ``world.attributes`` (the first k of the attribute order), ``world.inference.method``
    and ``world.num_participants``; every other world field applies as given."""

    attribute_counts: tuple[int, ...] = (2,)
    """Numbers of attributes (the first k of the attribute order; the paper: 2, 3, 4)."""
    inference: tuple[str, ...] = ("knn",)
    """Inference methods (the paper: knn, idw, svr)."""
    participants: tuple[int, ...] = (8,)
    """Values of P (the paper: 8, 10, 12, 14)."""
    schemes: tuple[str, ...] = tuple(SCHEMES)
    """Schemes to run, table row order."""
    seeds: int = 1
    """Episodes per grid cell (seeds 0..seeds-1: participants' start cells and UNS-TA's draws)."""
    attribute_order: tuple[str, ...] = PAPER_ATTRIBUTES
    """Order the attribute subsets are taken in, when calibration is off."""
    workers: int = 0
    """Processes running grid cells in parallel; 0 = one per CPU core."""

    def validate(self, where: str = "grid") -> None:
        for name, values in (("attribute_counts", self.attribute_counts), ("inference", self.inference),
                             ("participants", self.participants), ("schemes", self.schemes)):
            require(len(values) > 0, f"{where}.{name}", "empty list", "give at least one value")
        for method in self.inference:
            require(method in METHODS, f"{where}.inference", f"unknown inference method '{method}'",
                    closest(method, METHODS))
        for scheme in self.schemes:
            require(scheme in SCHEMES, f"{where}.schemes", f"unknown scheme '{scheme}'", closest(scheme, SCHEMES))
        for count in self.attribute_counts:
            require(1 <= count <= len(self.attribute_order), f"{where}.attribute_counts",
                    f"{count} attributes but the order has {len(self.attribute_order)}",
                    f"use 1..{len(self.attribute_order)}")
        for participants in self.participants:
            require(participants >= 1, f"{where}.participants", f"{participants} < 1", "use P >= 1")
        require(self.seeds >= 1, f"{where}.seeds", f"{self.seeds} < 1", "use at least one seed")
        require(self.workers >= 0, f"{where}.workers", f"{self.workers} < 0", "use 0 for one per core")
        require(self.workers <= 1024, f"{where}.workers", f"{self.workers:,} processes is over the limit of 1,024",
                "each worker is a process holding the field; use 0 for one per CPU core")


@dataclass(frozen=True)
class CalibrationConfig:
    """Settles Gamma_a and the attribute subsets on UNS-TA alone (the scheme with no free parameter): the
    candidate whose UNS-TA errors are closest (mean absolute difference) to the paper's UNS-TA row wins."""

    enabled: bool = True
    """Calibrate before the grid; if false, use world.normalisation, world.error_cells, grid.attribute_order."""
    normalisations: tuple[str, ...] = NORMALISATIONS
    """Gamma_a candidates: error / the attribute's mean, std or range over the whole field."""
    error_cells: tuple[str, ...] = ERROR_CELLS
    """Cells averaged in Eq. 15: all or unsensed only."""
    orders: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "paper": PAPER_ATTRIBUTES, "reverse": tuple(reversed(PAPER_ATTRIBUTES)),
        "pm10_first": ("PM10", "WS", "TEMP", "EMI")})
    """Named attribute orders; k attributes = the first k of an order (paper = §5.1's listing)."""
    seeds: int = 3
    """UNS-TA episodes per paper grid cell averaged for the calibration."""

    def validate(self, where: str = "calibration") -> None:
        for value in self.normalisations:
            require(value in NORMALISATIONS, f"{where}.normalisations", f"unknown normalisation '{value}'",
                    closest(value, NORMALISATIONS))
        for value in self.error_cells:
            require(value in ERROR_CELLS, f"{where}.error_cells", f"unknown choice '{value}'",
                    closest(value, ERROR_CELLS))
        require(len(self.orders) > 0, f"{where}.orders", "no attribute order", "give at least one")
        require(self.seeds >= 1, f"{where}.seeds", f"{self.seeds} < 1", "use at least one seed")


SEARCH_TARGET = Target(metrics=("error", "cost_km", "error_ratio", "cost_ratio"), mode="min", iterative=False)
"""What a search trial of the sensing world reports (rl_cs.experiment.sensing_tune.search_metrics): QCO-TA's
mean error and cost over the grid's cells, and their mean ratios to UNS-TA's; minimised. A trial runs the
whole grid once, so no scheduler applies."""
FIXED_SECTIONS = ("grid", "calibration", "synthetic", "search")
"""Sections a search cannot sample: the grid every trial runs, the calibration and the field (the data)."""
PER_GRID_CELL = ("world.attributes", "world.inference.method", "world.num_participants")
"""World fields each grid cell sets (GridConfig): a search of them would be overwritten."""


@dataclass(frozen=True)
class SensingExperimentConfig:
    """One `rl-cs train qcota --world sensing` experiment."""

    world: SensingWorldConfig = field(default_factory=SensingWorldConfig)
    """The sensing world (§3, §5)."""
    qcota: QcotaConfig = field(default_factory=QcotaConfig)
    """QCO-TA's hyper-parameters (§4)."""
    grid: GridConfig = field(default_factory=GridConfig)
    """The grid of runs (§5.5)."""
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    """Gamma_a / attribute-subset calibration on UNS-TA."""
    synthetic: SyntheticFieldConfig = field(default_factory=SyntheticFieldConfig)
    """The embedded field used when no --data-dir is given."""
    search: SearchSettings = field(default_factory=SearchSettings)
    """Optional hyperparameter search (rl_cs.experiment.search): each trial runs the grid with its sampled
    values (e.g. qcota.beta) and reports QCO-TA's error and cost and their ratios to UNS-TA (SEARCH_TARGET)."""

    RENAMED: ClassVar[dict] = {"sweep": (
        "the sweep section is now search (rl_cs.experiment.search)",
        "rename it search: and give each field a distribution, e.g. search: {space: {qcota.beta: {grid: [0.3, "
        "0.6]}}, searcher: random, metric: error_ratio}; tune_configs/qcota_search.yaml is an example")}

    def validate(self, where: str = "") -> "SensingExperimentConfig":
        prefix = f"{where}: " if where else ""
        self.world.validate(f"{prefix}world")
        self.qcota.validate(f"{prefix}qcota")
        self.grid.validate(f"{prefix}grid")
        self.calibration.validate(f"{prefix}calibration")
        self.synthetic.validate(f"{prefix}synthetic")
        for key in self.search.space:
            require(key not in PER_GRID_CELL, f"{prefix}search.space.{key}", "each grid cell sets this field "
                    "(grid.attribute_counts, grid.inference, grid.participants), so a search of it would be "
                    "overwritten", "change the grid instead, or search another field (e.g. qcota.beta)")
        check(self, where, SEARCH_TARGET, FIXED_SECTIONS)
        return self


def build(cls: type, data: Any, where: str) -> Any:
    """The dataclass ``cls`` from plain data (rl_cs.config.from_dict, the one loader of every world)."""
    return from_dict(cls, data, where)


def load_config(path: str | None, overrides: list[str] = (), seeds: int | None = None) -> SensingExperimentConfig:
    """Defaults, then the YAML file's fields, then each ``KEY=VALUE`` override; validated (rl_cs.config)."""
    config = load_yaml_config(SensingExperimentConfig, path, overrides)
    if seeds is not None:
        require(seeds >= 1, "--seeds", f"{seeds} < 1", "use at least one seed")
        config = dataclasses.replace(config, grid=dataclasses.replace(config.grid, seeds=seeds)).validate("--seeds")
    return config
