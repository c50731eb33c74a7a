"""A city: road graph as arrays, node coordinates in metres, and a road-distance oracle.

Built either from OpenStreetMap XML (rl_cs.data.osm) or from the seeded synthetic generator here,
which is the embedded default. Distances are precomputed once per city (all pairs with scipy's sparse
graph routines up to ``ALL_PAIRS_MAX_NODES``; beyond that, Dijkstra rows computed per source and kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from rl_cs.data.cache import cached_arrays
from rl_cs.data.progress import step
from rl_cs.errors import require

ALL_PAIRS_MAX_NODES = 4000
MAX_SYNTHETIC_NODES = 100_000
"""Largest synthetic city (rows x cols). Beyond ALL_PAIRS_MAX_NODES every road distance is a Dijkstra search
over the whole graph, run per worker position and kept in memory; a real city such as central Chengdu has
about 3,000 road nodes."""


def road_matrix(num_nodes: int, edges: np.ndarray, lengths: np.ndarray) -> csr_matrix:
    """Directed sparse adjacency with edge lengths; parallel edges keep the shortest.

    Lengths are floored at 0.1 m because scipy's graph routines read a stored zero as 'no edge'.
    """
    order = np.lexsort((lengths, edges[:, 1], edges[:, 0]))
    edges, lengths = edges[order], np.maximum(lengths[order], 0.1)
    first = np.ones(len(edges), dtype=bool)
    first[1:] = (edges[1:] != edges[:-1]).any(axis=1)
    return csr_matrix((lengths[first], (edges[first, 0], edges[first, 1])), shape=(num_nodes, num_nodes))


def largest_strong_component(num_nodes: int, edges: np.ndarray, lengths: np.ndarray):
    """Keep the largest strongly connected component; returns (kept old ids, edges relabelled, lengths)."""
    graph = csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_nodes, num_nodes))
    _, labels = connected_components(graph, directed=True, connection="strong")
    biggest = np.bincount(labels).argmax()
    kept = np.flatnonzero(labels == biggest)
    new_id = np.full(num_nodes, -1)
    new_id[kept] = np.arange(len(kept))
    inside = (new_id[edges[:, 0]] >= 0) & (new_id[edges[:, 1]] >= 0)
    return kept, new_id[edges[inside]], lengths[inside]


class DistanceOracle:
    """Shortest road distances in metres between graph nodes.

    ``between(src, dst)`` returns a ``(len(src), len(dst))`` float32 matrix. Small cities hold the
    full all-pairs matrix; large ones compute Dijkstra rows on demand and keep them.
    """

    def __init__(self, graph: csr_matrix, matrix: np.ndarray | None = None):
        self.graph = graph
        self.num_nodes = graph.shape[0]
        self.matrix = matrix
        self._rows: dict[int, np.ndarray] = {}

    @classmethod
    def all_pairs(cls, graph: csr_matrix) -> "DistanceOracle":
        return cls(graph, dijkstra(graph, directed=True).astype(np.float32))

    def between(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        if self.matrix is not None:
            return self.matrix[np.ix_(src, dst)]
        missing = [int(s) for s in np.unique(src) if int(s) not in self._rows]
        if missing:
            rows = dijkstra(self.graph, directed=True, indices=missing).astype(np.float32)
            self._rows.update(zip(missing, rows))
        return np.stack([self._rows[int(s)] for s in src])[:, dst]


@dataclass
class City:
    """Road network of one city. Coordinates are metres in a local projected frame."""

    name: str
    node_xy: np.ndarray  # (n, 2) float64, metres
    edges: np.ndarray  # (m, 2) int64, directed u -> v
    edge_length: np.ndarray  # (m,) float64, metres
    distance: DistanceOracle = field(repr=False)
    crs: str = ""
    """Projected frame of ``node_xy`` (e.g. 'EPSG:32648') for mapping lat/lng onto it; '' for synthetic cities."""

    @property
    def num_nodes(self) -> int:
        return len(self.node_xy)

    @classmethod
    def from_arrays(cls, name: str, node_xy: np.ndarray, edges: np.ndarray, edge_length: np.ndarray,
                    distance_matrix: np.ndarray | None = None, crs: str = "") -> "City":
        graph = road_matrix(len(node_xy), edges, edge_length)
        if distance_matrix is not None:
            oracle = DistanceOracle(graph, distance_matrix)
        elif len(node_xy) <= ALL_PAIRS_MAX_NODES:
            oracle = DistanceOracle.all_pairs(graph)
        else:
            oracle = DistanceOracle(graph)
        return cls(name, node_xy, edges, edge_length, oracle, crs)

    @classmethod
    def from_cached(cls, name: str, kind: str, params: dict, build, cache_dir: Path | None = None) -> "City":
        """Build (node_xy, edges, edge_length[, crs]) once, precompute distances once, and cache all of it."""

        def build_with_distances() -> dict[str, np.ndarray]:
            arrays = build()
            if len(arrays["node_xy"]) <= ALL_PAIRS_MAX_NODES:
                graph = road_matrix(len(arrays["node_xy"]), arrays["edges"], arrays["edge_length"])
                with step(f"all-pairs road distances of {name} ({graph.shape[0]} nodes)"):
                    arrays["distance"] = dijkstra(graph, directed=True).astype(np.float32)
            return arrays

        arrays = cached_arrays(kind, params, build_with_distances, cache_dir)
        return cls.from_arrays(name, arrays["node_xy"], arrays["edges"], arrays["edge_length"],
                               arrays.get("distance"), str(arrays.get("crs", "")))

    def snap(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest node of each point (metres, same frame); returns (node ids, straight-line gap in m)."""
        gap, nodes = cKDTree(self.node_xy).query(np.asarray(xy, dtype=np.float64))
        return nodes.astype(np.int64), gap

    def to_networkx(self):
        """The road graph as a networkx DiGraph (for users and plots; the hot path uses arrays)."""
        import networkx as nx

        graph = nx.DiGraph()
        for node, (x, y) in enumerate(self.node_xy):
            graph.add_node(node, x=float(x), y=float(y))
        for (u, v), length in zip(self.edges, self.edge_length):
            graph.add_edge(int(u), int(v), length=float(length))
        return graph


