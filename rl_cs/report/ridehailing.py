"""`rl-cs report` for the ride-hailing world: GMV and order response rate (mean ± std over seeds) per method, and
each method's GMV over the best rule-based baseline's at the same world (the comparison to make: our request
file is far smaller than the paper's, so absolute GMV is not comparable), DyPS's GMV and ORR over the best
baseline's (every other method run: the learned sharing baselines and the rule-based ones; the paper's Table 2
gives +22% GMV on Ride-Hailing (1)), beside DyPS Table 2 and Table 7 (paper 002). For each DyPS run with the
selector's role log (learners/dyps/role_<n> in progress.csv: the group favoured for each cell), a PNG of the
grid's role maps early, midway and late in training, one row per seed (Fig. 6b): role_maps_<method>.png.

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

from envs.ridehailing_config import RideHailingConfig
from rl_cs.atomic import write_atomically
from rl_cs.config import from_dict
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
ROLE_COLUMN = "learners/dyps/role_"
"""progress.csv columns of DyPS's role log (policies.dyps.rllib.ROLE)."""


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


def best_baseline_ratios(table: pd.DataFrame) -> list[str]:
    """Per size: DyPS (each dyps* method) over the best other method by mean GMV, GMV and ORR."""
    lines = []
    for size, rows in table.groupby("size", sort=False):
        others = rows[~rows.method.str.startswith("dyps")]
        if others.empty:
            continue
        best = others.loc[others.gmv.idxmax()]
        for row in rows[rows.method.str.startswith("dyps")].itertuples():
            lines.append(f"{row.method} / best baseline ({best.method}), {size or 'this world'}: GMV "
                         f"{row.gmv / best.gmv:.3f} ({(row.gmv / best.gmv - 1):+.1%}), ORR "
                         f"{row.order_response_rate / best.order_response_rate:.3f}.")
    return lines


def role_maps(results: Path) -> dict[str, pd.DataFrame]:
    """method -> one row per (trial, iteration) with the selector's role_<n> columns (DyPS runs that log them)."""
    maps = {}
    for path in find_metadata(results):
        metadata = read_metadata(path)
        method = metadata.get("method", "")
        if not (isinstance(method, str) and method.startswith("dyps")):
            continue
        frames = []
        for progress in sorted(path.parent.glob("*/progress.csv")):
            try:
                frame = pd.read_csv(progress)
            except (ValueError, OSError):
                continue
            columns = sorted((c for c in frame.columns if c.startswith(ROLE_COLUMN)),
                             key=lambda c: int(c[len(ROLE_COLUMN):]))
            if columns and "training_iteration" in frame:
                seed = _read_json(progress.parent / "params.json").get("seed")
                frame = frame[["training_iteration", *columns]].dropna()
                frames.append(frame.assign(trial=progress.parent.name, seed=seed))
        if frames:
            world = (metadata.get("config") or {}).get("world", {})
            config = from_dict(RideHailingConfig, world, str(path))
            maps[method] = (pd.concat(frames, ignore_index=True), config.rows, config.cols,
                            (metadata.get("config") or {}).get("dyps", {}).get("num_groups"))
    return maps


def plot_role_maps(frame: pd.DataFrame, rows: int, cols: int, groups: int | None, path: Path, title: str) -> None:
    """Early (first iteration), middle and late (last) role maps of each trial: cell (row 0 south) -> group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = list(dict.fromkeys(frame.trial))
    columns = [c for c in frame.columns if c.startswith(ROLE_COLUMN)]
    top = int(groups or frame[columns].to_numpy().max() + 1)
    fig, axes = plt.subplots(len(trials), 3, figsize=(7.5, 2.6 * len(trials)), squeeze=False)
    for i, trial in enumerate(trials):
        rows_of = frame[frame.trial == trial].sort_values("training_iteration")
        picks = [0, (len(rows_of) - 1) // 2, len(rows_of) - 1]
        for j, (stage, pick) in enumerate(zip(("early", "middle", "late"), picks)):
            row = rows_of.iloc[pick]
            grid = row[columns].to_numpy(dtype=float).reshape(rows, cols)
            ax = axes[i, j]
            ax.imshow(grid, origin="lower", cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
            for r in range(rows):
                for c in range(cols):
                    ax.text(c, r, str(int(grid[r, c])), ha="center", va="center", fontsize=7, color="white")
            seed = rows_of.seed.iloc[0]
            ax.set_title(f"{stage}: iteration {int(row.training_iteration)}" + (f", seed {seed}" if j == 0 else ""),
                         fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{title}: group of each cell ({top} groups; row 0 = south)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    ratios = best_baseline_ratios(table)
    if ratios:
        lines += ["", *ratios]
    for size in sorted(set(table["size"]) & set(PAPER)):
        paper = PAPER[size]
        best_rule = max(paper["Greedy"][0], paper["Nearest"][0])
        best_baseline = max(value[0] for name, value in paper.items() if name != "DyPS")
        lines += ["", f"DyPS paper, Ride-Hailing ({size[-1]}) (GMV, ORR): "
                  + ", ".join(f"{name} {gmv:,} {orr:.2f}" for name, (gmv, orr) in paper.items())
                  + f". DyPS / best rule-based = {paper['DyPS'][0] / best_rule:.3f}; "
                  f"DyPS / best baseline = {paper['DyPS'][0] / best_baseline:.3f}."]
    maps = role_maps(results)
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_atomically(out / "ridehailing_table.md", lambda path: path.write_text(markdown))
    write_atomically(out / "ridehailing_table.csv", lambda path: table.to_csv(path, index=False))
    written = [out / "ridehailing_table.md", out / "ridehailing_table.csv"]
    for method, (frame, rows, cols, groups) in maps.items():
        target = out / f"role_maps_{method}.png"
        write_atomically(target, lambda path: plot_role_maps(frame, rows, cols, groups, path, method))
        written.append(target)
    print(f"written: {', '.join(map(str, written))}")
    return 0
