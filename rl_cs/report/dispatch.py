"""`rl-cs report`: pick the world's report (rl_cs.worlds) from the results folder's experiment.json."""

from __future__ import annotations

import json
from pathlib import Path

from rl_cs import registry
from rl_cs.errors import InputError, require

METADATA = "experiment.json"


def find_metadata(results: Path) -> list[Path]:
    """experiment.json of the folder itself, or of each experiment below it (a `train all` run)."""
    require(results.is_dir(), str(results), "results folder not found", "give a folder written by `rl-cs train`")
    if (results / METADATA).exists():
        return [results / METADATA]
    found = sorted(results.glob(f"*/{METADATA}"))
    require(bool(found), str(results), f"no {METADATA} here or one level below",
            "give a folder written by `rl-cs train`")
    return found


def read_metadata(path: Path) -> dict:
    """experiment.json as a mapping; anything else (not UTF-8, not JSON, a list, no 'world') is an InputError."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(str(path), f"unreadable experiment metadata ({error})",
                         "it is written by `rl-cs train`; rerun the experiment") from None
    require(isinstance(data, dict) and isinstance(data.get("world"), str), str(path),
            "experiment metadata without a 'world' entry", "it is written by `rl-cs train`; rerun the experiment")
    return data


def report(results: Path, out: Path | None = None) -> int:
    worlds = {read_metadata(path)["world"] for path in find_metadata(results)}
    require(len(worlds) == 1, str(results), f"mixes worlds {sorted(worlds)}", "report one world at a time")
    world = registry.get_world(worlds.pop(), where=str(results / METADATA))
    return registry.resolve(world.report)(results, out)
