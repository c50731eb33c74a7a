"""Typed configuration of the dependency-aware spatial crowdsourcing (DASC) world (RMO, paper 001: Problem
Definition, MDP section, Table 1). Times in seconds, distances in metres, payments in CNY."""

from __future__ import annotations

from dataclasses import dataclass, field

from rl_cs.data.city import SyntheticCityConfig
from rl_cs.data.tasks import SyntheticTasksConfig, TaskRules
from rl_cs.errors import closest, require

REWARD_SIGNALS = ("sparse", "shaped")
MATCHING_RULES = ("km", "greedy")
"""The matching stage: Kuhn-Munkres on u(eta) (RMO) or greedy, nearest free feasible worker first (REC)."""
READY_RULES = ("finished", "assigned")
"""When a subtask may be matched: once its predecessors have finished (the paper's order constraint, the
default) or once they are all assigned (the paper's code: the worker travels early and waits)."""
MAX_SUBTASKS_PER_TASK = 64
"""Upper bound of subtasks_per_task (the observation holds a |T|_max x |T|_max adjacency block)."""


@dataclass(frozen=True)
class DASCConfig:
    """One DASC world: DAG tasks from the CSC task stream, subtasks as agents, Kuhn-Munkres matching."""

    num_workers: int = 300
    """N_w: workers (Table 2's middle point: 300)."""
    num_tasks: int = 60
    """Tasks per episode, a window of consecutive requests of the scenario's stream (Table 2: 60)."""
    subtasks_per_task: tuple[int, ...] = (6, 16)
    """[|T|_min, |T|_max]: subtasks per task, uniform on the closed range (Table 1: 6, 16)."""
    edge_probability: float = 0.3
    """Random DAG: nodes in a random topological order, each forward pair i < j an edge with this probability."""
    subtask_spread_m: float = 1000.0
    """A subtask lies near its task: the task's location plus N(0, spread^2) per axis, snapped to a road node."""
    num_skill_categories: int = 10
    """Skill categories (the paper's 10 POI classes)."""
    skills_per_subtask: tuple[int, ...] = (1, 3)
    """[min, max] of |K^tau|, the skills a subtask requires (the paper: 1-3)."""
    subtask_skills_mean: float = 1.5
    """Mean of the right-skewed normal that |K^tau| is drawn from (then rounded, clipped to the range)."""
    subtask_skills_var: float = 0.5
    """Its variance (the paper: sigma^2 = 0.5)."""
    subtask_skills_skew: float = 10.0
    """Its skewness parameter (scipy.stats.skewnorm's a; the paper: 10)."""
    worker_skills_mean: float = 3.5
    """Worker skill counts |K^w| ~ N(mean, std^2), rounded, clipped to [1, categories] (the paper: N(3.5, 1))."""
    worker_skills_std: float = 1.0
    """Standard deviation of |K^w|."""
    duration_s: tuple[float, ...] = (60.0, 300.0)
    """[min, max] of a subtask's duration t (uniform), seconds of work on site."""
    cpm_travel_s: float = 300.0
    """Travel allowed per subtask in the critical-path plan: each activity weighs duration + this."""
    expected_factor: float = 1.3
    """t_e = t_c + expected_factor x the task's critical path (the paper's code: 1.3)."""
    deadline_factor: float = 2.5
    """t_d = t_c + deadline_factor x the critical path (the paper's code: 2.5); must exceed expected_factor."""
    zeta: float = 0.02
    """Eq. 1 time penalty per minute after t_e: payment (1 - zeta dt) rho (Table 1: 0.02)."""
    kappa: float = 1e-3
    """Eq. 1 movement cost per metre travelled by the workers of a task (Table 1: 1e-3)."""
    speed_mps: float = 10.0
    """Worker speed on the road network (Table 1: v_w = 10 m/s)."""
    range_m: float = 5000.0
    """L^w: a worker is matched only to subtasks within this road distance (Table 1: 5 km)."""
    decision_interval_s: float = 30.0
    """Simulated time between decision steps; every ready subtask with a feasible worker decides then."""
    alpha: float = 0.5
    """eta = {alpha, beta} of the matching utility (Eq. 13), initial value; `set_eta` changes it."""
    beta: float = 0.5
    """See alpha: v1 = alpha beta, v2 = alpha (1 - beta), v3 = 1 - alpha."""
    matching: str = "km"
    """The matching stage: km (Kuhn-Munkres on u(eta), Eq. 9-13, RMO) or greedy (each recommended subtask, in
    the order they became ready, takes its nearest free feasible worker: REC, RMO's baseline)."""
    ready_when: str = "finished"
    """When a subtask may be matched (decide): ``finished`` -- all its predecessors have finished (the
    paper's order constraint, default); ``assigned`` -- opt-in, as the paper's public code does: all its
    predecessors are assigned (matched or finished). Work still starts only after every predecessor has
    finished (their finish times are known once assigned): an early-matched worker travels, then waits on
    site. Feasibility, expiry and t_e/t_d checks use that start. Early matching trades a worker's idle
    waiting against a head start: the choice a recommender can learn and a match-everything rule cannot."""
    max_cardinality: bool = True
    """Kuhn-Munkres matches as many recommended subtasks as possible, then maximises utility among those
    matchings (the paper's code: max-weight matching with maxcardinality=True); false: maximum utility only."""
    reward: str = "sparse"
    """Reward signal in the reward dict: sparse (the paper's first MDP) or shaped (Eq. 3); infos carry both."""
    num_near_workers: int = 5
    """N^w: nearest feasible idle workers in an observation (Table 1: 5)."""
    num_near_subtasks: int = 5
    """N^tau: nearest other ready subtasks in an observation (Table 1: 5)."""
    max_episode_s: float = 8 * 3600.0
    """Safety cap on simulated time per episode (an episode normally ends when every task is resolved)."""
    rules: TaskRules = field(default_factory=TaskRules)
    """How a request becomes a task (its fare sets the payment rho)."""
    city: SyntheticCityConfig = field(default_factory=SyntheticCityConfig)
    """The synthetic city (used when no data folder is given)."""
    synthetic_tasks: SyntheticTasksConfig = field(default_factory=SyntheticTasksConfig)
    """The synthetic request stream (used when no data folder is given)."""

    @property
    def min_subtasks(self) -> int:
        return int(self.subtasks_per_task[0])

    @property
    def max_subtasks(self) -> int:
        return int(self.subtasks_per_task[1])

    def validate(self, where: str = "world") -> "DASCConfig":
        require(self.num_workers > 0, f"{where}.num_workers", f"must be > 0, got {self.num_workers}")
        require(self.num_tasks > 0, f"{where}.num_tasks", f"must be > 0, got {self.num_tasks}")
        _range(self.subtasks_per_task, f"{where}.subtasks_per_task", 1, MAX_SUBTASKS_PER_TASK, "subtasks")
        require(0 <= self.edge_probability <= 1, f"{where}.edge_probability",
                f"must be in [0, 1], got {self.edge_probability}")
        require(self.subtask_spread_m >= 0, f"{where}.subtask_spread_m", "must be >= 0")
        require(self.num_skill_categories >= 1, f"{where}.num_skill_categories", "must be >= 1")
        _range(self.skills_per_subtask, f"{where}.skills_per_subtask", 0, None, "skills")
        require(self.skills_per_subtask[1] <= self.num_skill_categories, f"{where}.skills_per_subtask",
                f"up to {self.skills_per_subtask[1]} skills per subtask but only {self.num_skill_categories} "
                "skill categories", f"use at most {self.num_skill_categories}, or raise num_skill_categories")
        require(self.subtask_skills_var > 0, f"{where}.subtask_skills_var", "must be > 0")
        require(self.worker_skills_std >= 0, f"{where}.worker_skills_std", "must be >= 0")
        require(len(self.duration_s) == 2, f"{where}.duration_s", "expected [min, max] seconds")
        require(0 < self.duration_s[0] <= self.duration_s[1], f"{where}.duration_s",
                f"need 0 < min <= max, got {list(self.duration_s)}")
        require(self.cpm_travel_s >= 0, f"{where}.cpm_travel_s", "must be >= 0")
        require(self.expected_factor > 0, f"{where}.expected_factor", "must be > 0 (t_e after t_c)")
        require(self.deadline_factor > self.expected_factor, f"{where}.deadline_factor",
                f"t_d must come after t_e: need deadline_factor > expected_factor ({self.expected_factor})")
        require(self.zeta >= 0, f"{where}.zeta", "must be >= 0")
        require(self.kappa >= 0, f"{where}.kappa", "must be >= 0")
        require(self.speed_mps > 0, f"{where}.speed_mps", "must be > 0")
        require(self.range_m > 0, f"{where}.range_m", "must be > 0")
        require(self.decision_interval_s > 0, f"{where}.decision_interval_s", "must be > 0")
        require(self.max_episode_s > 0, f"{where}.max_episode_s", "must be > 0")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"{where}.{name}", f"must be in [0, 1] (Eq. 13), got {value}")
        require(self.matching in MATCHING_RULES, f"{where}.matching", f"unknown matching rule '{self.matching}'",
                closest(self.matching, MATCHING_RULES))
        require(self.ready_when in READY_RULES, f"{where}.ready_when", f"unknown rule '{self.ready_when}'",
                closest(self.ready_when, READY_RULES))
        require(self.reward in REWARD_SIGNALS, f"{where}.reward", f"unknown reward signal '{self.reward}'",
                closest(self.reward, REWARD_SIGNALS))
        require(self.num_near_workers >= 1, f"{where}.num_near_workers", "must be >= 1")
        require(self.num_near_subtasks >= 1, f"{where}.num_near_subtasks", "must be >= 1")
        self.rules.validate(f"{where}.rules")
        self.city.validate(f"{where}.city")
        self.synthetic_tasks.validate(f"{where}.synthetic_tasks")
        return self


def _range(values, where: str, low: int, high: int | None, what: str) -> None:
    """A closed integer range [a, b]: two values, not empty (b >= a), within [low, high]."""
    require(len(values) == 2, where, f"expected [min, max] {what}, got {list(values)}", "e.g. [6, 16]")
    a, b = int(values[0]), int(values[1])
    require(a <= b, where, f"inverted range [{a}, {b}]: min > max, so no value lies in it", f"e.g. [{b}, {a}]")
    require(a >= low, where, f"min must be >= {low}, got {a}")
    if high is not None:
        require(b <= high, where, f"max must be <= {high}, got {b}")
