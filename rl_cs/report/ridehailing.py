"""`rl-cs report` for the ride-hailing world: GMV and order response rate (mean ± std over seeds) per method, and
each method's GMV over the best rule-based baseline's at the same world (the comparison to make: our request
file is far smaller than the paper's, so absolute GMV is not comparable), beside DyPS Table 2 and Table 7
(paper 002).

Reads what `rl-cs train --world ridehailing` writes: one experiment folder or a `train all` folder of them (an
experiment.json each), every Tune trial folder (params.json) one (method, seed). A trial's value is its held-out
evaluation (heldout.json: every method on the same evaluation episodes) or, where that is missing, its last
reported iteration; the table says which. Writes ridehailing_table.md and ridehailing_table.csv (atomically)
into the results folder or ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rl_cs.atomic import write_atomically
from rl_cs.errors import InputError, require
from rl_cs.report.csc import _read_json, output_folder
from rl_cs.report.dispatch import find_metadata, read_metadata

PAPER = {
    "rh1": {"Greedy": (220770, 0.37), "Nearest": (162590, 0.37), "NoPS": (230680, 0.40), "PS": (250940, 0.43),
            "PS-id": (260590, 0.45), "PSA": (253920, 0.42), "SePS": (257690, 0.43), "DyPS": (318200, 0.66)},
    "rh2": {"Greedy": (539450, 0.23), "Nearest": (345180, 0.24), "NoPS": (519200, 0.20), "PS": (542500, 0.23),
            "PS-id": (556320, 0.24), "PSA": (547500, 0.22), "SePS": (545300, 0.23), "DyPS": (713520, 0.35)},
}
"""DyPS Table 7 (rule-based) and Table 2 (learned, 5 seeds): (GMV, ORR) of Ride-Hailing (1) and (2)."""
RULE_BASED = ("rh-greedy", "rh-nearest")
"""The paper's rule-based baselines here (Table 7): the reference of the GMV ratio."""
RERUN = "it is written by `rl-cs train`; rerun the experiment"


def trial_values(results: Path, world: str, metrics: list[str]) -> pd.DataFrame:
    """One row per trial: method, trial, seed, the world's size preset (if any), source, and ``metrics``."""
    rows = []
    for path in find_metadata(results):
        metadata = read_metadata(path)
        require(metadata["world"] == world, str(path), f"an experiment of world '{metadata['world']}', not '{world}'",
                "report one world at a time")
        method = metadata.get("method")
        require(isinstance(method, str), str(path), "no 'method' entry", RERUN)
        size = (metadata.get("config") or {}).get("world", {}).get("size", "")
        for params in sorted(path.parent.glob("*/params.json")):
            trial = params.parent
            seed = _read_json(params).get("seed")
            if (trial / "heldout.json").is_file():
                values, source = _read_json(trial / "heldout.json"), "held-out"
            else:
                values, source = _last_iteration(trial), "last iteration"
            missing = [name for name in metrics if name not in values]
            require(not missing, str(trial), f"no {', '.join(missing)} in its results", RERUN)
            rows.append({"method": method, "trial": trial.name, "seed": seed, "size": size, "source": source,
                         **{name: float(values[name]) for name in metrics}})
    require(bool(rows), str(results), "no finished trials (no <trial>/params.json)", RERUN)
    return pd.DataFrame(rows)


def _last_iteration(trial: Path) -> dict:
    path = trial / "result.json"
    require(path.is_file(), str(trial), "neither heldout.json nor result.json", RERUN)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    require(bool(lines), str(path), "empty", RERUN)
    try:
        return json.loads(lines[-1]).get("env_runners", {})
    except json.JSONDecodeError as error:
        raise InputError(str(path), f"not valid JSON lines ({error})", RERUN) from None


def summarise(values: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and std over seeds per (size, method), methods in first-seen order."""
    grouped = values.groupby(["size", "method"], sort=False)[metrics]
    table = grouped.mean().join(grouped.std(ddof=0).add_suffix("_std")).reset_index()
    table.insert(2, "seeds", grouped.size().to_numpy())
    return table


def _cell(mean: float, std: float, digits: int) -> str:
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def report(results: Path, out: Path | None = None) -> int:
    out = output_folder(results, out)
    values = trial_values(results, "ridehailing", ["gmv", "order_response_rate", "gmv_share"])
    table = summarise(values, ["gmv", "order_response_rate", "gmv_share"])
    best = table[table.method.isin(RULE_BASED)].groupby("size")["gmv"].max()
    table["gmv_vs_best_rule_based"] = [row.gmv / best[row.size] if row.size in best else float("nan")
                                       for row in table.itertuples()]
    lines = [f"## Ride-hailing: mean ± std over seeds ({', '.join(sorted(set(values.source)))})", "",
             "| size | method | seeds | GMV (CNY) | ORR | GMV share of all fares | GMV / best rule-based |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in table.itertuples():
        lines.append(f"| {row.size} | {row.method} | {row.seeds} | {_cell(row.gmv, row.gmv_std, 0)} | "
                     f"{_cell(row.order_response_rate, row.order_response_rate_std, 3)} | "
                     f"{_cell(row.gmv_share, row.gmv_share_std, 3)} | {row.gmv_vs_best_rule_based:.3f} |")
    for size in sorted(set(table["size"]) & set(PAPER)):
        paper = PAPER[size]
        best_rule = max(paper["Greedy"][0], paper["Nearest"][0])
        best_baseline = max(value[0] for name, value in paper.items() if name != "DyPS")
        lines += ["", f"DyPS paper, Ride-Hailing ({size[-1]}) (GMV, ORR): "
                  + ", ".join(f"{name} {gmv:,} {orr:.2f}" for name, (gmv, orr) in paper.items())
                  + f". DyPS / best rule-based = {paper['DyPS'][0] / best_rule:.3f}; "
                  f"DyPS / best baseline = {paper['DyPS'][0] / best_baseline:.3f}."]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_atomically(out / "ridehailing_table.md", lambda path: path.write_text(markdown))
    write_atomically(out / "ridehailing_table.csv", lambda path: table.to_csv(path, index=False))
    print(f"written: {out / 'ridehailing_table.md'}, {out / 'ridehailing_table.csv'}")
    return 0
