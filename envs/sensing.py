"""The multi-attribute social sensing world of QCO-TA (§3, §5): cells, daily cycles, attributes, participants.

Each cycle every participant moves to one cell (or stays) and senses all attributes there (CS, Definition 5);
the other cells are inferred (IS, Definition 6, see ``envs.inference``); the world scores the cycle by the
sensing error (Definition 7) normalised per attribute (Gamma_a, Eq. 2 / 15) and the travel cost in km (Eq. 1).

Missing ground truth (NaN in RS, e.g. Piemonte PM10): a participant at such a cell collects nothing for that
attribute, so the cell is inferred like an unsensed one; the cell is left out of that cycle's error mean (it
has no truth to compare with). An attribute with no collected value at all in a cycle keeps its previous
cycle's IS (NaN in the very first cycle, which is then left out of the mean over cycles and counted in
``Trajectory.cycles_without_estimate``).

``SensingWorld`` is the plain online loop (``reset`` / ``step``, ``run_online``); ``register`` makes the RLlib
view (``envs.sensing_rllib``, participants as agents) available to Ray as ``"sensing"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from envs.inference import Inference, InferenceConfig
from rl_cs.data.sensing_field import PAPER_ATTRIBUTES, SensingField
from rl_cs.errors import closest, require

NORMALISATIONS = ("mean", "std", "range")
ERROR_CELLS = ("all", "unsensed")


@dataclass(frozen=True)
class SensingWorldConfig:
    """One sensing world on a field."""

    attributes: tuple[str, ...] = PAPER_ATTRIBUTES[:2]
    """The attributes sensed and scored (2 to 4 of the field's, §5.5)."""
    num_participants: int = 8
    """P: participants, each sensing one cell per cycle (Definition 8); at most the number of cells."""
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    """How unsensed cells are inferred (§5.2)."""
    normalisation: str = "mean"
    """Gamma_a of Eq. 2 / 15: the attribute's error divided by its mean, std or range over the whole field."""
    error_cells: str = "all"
    """Cells averaged in Eq. 15's inner mean: all cells (sensed ones count with error 0) or unsensed only."""
    cycles: int = 0
    """Y: cycles per episode from the field's first day; 0 = all of them."""
    cost_weight: float = 1.0
    """RLlib view only: weight of a participant's travel (in units of the mean inter-cell distance) against
    the cycle's aggregated error in its reward."""

    def validate(self, where: str = "world") -> None:
        require(len(self.attributes) >= 1, f"{where}.attributes", "no attributes given",
                "list attribute names, e.g. [WS, TEMP]")
        require(len(set(self.attributes)) == len(self.attributes), f"{where}.attributes",
                f"repeated attribute in {list(self.attributes)}", "name each attribute once")
        require(self.num_participants >= 1, f"{where}.num_participants", f"{self.num_participants} < 1",
                "use at least one participant")
        self.inference.validate(f"{where}.inference")
        require(self.normalisation in NORMALISATIONS, f"{where}.normalisation",
                f"unknown normalisation '{self.normalisation}'", closest(self.normalisation, NORMALISATIONS))
        require(self.error_cells in ERROR_CELLS, f"{where}.error_cells", f"unknown choice '{self.error_cells}'",
                closest(self.error_cells, ERROR_CELLS))
        require(self.cycles >= 0, f"{where}.cycles", f"{self.cycles} < 0", "use 0 for all cycles")
        require(np.isfinite(self.cost_weight) and self.cost_weight >= 0, f"{where}.cost_weight",
                f"must be a finite number >= 0, got {self.cost_weight!r}", "0 ignores travel; the default is 1")

    def check_field(self, sensing_field: SensingField, where: str = "world") -> None:
        """Rules that need the data: attributes present, P <= X, enough cycles."""
        self.validate(where)
        sensing_field.attribute_index(self.attributes, f"{where}.attributes")
        require(self.num_participants <= sensing_field.num_cells, f"{where}.num_participants",
                f"{self.num_participants} participants but only {sensing_field.num_cells} cells",
                f"use at most {sensing_field.num_cells}")
        require(self.cycles <= sensing_field.num_cycles, f"{where}.cycles",
                f"{self.cycles} cycles but the data has {sensing_field.num_cycles}", "use 0 for all of them")


def attribute_scale(values: np.ndarray, normalisation: str) -> np.ndarray:
    """Gamma_a's divisor per attribute (last axis of ``values``), over all cycles and cells, NaN ignored."""
    flat = values.reshape(-1, values.shape[-1])
    if normalisation == "mean":
        return np.abs(np.nanmean(flat, 0))
    if normalisation == "std":
        return np.nanstd(flat, 0)
    return np.nanmax(flat, 0) - np.nanmin(flat, 0)


@dataclass(frozen=True)
class SensingObservation:
    """What a task-allocation scheme sees before deciding cycle ``cycle`` (0-based)."""

    cycle: int
    positions: np.ndarray
    """(P,) current cell of each participant."""
    inferred: np.ndarray
    """(cycle, A, X) IS of every past cycle."""
    collected: np.ndarray
    """(cycle, A, X) CS of every past cycle, NaN where nothing was collected."""
    distances_km: np.ndarray
    """(X, X) travel distances between cells."""
    inference: Inference
    """The world's inference, for the leave-one-out residuals."""

    @cached_property
    def residuals(self) -> np.ndarray:
        """(A, X) |CS - IS| of the last cycle at its collected cells, each IS inferred leaving that cell out;
        NaN elsewhere (all NaN before the first cycle). Computed on first use (SVR refits once per cell)."""
        if self.cycle == 0:
            return np.full(self.collected.shape[1:], np.nan)
        last = self.collected[-1]
        return np.abs(last - self.inference.leave_one_out(last))


@dataclass(frozen=True)
class CycleOutcome:
    """The scores of one cycle."""

    cells: np.ndarray
    """(P,) the cell each participant sensed."""
    cost_km: np.ndarray
    """(P,) C_y^p: distance travelled by each participant (Eq. 1)."""
    mae_all: np.ndarray
    """(A,) mean |IS - RS| over all cells with ground truth (Definition 7), attribute units."""
    mae_unsensed: np.ndarray
    """(A,) the same over unsensed cells only."""
    epsilon: float
    """This cycle's aggregated error: sum_a Gamma_a(mean SE) with the configured Gamma and cells."""


class SensingWorld:
    """The online loop: ``reset`` then ``step(cells)`` once per cycle until ``done``."""

    def __init__(self, sensing_field: SensingField, config: SensingWorldConfig):
        config.check_field(sensing_field)
        self.config = config
        self.field = sensing_field
        index = sensing_field.attribute_index(config.attributes)
        cycles = config.cycles or sensing_field.num_cycles
        self.truth = np.ascontiguousarray(sensing_field.values[:cycles][:, :, index].transpose(0, 2, 1))
        self.distances = sensing_field.distances_km()
        self.scale = attribute_scale(sensing_field.values[:, :, index], config.normalisation)
        self.inference = Inference(config.inference, sensing_field.coords_km, self.distances)
        self.reset(0)

    @property
    def num_cycles(self) -> int:
        return self.truth.shape[0]

    @property
    def num_cells(self) -> int:
        return self.truth.shape[2]

    @property
    def done(self) -> bool:
        return self.cycle >= self.num_cycles

    def reset(self, seed: int | None) -> SensingObservation:
        """Participants start at distinct random cells; histories are emptied."""
        rng = np.random.default_rng(seed)
        self.cycle = 0
        self.positions = rng.choice(self.num_cells, self.config.num_participants, replace=False)
        self.inferred = np.full(self.truth.shape, np.nan)
        self.collected = np.full(self.truth.shape, np.nan)
        return self.observation()

    def observation(self) -> SensingObservation:
        y = self.cycle
        return SensingObservation(y, self.positions.copy(), self.inferred[:y], self.collected[:y], self.distances,
                                  self.inference)

    def step(self, cells: np.ndarray) -> CycleOutcome:
        """Move participant p to ``cells[p]``, sense there, infer the rest and score the cycle."""
        cells = np.asarray(cells, dtype=int)
        require(cells.shape == self.positions.shape, "action", f"{cells.shape} cells for "
                f"{len(self.positions)} participants", "give one cell per participant")
        require(((cells >= 0) & (cells < self.num_cells)).all(), "action", "cell index out of range",
                f"use 0..{self.num_cells - 1}")
        require(not self.done, "step", "episode is over", "call reset first")
        y = self.cycle
        truth = self.truth[y]
        cost = self.distances[self.positions, cells]
        sensed = np.zeros(self.num_cells, dtype=bool)
        sensed[cells] = True
        collected = np.where(sensed, truth, np.nan)
        inferred = self.inference.estimate(collected)
        if y > 0:
            inferred = np.where(np.isnan(inferred), self.inferred[y - 1], inferred)
        self.collected[y], self.inferred[y] = collected, inferred
        error = np.abs(inferred - truth)
        mae_all = _nanmean_rows(error)
        mae_unsensed = _nanmean_rows(error[:, ~sensed]) if (~sensed).any() else np.zeros(len(error))
        mae = mae_all if self.config.error_cells == "all" else mae_unsensed
        self.positions, self.cycle = cells.copy(), y + 1
        return CycleOutcome(cells.copy(), cost, mae_all, mae_unsensed, float((mae / self.scale).sum()))


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN; NaN (without a warning) for a row with no value."""
    counts = (~np.isnan(values)).sum(1)
    return np.where(counts > 0, np.nansum(values, 1) / np.maximum(counts, 1), np.nan)


@dataclass
class Trajectory:
    """Per-cycle records of one episode, and the paper's two metrics over it."""

    cells: np.ndarray
    """(Y, P) cells sensed."""
    cost_km: np.ndarray
    """(Y, P) distance travelled per participant and cycle."""
    mae_all: np.ndarray
    """(Y, A) per-attribute error over all cells with truth."""
    mae_unsensed: np.ndarray
    """(Y, A) per-attribute error over unsensed cells."""
    epsilon: np.ndarray
    """(Y,) per-cycle aggregated error."""
    scale: np.ndarray
    """(A,) Gamma_a divisors used."""
    error_cells: str
    """Which per-attribute error Eq. 15 uses ('all' or 'unsensed')."""

    @classmethod
    def from_outcomes(cls, outcomes: list, world: "SensingWorld") -> "Trajectory":
        """The trajectory of the cycles ``outcomes`` (CycleOutcome, in order) of ``world``."""
        return cls(np.stack([o.cells for o in outcomes]), np.stack([o.cost_km for o in outcomes]),
                   np.stack([o.mae_all for o in outcomes]), np.stack([o.mae_unsensed for o in outcomes]),
                   np.array([o.epsilon for o in outcomes]), world.scale, world.config.error_cells)

    @property
    def aggregated_error(self) -> float:
        """epsilon of Eq. 15: sum over attributes of Gamma_a(mean over cycles and cells of SE)."""
        mae = self.mae_all if self.error_cells == "all" else self.mae_unsensed
        return float((np.nanmean(mae, 0) / self.scale).sum())

    @property
    def average_cost(self) -> float:
        """phi of Eq. 16: mean over cycles of the mean over participants of the distance travelled (km)."""
        return float(self.cost_km.mean())

    @property
    def cycles_without_estimate(self) -> int:
        return int(np.isnan(self.mae_all).any(1).sum())


def run_online(world: SensingWorld, act: Callable[[SensingObservation], np.ndarray], seed: int) -> Trajectory:
    """One episode, cycle by cycle: ``act`` maps each observation to one cell per participant."""
    observation = world.reset(seed)
    outcomes = []
    while not world.done:
        outcomes.append(world.step(act(observation)))
        observation = world.observation()
    return Trajectory.from_outcomes(outcomes, world)

