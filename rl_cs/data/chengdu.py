"""A real-city scenario: an OpenStreetMap road network with recorded ride requests as tasks.

The data folder (e.g. ../shared/data/chengdu) holds exactly one ``*.osm`` file, ``requests.csv`` and
``poi.csv``. Rules stated here (the rest are in ``TaskRules``):

- a request becomes a task at its pick-up (``origin_lat``/``origin_lng``), snapped to the nearest road
  node; a pick-up more than ``MAX_SNAP_GAP_M`` in a straight line from every road node lies outside the
  map and is dropped (the count is printed and kept in ``Scenario.source``);
- t_c = ``start_time`` (seconds since midnight); the trip length ``trip_distance`` (km) sets payment
  and quantity;
- the skill is the dominant POI skill near the task's node, POI category c (``typei``, 0..15) counting
  as skill c // 2.

The city (with its all-pairs distances) and the task pool are cached under keys made of the input files'
content hashes and the rules, so a second load parses nothing.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rl_cs.data.cache import cached_arrays, file_fingerprint, is_cached
from rl_cs.data.city import City
from rl_cs.data.osm import DRIVABLE_HIGHWAYS, EXCLUDED_SERVICES, city_arrays_from_osm, project_lnglat
from rl_cs.data.scenario import Scenario
from rl_cs.data.tasks import TaskPool, TaskRules, poi_category_to_skill, skills_from_pois
from rl_cs.errors import InputError, require

REQUESTS_FILE = "requests.csv"
POI_FILE = "poi.csv"
REQUEST_COLUMNS = ("origin_lat", "origin_lng", "trip_distance", "start_time")
POI_COLUMNS = ("wgslng", "wgslat", "typei")
NUM_POI_CATEGORIES = 16
MAX_SNAP_GAP_M = 500.0
"""A pick-up farther than this from every road node is outside the map (the OSM box ends there)."""


def find_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """The folder's (.osm file, requests.csv, poi.csv); InputError saying which is missing."""
    osm_files = sorted(folder.glob("*.osm"))
    found = f": {', '.join(p.name for p in osm_files)}" if osm_files else ""
    require(len(osm_files) == 1, str(folder), f"expected exactly one .osm file, found {len(osm_files)}{found}",
            "put the city's OpenStreetMap XML export (one .osm file) in the data folder")
    for name, columns in ((REQUESTS_FILE, REQUEST_COLUMNS), (POI_FILE, POI_COLUMNS)):
        require((folder / name).is_file(), str(folder / name), "file not found",
                f"the data folder needs {name} with columns {', '.join(columns)}")
    return osm_files[0], folder / REQUESTS_FILE, folder / POI_FILE


