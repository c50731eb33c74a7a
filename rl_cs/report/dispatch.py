"""`rl-cs report`: pick the world's report from the results folder's experiment.json."""

from __future__ import annotations

import json
from pathlib import Path

from rl_cs.errors import InputError, closest, require

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


def report(results: Path, out: Path | None = None) -> int:
    worlds = set()
    for path in find_metadata(results):
        try:
            worlds.add(json.loads(path.read_text())["world"])
        except (json.JSONDecodeError, KeyError) as error:
            raise InputError(str(path), f"unreadable experiment metadata ({error})") from None
    require(len(worlds) == 1, str(results), f"mixes worlds {sorted(worlds)}", "report one world at a time")
    world = worlds.pop()
    if world == "sensing":
        from rl_cs.report.sensing import report as world_report
    elif world == "csc":
        from rl_cs.report.csc import report as world_report
    else:
        raise InputError(str(results), f"unknown world '{world}'", closest(world, ["csc", "sensing"]))
    return world_report(results, out)
