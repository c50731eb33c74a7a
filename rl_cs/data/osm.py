"""A drivable road graph from an OpenStreetMap XML file, as the arrays a ``City`` is made of.

osmnx's ``graph_from_xml`` turns every way of a file into edges (buildings, footways, rivers alike), so
the file is first cut down to drivable ways (``is_drivable``) and the nodes they use; osmnx then builds
and simplifies the graph, computes edge lengths in metres (great-circle) and projects it to its UTM
zone; the largest strongly connected component is kept so that every node can reach every other.
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rl_cs.data.city import largest_strong_component
from rl_cs.data.progress import step
from rl_cs.errors import InputError

DRIVABLE_HIGHWAYS = frozenset({
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street",
    "road", "service",
})
"""``highway`` values a vehicle may drive on (osmnx's "drive_service" network type, as a positive list)."""

EXCLUDED_SERVICES = frozenset({"parking", "parking_aisle", "emergency_access", "private"})
"""``service`` values that are not through routes even on a drivable way (as osmnx's "drive_service")."""

WGS84 = "EPSG:4326"


def is_drivable(tags: dict[str, str]) -> bool:
    """Whether a way with these tags is a public road for cars.

    A drivable ``highway`` value, not an area, not ``access=private|no``, not closed to motor vehicles
    (``motor_vehicle=no`` / ``motorcar=no``), and not a parking aisle or similar service way.
    """
    return (tags.get("highway") in DRIVABLE_HIGHWAYS
            and tags.get("area") != "yes"
            and tags.get("access") not in ("private", "no")
            and tags.get("motor_vehicle") != "no"
            and tags.get("motorcar") != "no"
            and tags.get("service") not in EXCLUDED_SERVICES)


def write_drivable_osm(source: Path, target: Path) -> tuple[int, int]:
    """Copy ``source`` to ``target`` keeping only drivable ways and the nodes they use.

    Returns (ways kept, ways in the file). Relations are dropped: osmnx does not use them for graphs.
    """
    try:
        tree = ET.parse(source)
    except ET.ParseError as error:
        raise InputError(str(source), f"not readable as OSM XML ({error})",
                         "give an OpenStreetMap .osm XML export") from error
    root = tree.getroot()
    ways = root.findall("way")
    kept = [way for way in ways if is_drivable({tag.get("k"): tag.get("v") for tag in way.iter("tag")})]
    used = {nd.get("ref") for way in kept for nd in way.iter("nd")}
    for element in list(root):
        if element.tag in ("way", "relation") or element.tag == "node" and element.get("id") not in used:
            root.remove(element)
    root.extend(kept)  # after the nodes, as in OSM files
    tree.write(target, encoding="utf-8", xml_declaration=True)
    return len(kept), len(ways)


def city_arrays_from_osm(path: Path) -> dict[str, np.ndarray]:
    """Road graph of an OSM XML file: ``node_xy`` (n, 2) metres, ``edges`` (m, 2) directed node
    indices 0..n-1, ``edge_length`` (m,) metres, and ``crs`` (the projected frame of ``node_xy``, as a
    string such as 'EPSG:32648', for ``project_lnglat``).

    One-way streets give one directed edge, others two; self-loops are dropped (they carry no route).
    """
    import osmnx as ox

    path = Path(path)
    with step(f"reading drivable roads from {path.name}"), tempfile.TemporaryDirectory() as folder:
        drivable = Path(folder) / "drivable.osm"
        kept, total = write_drivable_osm(path, drivable)
        if kept == 0:
            raise InputError(str(path), f"none of its {total} ways is a drivable road",
                             f"expected ways tagged highway={'|'.join(sorted(DRIVABLE_HIGHWAYS))}")
        graph = ox.project_graph(ox.graph_from_xml(drivable, simplify=True, retain_all=True))
    osm_ids = list(graph.nodes)
    index = {osm_id: i for i, osm_id in enumerate(osm_ids)}
    node_xy = np.array([(graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in osm_ids], dtype=np.float64)
    links = [(index[u], index[v], data["length"]) for u, v, data in graph.edges(data=True) if u != v]
    edges = np.array([(u, v) for u, v, _ in links], dtype=np.int64).reshape(-1, 2)
    lengths = np.array([length for _, _, length in links], dtype=np.float64)
    nodes, edges, lengths = largest_strong_component(len(node_xy), edges, lengths)
    return {"node_xy": node_xy[nodes], "edges": edges.astype(np.int64), "edge_length": lengths,
            "crs": np.array(graph.graph["crs"].to_string())}


def project_lnglat(lng: np.ndarray, lat: np.ndarray, crs: str) -> np.ndarray:
    """WGS-84 longitude/latitude (degrees) to (n, 2) metres in ``crs``, the frame of a city's nodes."""
    from pyproj import Transformer

    x, y = Transformer.from_crs(WGS84, crs, always_xy=True).transform(np.asarray(lng, dtype=np.float64),
                                                                       np.asarray(lat, dtype=np.float64))
    return np.stack([x, y], axis=1)
