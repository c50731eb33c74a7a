"""Spatial tasks (CAFE §3): ``(t_c, t_e, t_d, location, skill k, quantity q, rho_max)`` plus penalty rate zeta.

A ``TaskPool`` holds every task of a scenario as columns (numpy arrays); worlds draw episodes from it.
The rules that turn a raw trip (creation time, pick-up node, trip length) into a task are stated in
``TaskRules`` and shared by the synthetic generator and the real-data loaders.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.spatial import cKDTree

from rl_cs.errors import require

NUM_SKILLS = 8
MAX_SYNTHETIC_TASKS = 1_000_000
"""Largest synthetic task pool: generating one takes about 150 bytes per task (the cache keeps 56), and
episodes only draw windows of world.num_tasks from it (Chengdu's real stream has 1,628 requests)."""
MAX_POIS = 1_000_000
"""Largest synthetic POI set (central Chengdu has about 31,000 POIs)."""
MAX_HOTSPOTS = 10_000
"""Largest number of synthetic demand hotspots."""


@dataclass(frozen=True)
class TaskRules:
    """How a trip becomes a task. Defaults follow a Chengdu taxi tariff and CAFE's Fig. 2 payment curve."""

    fare_base: float = 8.0
    """Payment for the first ``fare_base_km`` kilometres (CNY)."""
    fare_base_km: float = 2.0
    """Kilometres covered by the base fare."""
    fare_per_km: float = 1.9
    """Payment per kilometre beyond the base distance (CNY/km). rho_max = base + per_km * max(0, km - base_km)."""
    work_minutes_per_km: float = 3.0
    """Quantity q in worker-minutes per kilometre of trip (one worker does one unit per minute)."""
    min_quantity: float = 2.0
    """Smallest quantity q of a task, worker-minutes."""
    expected_minutes: float = 10.0
    """t_e = t_c + expected_minutes (payment is full until then)."""
    deadline_minutes: float = 20.0
    """t_d = t_e + deadline_minutes (the task expires at t_d)."""
    payment_at_deadline: float = 0.5
    """Fraction of rho_max still paid just before t_d; fixes zeta = (1 - this) / (t_d - t_e)."""
    poi_radius_m: float = 300.0
    """A task's skill is the dominant skill among POIs within this radius (else the nearest POI's)."""

    def validate(self, where: str = "world.tasks") -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            require(np.isfinite(value), f"{where}.{item.name}", f"must be a finite number, got {value!r}")
        require(self.fare_base >= 0 and self.fare_per_km >= 0, f"{where}.fare_base/fare_per_km",
                "negative payment", "fares must be >= 0")
        require(self.fare_base_km >= 0, f"{where}.fare_base_km", "must be >= 0")
        require(self.work_minutes_per_km > 0 and self.min_quantity > 0, f"{where}.work_minutes_per_km/min_quantity",
                "task quantity must be > 0")
        require(self.expected_minutes > 0, f"{where}.expected_minutes", "must be > 0 (t_e after t_c)")
        require(self.deadline_minutes > 0, f"{where}.deadline_minutes",
                f"t_d < t_e: deadline_minutes must be > 0, got {self.deadline_minutes}")
        require(0 <= self.payment_at_deadline <= 1, f"{where}.payment_at_deadline",
                f"must be in [0, 1] (a larger penalty gives a negative payment), got {self.payment_at_deadline}")
        require(self.poi_radius_m > 0, f"{where}.poi_radius_m", "must be > 0")

    @property
    def zeta(self) -> float:
        """Penalty rate per second (CAFE §3): payment falls by zeta * rho_max per second after t_e."""
        return (1.0 - self.payment_at_deadline) / (self.deadline_minutes * 60.0)

    def fare(self, trip_km: np.ndarray) -> np.ndarray:
        return self.fare_base + self.fare_per_km * np.maximum(0.0, trip_km - self.fare_base_km)

    def quantity(self, trip_km: np.ndarray) -> np.ndarray:
        return np.maximum(self.min_quantity, self.work_minutes_per_km * trip_km)


def payment(rho_max: np.ndarray, finish: np.ndarray, expected: np.ndarray, deadline: np.ndarray,
            zeta: float) -> np.ndarray:
    """CAFE §3 payment: rho_max if t_f <= t_e; (1 - zeta (t_f - t_e)) rho_max if t_e < t_f < t_d; else 0."""
    decayed = (1.0 - zeta * (finish - expected)) * rho_max
    return np.where(finish <= expected, rho_max, np.where(finish < deadline, decayed, 0.0))


@dataclass
class TaskPool:
    """Every task of a scenario, sorted by creation time. Times in seconds, quantity in worker-minutes."""

    created: np.ndarray
    expected: np.ndarray
    deadline: np.ndarray
    node: np.ndarray
    skill: np.ndarray
    quantity: np.ndarray
    rho_max: np.ndarray
    zeta: float

    def __len__(self) -> int:
        return len(self.created)

    @classmethod
    def from_trips(cls, created: np.ndarray, node: np.ndarray, skill: np.ndarray, trip_km: np.ndarray,
                   rules: TaskRules) -> "TaskPool":
        order = np.argsort(created, kind="stable")
        created = np.asarray(created, dtype=np.float64)[order]
        expected = created + rules.expected_minutes * 60.0
        return cls(created=created, expected=expected, deadline=expected + rules.deadline_minutes * 60.0,
                   node=np.asarray(node, dtype=np.int64)[order], skill=np.asarray(skill, dtype=np.int64)[order],
                   quantity=rules.quantity(np.asarray(trip_km)[order]), rho_max=rules.fare(np.asarray(trip_km)[order]),
                   zeta=rules.zeta)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "TaskPool":
        values = {f.name: arrays[f.name] for f in fields(cls)}
        values["zeta"] = float(values["zeta"])
        return cls(**values)

    def window(self, start: int, count: int) -> "TaskPool":
        """``count`` consecutive tasks from index ``start``, times rebased so the first is created at 0."""
        part = slice(start, start + count)
        offset = self.created[start]
        return TaskPool(self.created[part] - offset, self.expected[part] - offset, self.deadline[part] - offset,
                        self.node[part], self.skill[part], self.quantity[part], self.rho_max[part], self.zeta)


def poi_category_to_skill(category: np.ndarray) -> np.ndarray:
    """Stated mapping of the 16 POI category indices onto CAFE's 8 skills: adjacent pairs merge (k = c // 2)."""
    return np.asarray(category, dtype=np.int64) // 2


def skills_from_pois(task_xy: np.ndarray, poi_xy: np.ndarray, poi_skill: np.ndarray, radius_m: float) -> np.ndarray:
    """A task's skill: the most frequent skill among POIs within ``radius_m`` (ties: lowest index),
    or the nearest POI's skill when none is that close (CAFE §5.1: 'skill requirements from nearby POIs')."""
    tree = cKDTree(poi_xy)
    _, nearest = tree.query(task_xy)
    skills = poi_skill[nearest].copy()
    for i, neighbours in enumerate(tree.query_ball_point(task_xy, r=radius_m)):
        if neighbours:
            skills[i] = np.bincount(poi_skill[neighbours], minlength=NUM_SKILLS).argmax()
    return skills


def sample_worker_skills(count: int, rng: np.random.Generator) -> np.ndarray:
    """Worker skill sets as a (count, 8) boolean matrix; sizes ~ N(2.5, 1) rounded, clipped to [1, 8] (CAFE §5.1)."""
    sizes = np.clip(np.rint(rng.normal(2.5, 1.0, count)), 1, NUM_SKILLS).astype(int)
    scores = rng.random((count, NUM_SKILLS))
    ranks = scores.argsort(axis=1).argsort(axis=1)
    return ranks < sizes[:, None]


@dataclass(frozen=True)
class SyntheticTasksConfig:
    """The embedded default task stream: hotspot-clustered requests with POI-derived skills."""

    num_tasks: int = 3000
    """Size of the pool episodes draw windows from."""
    mean_interarrival_s: float = 6.0
    """Mean time between requests (Chengdu's real stream: about 6.6 s)."""
    num_hotspots: int = 6
    """Gaussian demand hotspots; a third of requests are uniform over the city instead."""
    hotspot_sigma_m: float = 600.0
    """Spread of each hotspot, metres."""
    mean_trip_km: float = 5.0
    """Mean trip length (log-normal), kilometres; sets payment and quantity via TaskRules."""
    num_pois: int = 2000
    """Synthetic POIs (16 categories, spatially clustered) from which skills are derived like real data."""
    seed: int = 0
    """Generator seed."""

    def validate(self, where: str = "world.synthetic_tasks") -> None:
        for name in ("mean_interarrival_s", "hotspot_sigma_m", "mean_trip_km"):
            value = getattr(self, name)
            require(np.isfinite(value), f"{where}.{name}", f"must be a finite number, got {value!r}")
        require(self.num_tasks > 0, f"{where}.num_tasks", "must be > 0")
        require(self.num_tasks <= MAX_SYNTHETIC_TASKS, f"{where}.num_tasks",
                f"a pool of {self.num_tasks:,} tasks is over the limit of {MAX_SYNTHETIC_TASKS:,} "
                f"(about {self.num_tasks * 150 / 2 ** 30:,.1f} GiB to generate)",
                "episodes draw windows of world.num_tasks from the pool; a few thousand tasks are enough")
        require(self.mean_interarrival_s > 0, f"{where}.mean_interarrival_s", "must be > 0")
        require(self.num_hotspots > 0 and self.hotspot_sigma_m > 0, f"{where}.num_hotspots/hotspot_sigma_m",
                "must be > 0")
        require(self.num_hotspots <= MAX_HOTSPOTS, f"{where}.num_hotspots",
                f"{self.num_hotspots:,} hotspots is over the limit of {MAX_HOTSPOTS:,}", "the default has 6")
        require(self.mean_trip_km > 0, f"{where}.mean_trip_km", "must be > 0")
        require(self.num_pois > 0, f"{where}.num_pois", "must be > 0")
        require(self.num_pois <= MAX_POIS, f"{where}.num_pois", f"{self.num_pois:,} POIs is over the limit of "
                f"{MAX_POIS:,}", "central Chengdu has about 31,000 POIs; the default is 2,000")
        require(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}", "numpy takes no negative seed")


def synthetic_task_pool(node_xy: np.ndarray, snap, config: SyntheticTasksConfig, rules: TaskRules) -> TaskPool:
    """Seeded synthetic requests over a city given by node coordinates and a snapping function."""
    rng = np.random.default_rng(config.seed)
    low, high = node_xy.min(axis=0), node_xy.max(axis=0)
    created = np.cumsum(rng.exponential(config.mean_interarrival_s, config.num_tasks))
    centres = rng.uniform(low, high, (config.num_hotspots, 2))
    clustered = rng.random(config.num_tasks) < 2 / 3
    xy = np.where(clustered[:, None],
                  centres[rng.integers(config.num_hotspots, size=config.num_tasks)]
                  + rng.normal(0, config.hotspot_sigma_m, (config.num_tasks, 2)),
                  rng.uniform(low, high, (config.num_tasks, 2)))
    node, _ = snap(np.clip(xy, low, high))
    poi_centres = rng.uniform(low, high, (16, 2))
    poi_category = rng.integers(16, size=config.num_pois)
    poi_xy = poi_centres[poi_category] + rng.normal(0, (high - low).mean() / 6, (config.num_pois, 2))
    skill = skills_from_pois(node_xy[node], poi_xy, poi_category_to_skill(poi_category), rules.poi_radius_m)
    trip_km = rng.lognormal(np.log(config.mean_trip_km) - 0.18, 0.6, config.num_tasks)
    return TaskPool.from_trips(created, node, skill, trip_km, rules)
