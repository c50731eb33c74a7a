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
    """The world's report; a hyperparameter search (experiment.json with a 'search' entry) of any world gets
    the search report (rl_cs.report.search), one per search of a `train all` folder."""
    paths = find_metadata(results)
    metadata = [read_metadata(path) for path in paths]
    worlds = {data["world"] for data in metadata}
    require(len(worlds) == 1, str(results), f"mixes worlds {sorted(worlds)}", "report one world at a time")
    world = registry.get_world(worlds.pop(), where=str(results / METADATA))
    searches = [path.parent for path, data in zip(paths, metadata) if isinstance(data.get("search"), dict)]
    if searches:
        from rl_cs.report import search

        require(len(searches) == len(paths), str(results), "mixes searches and plain experiments",
                "report each experiment folder on its own")
        for folder in searches:
            code = search.report(folder, (out / folder.name if len(searches) > 1 else out) if out else None)
            if code:
                return code
        return 0
    return registry.resolve(world.report)(results, out)
