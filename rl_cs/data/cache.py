"""Preprocessing cache: results stored under a folder keyed by a hash of inputs and parameters.

A second run with the same inputs loads instead of rebuilding. Writes go to a temp file first and
are renamed into place, so an interrupted run never leaves a half-written cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from rl_cs.atomic import write_atomically

DEFAULT_CACHE_DIR = Path(os.environ.get("RLCS_CACHE_DIR", Path.home() / ".cache" / "rl-cs"))


def file_fingerprint(path: Path) -> str:
    """Content hash of an input file (inputs here are a few MB: hashing is cheap and exact)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cache_key(kind: str, params: dict) -> str:
    text = json.dumps({"kind": kind, **params}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def is_cached(kind: str, params: dict, cache_dir: Path | None = None) -> bool:
    """Whether ``cached_arrays(kind, params, ...)`` would load instead of build."""
    return (Path(cache_dir or DEFAULT_CACHE_DIR) / f"{cache_key(kind, params)}.npz").exists()


def cached_arrays(kind: str, params: dict, build: Callable[[], dict[str, np.ndarray]],
                  cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Load the arrays stored for (kind, params), or build and store them atomically."""
    folder = Path(cache_dir or DEFAULT_CACHE_DIR)
    path = folder / f"{cache_key(kind, params)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    arrays = build()
    write_atomically(path, lambda temp: np.savez(temp, **arrays))
    return arrays