@dataclass(frozen=True)
class SyntheticCityConfig:
    """A perturbed street grid: the embedded default city."""

    rows: int = 20
    """Grid rows (nodes along y)."""
    cols: int = 20
    """Grid columns (nodes along x)."""
    spacing_m: float = 250.0
    """Distance between neighbouring intersections before jitter, metres."""
    jitter: float = 0.2
    """Node displacement as a fraction of spacing (uniform in each axis)."""
    drop_fraction: float = 0.08
    """Fraction of streets removed at random (the largest strongly connected part is kept)."""
    one_way_fraction: float = 0.1
    """Fraction of the remaining streets that are one-way."""
    seed: int = 0
    """Generator seed."""

    def validate(self, where: str = "world.city") -> None:
        require(self.rows >= 2 and self.cols >= 2, f"{where}.rows/cols", "a grid needs at least 2x2 nodes")
        require(self.rows * self.cols <= MAX_SYNTHETIC_NODES, f"{where}.rows/cols",
                f"a {self.rows}x{self.cols} grid has {self.rows * self.cols:,} nodes, over the limit of "
                f"{MAX_SYNTHETIC_NODES:,}", "road distances beyond 4,000 nodes are whole-graph Dijkstra searches per "
                "worker position, kept in memory; central Chengdu has about 3,000 nodes: use a smaller grid")
        for name in ("spacing_m", "jitter", "drop_fraction", "one_way_fraction"):
            value = getattr(self, name)
            require(np.isfinite(value), f"{where}.{name}", f"must be a finite number, got {value!r}")
        require(self.spacing_m > 0, f"{where}.spacing_m", f"must be > 0, got {self.spacing_m}")
        require(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}", "numpy takes no negative seed")
        require(0 <= self.jitter < 0.5, f"{where}.jitter", f"must be in [0, 0.5), got {self.jitter}")
        require(0 <= self.drop_fraction < 0.5, f"{where}.drop_fraction", "must be in [0, 0.5)")
        require(0 <= self.one_way_fraction <= 1, f"{where}.one_way_fraction", "must be in [0, 1]")


def synthetic_city_arrays(config: SyntheticCityConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(config.seed)
    gy, gx = np.mgrid[0:config.rows, 0:config.cols]
    node_xy = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64) * config.spacing_m
    node_xy += rng.uniform(-config.jitter, config.jitter, node_xy.shape) * config.spacing_m
    ids = np.arange(config.rows * config.cols).reshape(config.rows, config.cols)
    streets = np.concatenate([
        np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], axis=1),
        np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], axis=1),
    ])
    streets = streets[rng.random(len(streets)) >= config.drop_fraction]
    one_way = rng.random(len(streets)) < config.one_way_fraction
    flip = rng.random(len(streets)) < 0.5
    forward = np.where(flip[:, None], streets[:, ::-1], streets)
    edges = np.concatenate([forward, forward[~one_way][:, ::-1]])
    lengths = np.linalg.norm(node_xy[edges[:, 0]] - node_xy[edges[:, 1]], axis=1)
    kept, edges, lengths = largest_strong_component(len(node_xy), edges, lengths)
    return {"node_xy": node_xy[kept], "edges": edges.astype(np.int64), "edge_length": lengths}


def synthetic_city(config: SyntheticCityConfig = SyntheticCityConfig(), cache_dir: Path | None = None) -> City:
    config.validate()
    return City.from_cached("synthetic", "synthetic-city", vars(config),
                            lambda: synthetic_city_arrays(config), cache_dir)
