"""Data layer: OSM road graphs, real-data loading on tiny hand-made files, the synthetic city and task
pool, task rules and payment, the preprocessing cache, and every bad-input case of the data layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

import rl_cs.data.chengdu as chengdu
import rl_cs.data.city as city_module
from rl_cs.data.chengdu import load_chengdu
from rl_cs.data.city import City, DistanceOracle, SyntheticCityConfig, road_matrix, synthetic_city, synthetic_city_arrays
from rl_cs.data.osm import city_arrays_from_osm, is_drivable, project_lnglat
from rl_cs.data.scenario import load_scenario
from rl_cs.data.tasks import (NUM_SKILLS, SyntheticTasksConfig, TaskPool, TaskRules, payment, poi_category_to_skill,
                              sample_worker_skills, skills_from_pois, synthetic_task_pool)
from rl_cs.errors import InputError

# A tiny map (lat, lng). Drivable: residential A-B-C (two-way), primary C-D-A (one-way), residential C-E
# (two-way dead end), primary F-A with oneway=-1 (so A -> F only: F is not strongly connected).
# Dropped: footway E-A and B-J, a parking aisle A-K, a building ring G-H-I.
POINTS = {"A": (30.0000, 104.0000), "B": (30.0010, 104.0006), "C": (30.0020, 104.0000),
          "D": (30.0010, 103.9998), "E": (30.0030, 104.0000), "F": (29.9990, 104.0000),
          "J": (30.0010, 104.0020), "K": (30.0000, 103.9990), "G": (30.0015, 104.0015),
          "H": (30.0015, 104.0018), "I": (30.0018, 104.0018)}
WAYS = [("ABC", {"highway": "residential"}), ("CDA", {"highway": "primary", "oneway": "yes"}),
        ("CE", {"highway": "residential"}), ("FA", {"highway": "primary", "oneway": "-1"}),
        ("EA", {"highway": "footway"}), ("BJ", {"highway": "footway"}),
        ("AK", {"highway": "service", "service": "parking_aisle"}), ("GHIG", {"building": "yes"})]
EARTH_RADIUS_M = 6_371_009.0  # the radius osmnx uses for great-circle lengths


def osm_xml() -> str:
    ids = {name: 100 + i for i, name in enumerate(POINTS)}
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", '<osm version="0.6">']
    lines += [f'  <node id="{ids[n]}" lat="{lat}" lon="{lng}"/>' for n, (lat, lng) in POINTS.items()]
    for number, (names, tags) in enumerate(WAYS):
        lines.append(f'  <way id="{900 + number}">')
        lines += [f'    <nd ref="{ids[n]}"/>' for n in names]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("  </way>")
    return "\n".join(lines + ["</osm>"])


def haversine(a: str, b: str) -> float:
    (lat1, lng1), (lat2, lng2) = (np.radians(POINTS[a]), np.radians(POINTS[b]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def path_length(names: str) -> float:
    return sum(haversine(a, b) for a, b in zip(names, names[1:]))


@pytest.fixture
def osm_file(tmp_path):
    path = tmp_path / "tiny.osm"
    path.write_text(osm_xml())
    return path


def node_of(arrays: dict, name: str) -> int:
    lat, lng = POINTS[name]
    xy = project_lnglat([lng], [lat], str(arrays["crs"]))
    gaps = np.linalg.norm(arrays["node_xy"] - xy, axis=1)
    assert gaps.min() < 0.01, f"{name} is not a graph node"
    return int(gaps.argmin())


# --- OSM road graph -------------------------------------------------------------------------------------------

def test_drivable_filter_keeps_roads_only():
    assert is_drivable({"highway": "residential"}) and is_drivable({"highway": "primary_link"})
    assert is_drivable({"highway": "service", "service": "driveway"})
    for tags in ({"highway": "footway"}, {"highway": "steps"}, {"building": "yes"}, {},
                 {"highway": "service", "service": "parking_aisle"}, {"highway": "primary", "access": "private"},
                 {"highway": "pedestrian", "area": "yes"}, {"highway": "residential", "motor_vehicle": "no"}):
        assert not is_drivable(tags), tags


def test_osm_graph_counts_lengths_and_connectivity(osm_file):
    arrays = city_arrays_from_osm(osm_file)
    assert str(arrays["crs"]) == "EPSG:32648"  # UTM zone 48N for longitude 104
    # A, C, E remain (B and D are simplified away, F only has an in-edge, footway/parking/building dropped).
    assert len(arrays["node_xy"]) == 3
    a, c, e = (node_of(arrays, name) for name in "ACE")
    edges = sorted(map(tuple, arrays["edges"].tolist()))
    assert edges == sorted([(a, c), (c, a), (c, a), (c, e), (e, c)])
    assert arrays["edges"].min() >= 0 and arrays["edges"].max() < 3
    expected = [path_length(names) for names in ("ABC", "CBA", "CDA", "CE", "EC")]
    np.testing.assert_allclose(sorted(arrays["edge_length"]), sorted(expected), rtol=1e-4)
    graph = road_matrix(3, arrays["edges"], arrays["edge_length"])
    assert connected_components(graph, directed=True, connection="strong")[0] == 1


def test_osm_distances_match_hand_computation(osm_file):
    arrays = city_arrays_from_osm(osm_file)
    city = City.from_arrays("tiny", arrays["node_xy"], arrays["edges"], arrays["edge_length"])
    a, c, e = (node_of(arrays, name) for name in "ACE")
    to_c_from_a, back = path_length("ABC"), min(path_length("CBA"), path_length("CDA"))
    assert back < to_c_from_a  # the one-way street makes the way back shorter
    distance = city.distance.between(np.array([a, c, e]), np.array([a, c, e]))
    expected = [[0, to_c_from_a, to_c_from_a + haversine("C", "E")],
                [back, 0, haversine("C", "E")],
                [haversine("E", "C") + back, haversine("E", "C"), 0]]
    np.testing.assert_allclose(distance, expected, rtol=1e-4)


def test_osm_without_roads_is_rejected(tmp_path):
    path = tmp_path / "paths.osm"
    path.write_text(osm_xml().replace('v="residential"', 'v="footway"').replace('v="primary"', 'v="cycleway"'))
    with pytest.raises(InputError, match="paths.osm.*drivable road"):
        city_arrays_from_osm(path)


def test_broken_osm_is_rejected(tmp_path):
    path = tmp_path / "broken.osm"
    path.write_text("<osm><node id='1'")
    with pytest.raises(InputError, match="broken.osm.*OSM XML"):
        city_arrays_from_osm(path)


# --- real-data loader on tiny files -----------------------------------------------------------------------------

REQUEST_HEADER = "order_id,origin_lat,origin_lng,trip_distance,start_time"
# near A, near E, far outside the map, near C; creation times out of order.
REQUEST_ROWS = ["1,30.00005,104.00005,1.0,30000", "2,30.00305,104.0,5.0,28000",
                "3,30.05,104.05,3.0,29000", "4,30.0020,104.00005,10.0,31000"]
POI_ROWS = [",id,wgslng,wgslat,typei",
            "0,a1,104.0,30.0,4", "1,a2,104.0001,30.0,5", "2,a3,104.0,30.0001,9",  # near A: skills 2, 2, 4
            "3,e1,104.0,30.003,15",  # near E: skill 7
            "4,c1,104.0,30.002,1"]  # near C: skill 0
# stated here rather than taken from the defaults, so that the hand-computed figures below stay right
RULES = TaskRules(fare_base=8.0, fare_base_km=2.0, fare_per_km=1.9, work_minutes_per_km=1.0, min_quantity=2.0,
                  expected_minutes=15.0, deadline_minutes=15.0, payment_at_deadline=0.5, poi_radius_m=50.0)


def write_folder(folder, requests=(REQUEST_HEADER, *REQUEST_ROWS), pois=tuple(POI_ROWS)):
    folder.mkdir(exist_ok=True)
    (folder / "tiny.osm").write_text(osm_xml())
    (folder / "requests.csv").write_text("\n".join(requests) + "\n")
    (folder / "poi.csv").write_text("\n".join(pois) + "\n")
    return folder


def test_load_real_folder_builds_tasks(tmp_path):
    scenario = load_chengdu(write_folder(tmp_path / "data"), RULES, tmp_path / "cache")
    tasks, city = scenario.tasks, scenario.city
    assert city.num_nodes == 3 and city.crs == "EPSG:32648"
    assert len(tasks) == 3 and "3 tasks" in scenario.source and "1 dropped" in scenario.source
    np.testing.assert_array_equal(tasks.created, [28000, 30000, 31000])
    arrays = {"node_xy": city.node_xy, "crs": city.crs}
    np.testing.assert_array_equal(tasks.node, [node_of(arrays, n) for n in "EAC"])
    np.testing.assert_array_equal(tasks.skill, [7, 2, 0])
    np.testing.assert_allclose(tasks.rho_max, [8 + 1.9 * 3, 8, 8 + 1.9 * 8])
    np.testing.assert_allclose(tasks.quantity, [5, 2, 10])
    np.testing.assert_allclose(tasks.expected - tasks.created, 15 * 60)
    np.testing.assert_allclose(tasks.deadline - tasks.expected, 15 * 60)


def test_second_load_comes_from_cache(tmp_path, monkeypatch):
    folder, cache = write_folder(tmp_path / "data"), tmp_path / "cache"
    first = load_chengdu(folder, RULES, cache)

    def rebuild(*args):
        raise AssertionError("preprocessing ran again")

    monkeypatch.setattr(chengdu, "city_arrays_from_osm", rebuild)
    monkeypatch.setattr(chengdu, "task_arrays", rebuild)
    second = load_chengdu(folder, RULES, cache)
    assert second.source == first.source
    for name, value in first.tasks.to_arrays().items():
        np.testing.assert_array_equal(getattr(second.tasks, name), value)
    np.testing.assert_array_equal(second.city.distance.matrix, first.city.distance.matrix)
    with pytest.raises(AssertionError, match="ran again"):  # other rules: a different cache entry
        load_chengdu(folder, TaskRules(poi_radius_m=60.0), cache)


@pytest.mark.parametrize("remove, message", [("requests.csv", "requests.csv: file not found"),
                                              ("poi.csv", "poi.csv: file not found"),
                                              ("tiny.osm", "exactly one .osm file, found 0")])
def test_missing_file(tmp_path, remove, message):
    folder = write_folder(tmp_path / "data")
    (folder / remove).unlink()
    with pytest.raises(InputError, match=message):
        load_chengdu(folder, RULES, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing written


def test_missing_data_dir():
    with pytest.raises(InputError, match="--data-dir"):
        load_scenario("/no/such/folder", TaskRules(), SyntheticCityConfig(), SyntheticTasksConfig())


def test_missing_columns_are_listed(tmp_path):
    folder = write_folder(tmp_path / "data", requests=["origin_lat,origin_lng", "30.0,104.0"])
    with pytest.raises(InputError, match="requests.csv: missing required column.*trip_distance, start_time"):
        load_chengdu(folder, RULES, tmp_path / "cache")


@pytest.mark.parametrize("row, column, message", [
    ("5,30.0,104.0,abc,28000", "trip_distance", "data row 2: 'abc' is not a finite number"),
    ("5,30.0,104.0,-1.5,28000", "trip_distance", "data row 2: -1.5 is out of range"),
    ("5,30.0,104.0,1.0,-5", "start_time", "data row 2: -5 is out of range .expected seconds since midnight"),
    ("5,104.0,30.0,1.0,28000", "origin_lat", "data row 2: 104 is out of range .expected a latitude"),
])
def test_bad_request_values(tmp_path, row, column, message):
    folder = write_folder(tmp_path / "data", requests=[REQUEST_HEADER, REQUEST_ROWS[0], row])
    with pytest.raises(InputError, match=f"requests.csv, column {column}: {message}"):
        load_chengdu(folder, RULES, tmp_path / "cache")


def test_bad_poi_category(tmp_path):
    folder = write_folder(tmp_path / "data", pois=[*POI_ROWS, "5,x,104.0,30.0,16"])
    with pytest.raises(InputError, match="poi.csv, column typei: data row 6: 16 is out of range"):
        load_chengdu(folder, RULES, tmp_path / "cache")


def test_all_pickups_outside_the_map(tmp_path):
    folder = write_folder(tmp_path / "data", requests=[REQUEST_HEADER, "1,31.0,105.0,1.0,0", "2,29.0,103.0,2.0,1"])
    with pytest.raises(InputError, match="origin_lat/origin_lng: all 2 pick-ups lie outside the map"):
        load_chengdu(folder, RULES, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("osm-tasks-*"))  # no task cache entry


# --- synthetic city -------------------------------------------------------------------------------------------

SMALL_CITY = SyntheticCityConfig(rows=8, cols=9, seed=3)


def test_synthetic_city_is_seeded_and_strongly_connected():
    first, again = synthetic_city_arrays(SMALL_CITY), synthetic_city_arrays(SMALL_CITY)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    other = synthetic_city_arrays(SyntheticCityConfig(rows=8, cols=9, seed=4))
    assert not np.array_equal(first["node_xy"][:10], other["node_xy"][:10])
    graph = road_matrix(len(first["node_xy"]), first["edges"], first["edge_length"])
    assert connected_components(graph, directed=True, connection="strong")[0] == 1
    assert 0.8 * 72 <= len(first["node_xy"]) <= 72


def test_distances_symmetric_only_with_two_way_streets(tmp_path):
    two_way = synthetic_city(SyntheticCityConfig(rows=8, cols=9, one_way_fraction=0.0), tmp_path)
    np.testing.assert_allclose(two_way.distance.matrix, two_way.distance.matrix.T, rtol=1e-6)
    one_way = synthetic_city(SyntheticCityConfig(rows=8, cols=9, one_way_fraction=0.5), tmp_path)
    assert not np.allclose(one_way.distance.matrix, one_way.distance.matrix.T, rtol=1e-6)
    # every edge bounds the distance between its ends (triangle inequality on the road graph)
    u, v = one_way.edges.T
    assert (one_way.distance.matrix[u, v] <= one_way.edge_length + 1e-3).all()


def test_all_pairs_and_per_source_oracles_agree(tmp_path):
    city = synthetic_city(SMALL_CITY, tmp_path)
    graph = road_matrix(city.num_nodes, city.edges, city.edge_length)
    src, dst = np.array([0, 5, 5, 17, 3]), np.arange(city.num_nodes)
    np.testing.assert_allclose(DistanceOracle(graph).between(src, dst),
                               DistanceOracle.all_pairs(graph).between(src, dst), rtol=1e-6)
    np.testing.assert_allclose(city.distance.between(src, dst), DistanceOracle(graph).between(src, dst), rtol=1e-6)


def test_snap_returns_nearest_node(tmp_path):
    city = synthetic_city(SMALL_CITY, tmp_path)
    nodes, gap = city.snap(city.node_xy[[4, 9]] + [[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(nodes, [4, 9])
    np.testing.assert_allclose(gap, [5.0, 0.0])


def test_synthetic_city_cache_hit(tmp_path, monkeypatch):
    first = synthetic_city(SMALL_CITY, tmp_path)

    def rebuild(config):
        raise AssertionError("synthetic city built again")

    monkeypatch.setattr(city_module, "synthetic_city_arrays", rebuild)
    second = synthetic_city(SMALL_CITY, tmp_path)
    np.testing.assert_array_equal(first.distance.matrix, second.distance.matrix)
    assert second.crs == ""


def test_synthetic_scenario_is_seeded(tmp_path):
    tasks = SyntheticTasksConfig(num_tasks=300, num_pois=200)
    first = load_scenario(None, TaskRules(), SMALL_CITY, tasks, tmp_path)
    again = load_scenario(None, TaskRules(), SMALL_CITY, tasks, tmp_path / "other")
    other = load_scenario(None, TaskRules(), SMALL_CITY, SyntheticTasksConfig(num_tasks=300, num_pois=200, seed=1),
                          tmp_path)
    for name, value in first.tasks.to_arrays().items():
        np.testing.assert_array_equal(getattr(again.tasks, name), value)
    assert not np.array_equal(first.tasks.node, other.tasks.node)
    pool = first.tasks
    assert len(pool) == 300 and (np.diff(pool.created) >= 0).all()
    assert pool.node.min() >= 0 and pool.node.max() < first.city.num_nodes
    assert pool.skill.min() >= 0 and pool.skill.max() < NUM_SKILLS


def test_synthetic_task_pool_snaps_onto_the_city(tmp_path):
    city = synthetic_city(SMALL_CITY, tmp_path)
    pool = synthetic_task_pool(city.node_xy, city.snap, SyntheticTasksConfig(num_tasks=50, num_pois=100), TaskRules())
    assert len(pool) == 50 and set(pool.node) <= set(range(city.num_nodes))


# --- task rules, payment, skills ----------------------------------------------------------------------------------

def test_fare_quantity_and_zeta():
    rules = RULES
    np.testing.assert_allclose(rules.fare(np.array([0.0, 2.0, 3.0, 12.0])), [8.0, 8.0, 9.9, 27.0])
    np.testing.assert_allclose(rules.quantity(np.array([0.5, 2.0, 7.5])), [2.0, 2.0, 7.5])
    assert rules.zeta == pytest.approx(0.5 / 900)


def test_payment_at_and_around_expected_and_deadline():
    rules = RULES
    pool = TaskPool.from_trips(np.array([100.0]), np.array([0]), np.array([0]), np.array([12.0]), rules)
    t_e, t_d, rho = pool.expected[0], pool.deadline[0], pool.rho_max[0]
    finish = np.array([t_e - 1, t_e, t_e + 1, (t_e + t_d) / 2, t_d - 1e-6, t_d, t_d + 1])
    paid = payment(np.full(7, rho), finish, np.full(7, t_e), np.full(7, t_d), pool.zeta)
    np.testing.assert_allclose(paid, [rho, rho, rho * (1 - pool.zeta), 0.75 * rho, 0.5 * rho, 0.0, 0.0], rtol=1e-6)


def test_task_pool_sorting_window_and_round_trip():
    rules = TaskRules()
    pool = TaskPool.from_trips(np.array([30.0, 10.0, 20.0]), np.array([3, 1, 2]), np.array([0, 1, 2]),
                               np.array([1.0, 2.0, 3.0]), rules)
    np.testing.assert_array_equal(pool.node, [1, 2, 3])
    window = pool.window(1, 2)
    np.testing.assert_array_equal(window.created, [0.0, 10.0])
    np.testing.assert_array_equal(window.node, [2, 3])
    again = TaskPool.from_arrays(pool.to_arrays())
    assert again.zeta == pool.zeta and np.array_equal(again.rho_max, pool.rho_max)


def test_poi_categories_and_skills():
    np.testing.assert_array_equal(poi_category_to_skill(np.arange(16)), np.repeat(np.arange(8), 2))
    poi_xy = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [1000.0, 0.0]])
    poi_skill = np.array([3, 5, 5, 6])
    skills = skills_from_pois(np.array([[5.0, 0.0], [900.0, 0.0]]), poi_xy, poi_skill, radius_m=50.0)
    np.testing.assert_array_equal(skills, [5, 6])  # dominant within 50 m; else the nearest POI


def test_worker_skill_counts():
    skills = sample_worker_skills(20000, np.random.default_rng(0))
    sizes = skills.sum(axis=1)
    assert skills.shape == (20000, NUM_SKILLS) and sizes.min() >= 1 and sizes.max() <= NUM_SKILLS
    assert abs(sizes.mean() - 2.5) < 0.1
    np.testing.assert_array_equal(skills, sample_worker_skills(20000, np.random.default_rng(0)))


@pytest.mark.parametrize("change, field", [({"deadline_minutes": 0.0}, "deadline_minutes"),
                                           ({"deadline_minutes": -5.0}, "deadline_minutes"),
                                           ({"fare_base": -1.0}, "fare_base"),
                                           ({"fare_per_km": -0.1}, "fare_per_km"),
                                           ({"payment_at_deadline": 1.5}, "payment_at_deadline"),
                                           ({"expected_minutes": 0.0}, "expected_minutes"),
                                           ({"min_quantity": 0.0}, "min_quantity")])
def test_impossible_task_rules(change, field, tmp_path):
    with pytest.raises(InputError, match=field):
        TaskRules(**change).validate()
    with pytest.raises(InputError, match=field):  # also through the real-data loader, before any file is read
        load_chengdu(tmp_path, TaskRules(**change), tmp_path / "cache")


@pytest.mark.parametrize("change", [{"rows": 1}, {"spacing_m": 0.0}, {"jitter": 0.5}, {"drop_fraction": 0.6}])
def test_impossible_synthetic_city(change):
    with pytest.raises(InputError):
        SyntheticCityConfig(**change).validate()
