"""A scenario: one city plus the pool of tasks that episodes are drawn from.

The only entry point the worlds need: ``load_scenario`` picks the embedded synthetic city or a real data
folder (``--data-dir`` / ``RLCS_DATA_DIR``) and caches all preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rl_cs.data.cache import cached_arrays
from rl_cs.data.city import City, SyntheticCityConfig, synthetic_city
from rl_cs.data.tasks import SyntheticTasksConfig, TaskPool, TaskRules, synthetic_task_pool
from rl_cs.errors import require


@dataclass
class Scenario:
    city: City
    tasks: TaskPool
    source: str
    """Human-readable origin (for logs and reports)."""


def load_scenario(data_dir: str | Path | None, rules: TaskRules, city_config: SyntheticCityConfig,
                  tasks_config: SyntheticTasksConfig, cache_dir: Path | None = None) -> Scenario:
    rules.validate()
    if data_dir:
        from rl_cs.data.chengdu import load_chengdu

        folder = Path(data_dir)
        require(folder.is_dir(), "--data-dir", f"folder {folder} does not exist",
                "give a folder with an .osm file, requests.csv and poi.csv, e.g. ../shared/data/chengdu")
        return load_chengdu(folder, rules, cache_dir)
    tasks_config.validate()
    city = synthetic_city(city_config, cache_dir)
    params = {"city": vars(city_config), "tasks": vars(tasks_config), "rules": vars(rules)}
    arrays = cached_arrays("synthetic-tasks", params,
                           lambda: synthetic_task_pool(city.node_xy, city.snap, tasks_config, rules).to_arrays(),
                           cache_dir)
    return Scenario(city, TaskPool.from_arrays(arrays),
                    f"synthetic city (seed {city_config.seed}, {city.num_nodes} nodes)")