def read_numeric_columns(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named columns of a CSV file as finite float arrays.

    InputError for an unreadable file, missing columns (all listed), no rows, or a value that is not a
    number (naming the column and the data row).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(str(path), f"not UTF-8 text ({error.reason} at byte {error.start})",
                         "save the file as UTF-8") from None
    except OSError as error:
        raise InputError(str(path), f"cannot read the file ({error.strerror})") from None
    require(text.strip() != "", str(path), "the file is empty", f"give a header row with {', '.join(columns)} and data rows")
    try:
        header = pd.read_csv(io.StringIO(text), nrows=0).columns
        missing = [column for column in columns if column not in header]
        require(not missing, str(path), f"missing required column(s): {', '.join(missing)}",
                f"expected columns {', '.join(columns)}; the file has {', '.join(map(str, header)) or 'none'}")
        frame = pd.read_csv(io.StringIO(text), usecols=list(columns), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(str(path), f"not readable as CSV ({error})",
                         "give a comma-separated file with a header row") from None
    require(len(frame) > 0, str(path), "has no data rows", "give at least one row")
    values = {}
    for column in columns:
        numbers = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            raise InputError(f"{path}, column {column}",
                             f"data row {bad[0] + 1}: '{frame[column].iloc[bad[0]]}' is not a finite number",
                             "fix or remove that row")
        values[column] = numbers
    return values


def require_values(path: Path, column: str, values: np.ndarray, ok: np.ndarray, expected: str) -> None:
    """InputError naming the first data row of ``column`` where ``ok`` is false."""
    bad = np.flatnonzero(~ok)
    if len(bad):
        raise InputError(f"{path}, column {column}", f"data row {bad[0] + 1}: {values[bad[0]]:g} is out of range",
                         f"expected {expected}")


def check_lnglat(path: Path, values: dict[str, np.ndarray], lng: str, lat: str) -> None:
    """WGS-84 columns of a CSV in range (degrees)."""
    require_values(path, lat, values[lat], np.abs(values[lat]) <= 90, "a latitude in degrees, -90..90")
    require_values(path, lng, values[lng], np.abs(values[lng]) <= 180, "a longitude in degrees, -180..180")


def read_lnglat(path: Path, values: dict[str, np.ndarray], lng: str, lat: str, crs: str) -> np.ndarray:
    """Checked WGS-84 columns of a CSV projected into the city's frame, (n, 2) metres."""
    check_lnglat(path, values, lng, lat)
    return project_lnglat(values[lng], values[lat], crs)


def read_requests(path: Path) -> dict[str, np.ndarray]:
    """The checked numeric columns of ``requests.csv`` (no city needed)."""
    requests = read_numeric_columns(path, REQUEST_COLUMNS)
    require_values(path, "trip_distance", requests["trip_distance"], requests["trip_distance"] >= 0,
                   "a trip length in km, >= 0")
    require_values(path, "start_time", requests["start_time"], requests["start_time"] >= 0,
                   "seconds since midnight, >= 0")
    check_lnglat(path, requests, "origin_lng", "origin_lat")
    return requests


def read_pois(path: Path) -> dict[str, np.ndarray]:
    """The checked numeric columns of ``poi.csv`` (no city needed)."""
    pois = read_numeric_columns(path, POI_COLUMNS)
    category = pois["typei"]
    require_values(path, "typei", category,
                   (category == np.round(category)) & (category >= 0) & (category < NUM_POI_CATEGORIES),
                   f"a category index, an integer 0..{NUM_POI_CATEGORIES - 1}")
    check_lnglat(path, pois, "wgslng", "wgslat")
    return pois


def read_poi_skills(path: Path, crs: str, pois: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """POI positions (metres, the city's frame) and their skills from ``poi.csv`` (or its checked columns)."""
    pois = read_pois(path) if pois is None else pois
    return read_lnglat(path, pois, "wgslng", "wgslat", crs), poi_category_to_skill(pois["typei"])


def task_arrays(city: City, requests_path: Path, poi_path: Path, rules: TaskRules,
                inputs: tuple[dict, dict] | None = None) -> dict[str, np.ndarray]:
    """The task pool of a city from its requests and POIs, plus ``num_dropped`` (pick-ups outside the map);
    ``inputs`` are the already checked (requests, POI) columns, else the files are read here."""
    requests, pois = inputs if inputs is not None else (read_requests(requests_path), read_pois(poi_path))
    node, gap = city.snap(read_lnglat(requests_path, requests, "origin_lng", "origin_lat", city.crs))
    inside = gap <= MAX_SNAP_GAP_M
    require(inside.any(), f"{requests_path}, columns origin_lat/origin_lng",
            f"all {len(inside)} pick-ups lie outside the map (over {MAX_SNAP_GAP_M:g} m from every road node)",
            "the requests must cover the area of the .osm file; check also that lat and lng are not swapped")
    poi_xy, poi_skill = read_poi_skills(poi_path, city.crs, pois)
    node = node[inside]
    skill = skills_from_pois(city.node_xy[node], poi_xy, poi_skill, rules.poi_radius_m)
    pool = TaskPool.from_trips(requests["start_time"][inside], node, skill, requests["trip_distance"][inside], rules)
    return {**pool.to_arrays(), "num_dropped": np.array(int((~inside).sum()))}


def load_chengdu(folder: Path, rules: TaskRules, cache_dir: Path | None = None) -> Scenario:
    """The scenario of a real-data folder: road network from its .osm file, tasks from its requests."""
    rules.validate()
    folder = Path(folder)
    osm_path, requests_path, poi_path = find_inputs(folder)
    city_key = {"osm": file_fingerprint(osm_path), "highways": sorted(DRIVABLE_HIGHWAYS),
                "excluded_services": sorted(EXCLUDED_SERVICES)}
    tasks_key = {**city_key, "requests": file_fingerprint(requests_path), "poi": file_fingerprint(poi_path),
                 "rules": vars(rules), "max_snap_gap_m": MAX_SNAP_GAP_M}
    inputs = None
    if not is_cached("osm-tasks", tasks_key, cache_dir):  # check the CSVs before the city is built and cached
        inputs = read_requests(requests_path), read_pois(poi_path)
    city = City.from_cached(osm_path.stem, "osm-city", city_key, lambda: city_arrays_from_osm(osm_path), cache_dir)
    arrays = cached_arrays("osm-tasks", tasks_key, lambda: task_arrays(city, requests_path, poi_path, rules, inputs),
                           cache_dir)
    tasks = TaskPool.from_arrays(arrays)
    source = (f"{folder.name}: {osm_path.name} ({city.num_nodes} road nodes, {len(city.edges)} edges); "
              f"{len(tasks)} tasks from {REQUESTS_FILE}, {int(arrays['num_dropped'])} dropped "
              f"(pick-up over {MAX_SNAP_GAP_M:g} m from every road node)")
    print(f"rl-cs: {source}", file=sys.stderr, flush=True)
    return Scenario(city, tasks, source)
