"""`rl-cs report` for the package gridworlds (``lbf``, ``rware``): mean ± std over episodes of each method's
return and business numbers, beside DyPS Table 2's figures for the same scenario (paper 002).

Reads what `rl-cs train --world lbf|rware` writes (experiment.json, episodes.csv), one experiment or a
folder of them; writes table.md and table.csv into the results folder (or ``--out``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rl_cs import registry
from rl_cs.errors import InputError, require
from rl_cs.report.csc import output_folder
from rl_cs.report.dispatch import find_metadata, read_metadata

PAPER_RETURN = {
    ("lbf", "lbf1"): {"NoPS": 0.31, "PS": 0.25, "PS-id": 0.52, "PSA": 0.41, "SePS": 0.61, "DyPS": 0.68},
    ("lbf", "lbf2"): {"NoPS": 0.91, "PS": 0.83, "PS-id": 0.91, "PSA": 0.90, "SePS": 0.96, "DyPS": 0.98},
    ("rware", "rware1"): {"NoPS": 2.0, "PS": 2.5, "PS-id": 4.6, "PSA": 4.5, "SePS": 6.0, "DyPS": 6.7},
    ("rware", "rware2"): {"NoPS": 0.35, "PS": 1.21, "PS-id": 10.45, "PSA": 12.11, "SePS": 33.21, "DyPS": 35.41},
}
"""DyPS Table 2, "Return" (mean over 5 seeds after 1M training steps)."""
RERUN = "it is written by `rl-cs train --world lbf|rware`; rerun the experiment"


def _episodes(folder: Path, metrics: list[str]) -> pd.DataFrame:
    path = folder / "episodes.csv"
    require(path.is_file(), str(folder), "no episodes.csv", RERUN)
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        raise InputError(str(path), f"unreadable ({type(error).__name__})", RERUN) from None
    missing = [c for c in ("method", *metrics) if c not in table.columns]
    require(not missing, str(path), f"missing columns {missing}", RERUN)
    return table


def report(results: Path, out: Path | None = None) -> int:
    """Everything is read and checked before the first file is written."""
    paths = find_metadata(results)
    metadata = [read_metadata(path) for path in paths]
    worlds = {m["world"] for m in metadata}
    require(len(worlds) == 1 and worlds <= {"lbf", "rware"}, str(results), f"not one gridworld: {sorted(worlds)}")
    world = worlds.pop()
    metrics = list(registry.get_world(world).metrics)
    sizes = {m.get("config", {}).get("world", {}).get("size") for m in metadata}
    require(len(sizes) == 1, str(results), f"mixes sizes {sorted(map(str, sizes))}", "report one size at a time")
    size = sizes.pop()
    table = pd.concat([_episodes(path.parent, metrics) for path in paths], ignore_index=True)
    out = output_folder(results, out)
    grouped = table.groupby("method", sort=False)[metrics]
    summary = grouped.mean().round(3).astype(str) + " ± " + grouped.std().round(3).astype(str)
    summary.insert(0, "episodes", grouped.size())
    paper = PAPER_RETURN.get((world, size), {})
    lines = [f"## {world} {size}: mean ± std over episodes", "", summary.to_markdown(), ""]
    if paper:
        lines += [f"DyPS Table 2 return for this scenario (1M steps, 5 seeds): "
                  + ", ".join(f"{name} {value}" for name, value in paper.items()), ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines))
    grouped.agg(["mean", "std"]).to_csv(out / "table.csv")
    print("\n".join(lines))
    return 0
