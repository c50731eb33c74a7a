"""The ground truth of the sensing world (QCO-TA Definition 4): RS values of cells x cycles x attributes.

``SensingField`` is the one type the sensing world consumes; ``synthetic_field`` is the embedded, seeded
default (a stand-in for the Piemonte data with the same four attributes, units and scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rl_cs.errors import closest, require

MAX_SYNTHETIC_CELLS = 2000
"""Largest synthetic field: the spatial pattern needs a cells x cells kernel and its Cholesky factor (the
paper's Piemonte data has 24 cells)."""
MAX_SYNTHETIC_VALUES = 50_000_000
"""Largest cycles x cells of a synthetic field (about 3 GiB of float64 while it is generated)."""
PAPER_ATTRIBUTES = ("WS", "TEMP", "EMI", "PM10")
"""The paper's four attributes, in the order its §5.1 lists them: wind speed (m/s), temperature (Kelvin),
emission rate of primary aerosols, PM10 (µg/m³)."""


@dataclass(frozen=True)
class SensingField:
    """Real sensing values RS (Definition 4) on a fixed layout of cells (Definition 1)."""

    coords_km: np.ndarray
    """(X, 2) cell positions, kilometres (UTM for Piemonte)."""
    values: np.ndarray
    """(Y, X, A) RS per cycle, cell and attribute; NaN where the ground truth is missing."""
    attributes: tuple[str, ...]
    """Attribute names, one per slice of the last axis of ``values``."""
    dates: np.ndarray
    """(Y,) datetime64[D], one sensing cycle per day."""
    source: str
    """Human-readable origin (for logs and reports)."""

    @property
    def num_cells(self) -> int:
        return self.coords_km.shape[0]

    @property
    def num_cycles(self) -> int:
        return self.values.shape[0]

    def distances_km(self) -> np.ndarray:
        """(X, X) straight-line distances between cells, kilometres (the travel cost of Eq. 1 / 16)."""
        delta = self.coords_km[:, None, :] - self.coords_km[None, :, :]
        return np.sqrt((delta ** 2).sum(-1))

    def attribute_index(self, names: tuple[str, ...] | list[str], where: str = "attributes") -> np.ndarray:
        """Positions of ``names`` in ``attributes``; InputError naming the unknown one."""
        for name in names:
            require(name in self.attributes, where, f"attribute '{name}' is not in the data ({self.source})",
                    closest(name, self.attributes))
        return np.array([self.attributes.index(name) for name in names], dtype=int)


@dataclass(frozen=True)
class SyntheticFieldConfig:
    """The embedded synthetic field: smooth spatial patterns drifting in time (AR(1)), Piemonte-like scales."""

    num_cells: int = 24
    """X: cells, placed uniformly at random in the box."""
    num_cycles: int = 60
    """Y: sensing cycles (days)."""
    box_km: tuple[float, float] = (110.0, 140.0)
    """Width and height of the area, kilometres."""
    length_scale_km: float = 35.0
    """Correlation length of the spatial pattern (squared-exponential kernel)."""
    persistence: float = 0.85
    """AR(1) coefficient of each day's pattern on the previous day's."""
    missing_fraction: float = 0.05
    """Share of PM10 ground-truth values removed at random (like the real data's gaps)."""
    seed: int = 0
    """Seed of the layout and the values."""

    def validate(self, where: str = "synthetic") -> None:
        require(self.num_cells >= 2, f"{where}.num_cells", f"{self.num_cells} < 2", "use at least 2 cells")
        require(self.num_cells <= MAX_SYNTHETIC_CELLS, f"{where}.num_cells",
                f"{self.num_cells:,} cells is over the limit of {MAX_SYNTHETIC_CELLS:,}",
                "the spatial pattern needs a cells x cells kernel and its Cholesky factor; Piemonte has 24 cells")
        require(self.num_cycles >= 1, f"{where}.num_cycles", f"{self.num_cycles} < 1", "use at least 1 cycle")
        require(self.num_cells * self.num_cycles <= MAX_SYNTHETIC_VALUES, f"{where}.num_cycles",
                f"{self.num_cycles:,} cycles x {self.num_cells:,} cells is over the limit of "
                f"{MAX_SYNTHETIC_VALUES:,} values per attribute", "Piemonte has 182 days; use fewer cycles")
        box = tuple(self.box_km)
        require(len(box) == 2 and all(np.isfinite(v) and v > 0 for v in box), f"{where}.box_km",
                f"expected [width, height] in km, both > 0, got {list(box)}", "e.g. [110, 140]")
        for name in ("length_scale_km", "persistence", "missing_fraction"):
            value = getattr(self, name)
            require(np.isfinite(value), f"{where}.{name}", f"must be a finite number, got {value!r}")
        require(self.length_scale_km > 0, f"{where}.length_scale_km", f"{self.length_scale_km} <= 0",
                "the correlation length must be > 0 km")
        require(0.0 <= self.persistence < 1.0, f"{where}.persistence", f"{self.persistence} not in [0, 1)",
                "1 would freeze the first day's pattern forever")
        require(0.0 <= self.missing_fraction < 1.0, f"{where}.missing_fraction",
                f"{self.missing_fraction} not in [0, 1)")
        require(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}", "numpy takes no negative seed")


# (mean, spread, transform) per attribute: log-normal for the positive, skewed ones, normal for temperature.
_SCALES = {"WS": (0.94, 0.45, "log"), "TEMP": (278.3, 5.0, "linear"), "EMI": (33.6, 0.8, "log"),
           "PM10": (63.3, 0.5, "log")}


def synthetic_field(config: SyntheticFieldConfig = SyntheticFieldConfig()) -> SensingField:
    """A seeded field: per attribute, a Gaussian-process pattern in space evolving as AR(1) in time, plus a
    shared daily swing, mapped to the attribute's Piemonte-like scale; PM10 gets random gaps (NaN)."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    cells, cycles, attributes = config.num_cells, config.num_cycles, len(PAPER_ATTRIBUTES)
    coords = rng.uniform(0.0, 1.0, (cells, 2)) * np.asarray(config.box_km)
    sq_dist = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-0.5 * sq_dist / config.length_scale_km ** 2) + 0.05 * np.eye(cells)
    chol = np.linalg.cholesky(kernel)
    innovations = rng.standard_normal((cycles, attributes, cells)) @ chol.T
    shared = rng.standard_normal((cycles, attributes, 1))
    rho = config.persistence
    pattern = np.empty((cycles, attributes, cells))
    pattern[0] = innovations[0] + shared[0]
    for y in range(1, cycles):
        pattern[y] = rho * pattern[y - 1] + np.sqrt(1.0 - rho ** 2) * (innovations[y] + shared[y])
    pattern /= np.sqrt(2.0)
    values = np.empty((cycles, cells, attributes))
    for a, name in enumerate(PAPER_ATTRIBUTES):
        mean, spread, transform = _SCALES[name]
        z = pattern[:, a, :]
        values[:, :, a] = mean * np.exp(spread * z - 0.5 * spread ** 2) if transform == "log" else mean + spread * z
    pm10 = PAPER_ATTRIBUTES.index("PM10")
    values[:, :, pm10][rng.random((cycles, cells)) < config.missing_fraction] = np.nan
    dates = np.datetime64("2005-10-01") + np.arange(cycles)
    return SensingField(coords, values, PAPER_ATTRIBUTES, dates,
                        f"synthetic field (seed {config.seed}, {cells} cells, {cycles} cycles)")
