"""The real central-Chengdu files (../shared/data/chengdu): road graph size, tasks kept and dropped, sane
values, and a cached second load. Skipped when the shared data folder is absent."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from rl_cs.data.chengdu import load_chengdu
from rl_cs.data.tasks import NUM_SKILLS, TaskRules

CHENGDU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chengdu"
NUM_REQUESTS = 1628

pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(not CHENGDU.is_dir(), reason=f"real data not present: no folder {CHENGDU}")]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(scenario, cached scenario, seconds of the cached load); the first load parses the files."""
    cache = tmp_path_factory.mktemp("cache")
    scenario = load_chengdu(CHENGDU, TaskRules(), cache)
    start = time.perf_counter()
    cached = load_chengdu(CHENGDU, TaskRules(), cache)
    return scenario, cached, time.perf_counter() - start


def test_road_graph_size_and_connectivity(loaded):
    city = loaded[0].city
    assert 2500 <= city.num_nodes <= 3100 and 6300 <= len(city.edges) <= 7600
    assert city.crs == "EPSG:32648"
    assert np.isfinite(city.distance.matrix).all()  # strongly connected: every node reaches every other
    assert 20 < np.median(city.edge_length) < 500 and city.edge_length.max() < 5000  # metres, not degrees or km
    span = city.node_xy.max(axis=0) - city.node_xy.min(axis=0)  # the box is about 8.4 km x 8.3 km
    assert (7000 < span).all() and (span < 9500).all()


def test_tasks_kept_and_dropped(loaded):
    scenario = loaded[0]
    tasks = scenario.tasks
    dropped = NUM_REQUESTS - len(tasks)
    assert 1000 <= len(tasks) <= 1300
    assert f"{len(tasks)} tasks" in scenario.source and f"{dropped} dropped" in scenario.source


def test_task_values_are_sane(loaded):
    tasks, city = loaded[0].tasks, loaded[0].city
    rules = TaskRules()
    assert set(np.unique(tasks.skill)) <= set(range(NUM_SKILLS)) and len(np.unique(tasks.skill)) >= 6
    assert (np.diff(tasks.created) >= 0).all()
    assert 6 * 3600 <= tasks.created.min() and tasks.created.max() <= 9 * 3600  # 06:00-09:00
    assert (tasks.expected > tasks.created).all() and (tasks.deadline > tasks.expected).all()
    assert (tasks.rho_max >= rules.fare_base).all() and tasks.rho_max.max() < 200
    assert (tasks.quantity >= rules.min_quantity).all()
    assert tasks.node.min() >= 0 and tasks.node.max() < city.num_nodes


def test_second_load_is_cached(loaded):
    scenario, cached, seconds = loaded
    assert seconds < 2.0
    assert cached.source == scenario.source
    np.testing.assert_array_equal(cached.tasks.node, scenario.tasks.node)
    np.testing.assert_array_equal(cached.city.distance.matrix, scenario.city.distance.matrix)
