"""Tables 1 and 2 of QCO-TA (aggregated sensing error, average cost in km) from a sensing results folder,
in the paper's layout, with the paper's figures and the ratios to QCO-TA beside ours; Fig. 4 as a PNG; the
reachable errors (clairvoyant per cycle, best fixed set) beside each scheme's, with the issue-12 targets; and
MPI's attribute weights over the cycles as a PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from policies.qcota.schemes import DISPLAY_NAMES
from rl_cs.data import qcota_paper
from rl_cs.errors import InputError, require
from rl_cs.report.csc import output_folder
from rl_cs.report.dispatch import read_metadata

TABLES = (("error", "Table 1: aggregated sensing error (Eq. 15)", qcota_paper.ERROR, 3),
          ("cost_km", "Table 2: average task allocation cost, km (Eq. 16)", qcota_paper.COST_KM, 2))
KEYS = ["num_attributes", "inference", "participants"]
RUN_COLUMNS = {"scheme": str, "num_attributes": int, "inference": str, "participants": int, "seed": int,
               "error": float, "cost_km": float}
"""Columns of runs.csv a report reads, and their kinds (floats may be empty: NaN)."""
CYCLE_COLUMNS = {"scheme": str, "num_attributes": int, "inference": str, "participants": int, "cycle": int,
                 "epsilon": float}
CALIBRATION_KEYS = ("normalisation", "error_cells", "order", "attributes", "distance")
RERUN = "it is written by `rl-cs train --world sensing`; rerun the experiment"


def report(results: Path, out: Path | None = None) -> int:
    """Everything is read and checked (metadata, runs.csv, cycles.parquet, the output folder) before the
    first file is written."""
    require(results.is_dir(), str(results), "results folder not found", "give a folder written by `rl-cs train`")
    experiment_file = results / "experiment.json"
    require(experiment_file.is_file(), str(results), "no experiment.json", "give a folder written by `rl-cs train`")
    experiment = read_metadata(experiment_file)
    require(experiment.get("world") == "sensing", str(experiment_file), "not a sensing experiment")
    out = output_folder(results, out)
    if experiment.get("kind") == "sweep":
        print(read_table(results / "sweep.csv", {}).to_string(index=False))
        return 0
    runs = read_table(results / "runs.csv", RUN_COLUMNS)
    cycles = read_cycles(results / "cycles.parquet")
    calibration = experiment.get("calibration")
    require(not calibration or isinstance(calibration, dict) and all(key in calibration for key in CALIBRATION_KEYS),
            f"{experiment_file}: calibration", f"expected the keys {', '.join(CALIBRATION_KEYS)}", RERUN)
    means = runs.groupby(["scheme"] + KEYS, sort=False)[["error", "cost_km"]].mean()
    out.mkdir(parents=True, exist_ok=True)
    print(f"# QCO-TA on {experiment.get('data', 'unknown data')} ({runs['seed'].nunique()} seed(s) per cell, mean)\n")
    if calibration:
        print(f"Calibration on UNS-TA: Gamma_a = error / {calibration['normalisation']}, cells = "
              f"{calibration['error_cells']}, attribute order {calibration['order']} {calibration['attributes']} "
              f"(distance to the paper's UNS-TA row {calibration['distance']:.4f})\n")
    long_tables = []
    for metric, title, paper, digits in TABLES:
        table, markdown = comparison(means[metric], paper, digits)
        long_tables.append(table.assign(table=metric))
        (out / f"table_{metric}.md").write_text(f"## {title}\n\n{markdown}\n")
        print(f"## {title}\n\n{markdown}\n\n{wins(table)}\n")
    pd.concat(long_tables, ignore_index=True).to_csv(out / "tables.csv", index=False)
    plot_error_over_cycles(cycles, out / "error_over_cycles.png")
    extra = reachable_section(runs, out) + weights_section(cycles, out)
    print(f"written: {out / 'tables.csv'}, {out / 'table_error.md'}, {out / 'table_cost_km.md'}, "
          f"{out / 'error_over_cycles.png'}" + "".join(f", {path}" for path in extra))
    return 0


def read_table(path: Path, columns: dict[str, type]) -> pd.DataFrame:
    """A CSV of a results folder with ``columns`` (name -> str, int or float) checked: an InputError names
    the file (missing, not UTF-8, empty, not CSV, no rows) or the file and column (missing, not a number)."""
    require(path.is_file(), str(path), "file not found", RERUN)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(str(path), f"not UTF-8 text ({error.reason} at byte {error.start})", RERUN) from None
    require(text.strip() != "", str(path), "the file is empty", RERUN)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(str(path), f"not readable as CSV ({error})", RERUN) from None
    missing = [name for name in columns if name not in table.columns]
    require(not missing, str(path), f"missing column(s) {', '.join(missing)}",
            f"expected {', '.join(columns)}; {RERUN}")
    require(len(table) > 0, str(path), "no data rows", RERUN)
    for name, kind in columns.items():
        if kind is str:
            continue
        text_values = table[name].str.strip()
        blank = text_values == ""
        numbers = pd.to_numeric(text_values.mask(blank), errors="coerce")
        bad = (numbers.isna() & ~blank) | np.isinf(numbers.fillna(0.0))
        if kind is int:
            bad |= blank | (numbers.notna() & (numbers != numbers.round()))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}, column {name}", f"data row {row + 1}: '{table[name].iloc[row]}' is not "
                             f"{'an integer' if kind is int else 'a finite number'}", RERUN)
        table[name] = numbers.astype(int) if kind is int else numbers.astype(float)
    return table


def read_cycles(path: Path) -> pd.DataFrame:
    """cycles.parquet with the columns Fig. 4 needs; InputError naming the file otherwise."""
    require(path.is_file(), str(path), "file not found", RERUN)
    try:
        cycles = pd.read_parquet(path)
    except Exception as error:  # pyarrow's errors for a damaged file are many (ArrowInvalid, OSError, ...)
        raise InputError(str(path), f"not readable as Parquet ({type(error).__name__}: {error})", RERUN) from None
    missing = [name for name in CYCLE_COLUMNS if name not in cycles.columns]
    require(not missing, str(path), f"missing column(s) {', '.join(missing)}", RERUN)
    require(len(cycles) > 0, str(path), "no rows", RERUN)
    return cycles


def comparison(values: pd.Series, paper: dict[str, np.ndarray], digits: int) -> tuple[pd.DataFrame, str]:
    """Long table (ours, paper, ratios) and the Markdown grid: rows scheme x P, columns attributes x inference.

    QCO-TA cells read 'ours (paper; ours/paper)'; a baseline's read 'ours xR (paper xR)' where R is the
    scheme's figure over QCO-TA's in the same column and P."""
    rows = []
    for (scheme, count, method, participants), ours in values.items():
        qcota = values.get(("qcota", count, method, participants), np.nan)
        paper_ours = qcota_paper.paper_value(paper, scheme, count, method, participants)
        paper_qcota = qcota_paper.paper_value(paper, "qcota", count, method, participants)
        rows.append({"scheme": scheme, "num_attributes": count, "inference": method, "participants": participants,
                     "ours": ours, "paper": paper_ours, "ratio_to_qcota": ours / qcota,
                     "paper_ratio_to_qcota": paper_ours / paper_qcota, "ours_over_paper": ours / paper_ours})
    table = pd.DataFrame(rows)
    columns = table[["num_attributes", "inference"]].drop_duplicates().values.tolist()
    header = ["TA-Scheme", "P"] + [f"{count} attr {method.upper()}" for count, method in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for scheme in table["scheme"].unique():
        for participants in sorted(table["participants"].unique()):
            cells = []
            for count, method in columns:
                row = table[(table.scheme == scheme) & (table.num_attributes == count) & (table.inference == method)
                            & (table.participants == participants)]
                cells.append("" if row.empty else _cell(row.iloc[0], scheme, digits))
            lines.append(f"| {DISPLAY_NAMES.get(scheme, scheme)} | {participants} | " + " | ".join(cells) + " |")
    return table, "\n".join(lines)


def _cell(row: pd.Series, scheme: str, digits: int) -> str:
    ours = f"{row['ours']:.{digits}f}"
    if scheme == "qcota":
        return ours if np.isnan(row["paper"]) else f"**{ours}** ({row['paper']:.{digits}f}; {row['ours_over_paper']:.2f})"
    paper = "" if np.isnan(row["paper_ratio_to_qcota"]) else f" (x{row['paper_ratio_to_qcota']:.2f})"
    return f"{ours} x{row['ratio_to_qcota']:.2f}{paper}"


def wins(table: pd.DataFrame) -> str:
    """How often QCO-TA is below every baseline, and at or below the paper's own figure."""
    keyed = table.set_index(["scheme"] + KEYS)["ours"].unstack("scheme")
    if "qcota" not in keyed or keyed.shape[1] < 2:
        return ""
    baselines = keyed.drop(columns="qcota")
    below = int((keyed["qcota"].to_numpy()[:, None] < baselines.to_numpy()).all(1).sum())
    ours = table[table.scheme == "qcota"]
    at_paper = int((ours["ours"] <= ours["paper"]).sum())
    lines = [f"QCO-TA below every baseline in {below} of {len(keyed)} cells; at or below the paper's QCO-TA "
             f"in {at_paper} of {ours['paper'].notna().sum()}."]
    if "uns-ta" in keyed:
        ratio = (keyed["qcota"] / keyed["uns-ta"]).to_numpy()
        paper_ratio = table[table.scheme == "uns-ta"]["paper_ratio_to_qcota"].to_numpy()
        lines.append(f"QCO-TA / UNS-TA: ours mean {np.mean(ratio):.3f}, paper mean {np.nanmean(1 / paper_ratio):.3f}.")
    return " ".join(lines)


def plot_error_over_cycles(cycles: pd.DataFrame, path: Path) -> None:
    """Fig. 4: per-cycle aggregated error of each scheme (mean over seeds) in the grid's first setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = cycles.iloc[0]
    setting = cycles[(cycles.num_attributes == first.num_attributes) & (cycles.inference == first.inference)
                     & (cycles.participants == first.participants)]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for scheme, rows in setting.groupby("scheme", sort=False):
        curve = rows.groupby("cycle")["epsilon"].mean()
        axis.plot(curve.index, curve.to_numpy(), lw=0.8, alpha=0.35)
        running = curve.expanding().mean()
        axis.plot(running.index, running.to_numpy(), lw=2, label=f"{DISPLAY_NAMES.get(scheme, scheme)} (running mean)",
                  color=axis.lines[-1].get_color())
    axis.set_xlabel("sensing cycle (day)")
    axis.set_ylabel("aggregated sensing error")
    axis.set_title(f"{first.num_attributes} attributes, {first.inference.upper()}, P = {first.participants}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


BOUND_COLUMNS = ("clairvoyant_error", "best_fixed_set_error")
"""runs.csv columns with each grid cell's reachable errors (rl_cs.experiment.sensing_bounds)."""


def reachable_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per grid cell: UNS-TA's error, the two reachable errors and QCO-TA's (and the paper's) as ratios
    to UNS-TA's, and each scheme's share of the clairvoyant's gain, (UNS - scheme) / (UNS - clairvoyant)."""
    numeric = runs.assign(**{name: pd.to_numeric(runs[name], errors="coerce") for name in BOUND_COLUMNS})
    errors = numeric.groupby(KEYS + ["scheme"], sort=False)["error"].mean().unstack("scheme")
    bounds = numeric.groupby(KEYS, sort=False)[list(BOUND_COLUMNS)].first()
    uniform = errors["uns-ta"]
    table = pd.DataFrame({"uns_ta": uniform, "clairvoyant": bounds["clairvoyant_error"],
                          "best_fixed_set": bounds["best_fixed_set_error"]})
    table["clairvoyant_ratio"] = table["clairvoyant"] / uniform
    table["best_fixed_set_ratio"] = table["best_fixed_set"] / uniform
    for scheme in errors.columns:
        if scheme == "uns-ta":
            continue
        table[f"{scheme}_ratio"] = errors[scheme] / uniform
        table[f"{scheme}_gain_share"] = (uniform - errors[scheme]) / (uniform - table["clairvoyant"])
    table["paper_qcota_ratio"] = [
        qcota_paper.paper_value(qcota_paper.ERROR, "qcota", count, method, p)
        / qcota_paper.paper_value(qcota_paper.ERROR, "uns-ta", count, method, p) for count, method, p in table.index]
    return table.reset_index()


def targets(runs: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Issue 12's targets: QCO-TA below UNS-TA in >= 30/36 cells, mean error ratio <= 0.85, >= half of the
    clairvoyant's gain at P >= 12, mean cost ratio <= the paper's 0.126."""
    cost = runs.groupby(KEYS + ["scheme"], sort=False)["cost_km"].mean().unstack("scheme")
    cost_ratio = cost["qcota"] / cost["uns-ta"]
    paper_cost = [qcota_paper.paper_value(qcota_paper.COST_KM, "qcota", *key)
                  / qcota_paper.paper_value(qcota_paper.COST_KM, "uns-ta", *key) for key in cost.index]
    ratio = table["qcota_ratio"]
    large = table[table.participants >= 12]
    share = large["qcota_gain_share"]
    paper_ratio = table["paper_qcota_ratio"].mean()
    return [f"QCO-TA error below UNS-TA's in {int((ratio < 1).sum())} of {len(table)} cells (target >= 30 of 36).",
            f"Mean QCO/UNS error ratio {ratio.mean():.3f} (target <= 0.85; paper {paper_ratio:.3f}); clairvoyant "
            f"{table['clairvoyant_ratio'].mean():.3f}, best fixed set {table['best_fixed_set_ratio'].mean():.3f}.",
            f"Share of the clairvoyant's gain taken at P >= 12: mean {share.mean():.3f}, at least half in "
            f"{int((share >= 0.5).sum())} of {len(large)} cells (target >= 0.5).",
            f"Mean QCO/UNS cost ratio {cost_ratio.mean():.3f} (target <= 0.126; the paper's mean ratio "
            f"{np.nanmean(paper_cost):.3f})."]


def reachable_section(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Print and write the reachable-error table (if runs.csv has the bound columns); the paths written."""
    if not all(name in runs.columns for name in BOUND_COLUMNS) or not {"qcota", "uns-ta"} <= set(runs["scheme"]):
        return []
    table = reachable_table(runs)
    schemes = [s for s in dict.fromkeys(runs["scheme"]) if s != "uns-ta"]
    header = (["Attr", "Inference", "P", "UNS-TA", "clairvoyant", "best fixed set", "QCO-TA", "paper QCO-TA"]
              + [f"gain {DISPLAY_NAMES.get(s, s)}" for s in schemes])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row["num_attributes"]), row["inference"].upper(), str(row["participants"]), f"{row['uns_ta']:.3f}",
                 f"{row['clairvoyant']:.3f} x{row['clairvoyant_ratio']:.2f}",
                 f"{row['best_fixed_set']:.3f} x{row['best_fixed_set_ratio']:.2f}", f"x{row['qcota_ratio']:.2f}",
                 "" if np.isnan(row["paper_qcota_ratio"]) else f"x{row['paper_qcota_ratio']:.2f}"]
        cells += [f"{row[f'{s}_gain_share']:.2f}" for s in schemes]
        lines.append("| " + " | ".join(cells) + " |")
    title = ("Reachable errors (Eq. 15) beside Table 1: x = ratio to UNS-TA's error; gain = (UNS-TA - scheme) / "
             "(UNS-TA - clairvoyant), the share of the clairvoyant's gain a scheme takes")
    markdown = "\n".join(lines)
    summary = targets(runs, table)
    print(f"## {title}\n\n{markdown}\n\n" + "\n".join(summary) + "\n")
    (out / "table_reachable.md").write_text(f"## {title}\n\n{markdown}\n\n" + "\n".join(summary) + "\n")
    table.to_csv(out / "reachable.csv", index=False)
    return [out / "table_reachable.md", out / "reachable.csv"]


def weights_section(cycles: pd.DataFrame, out: Path) -> list[Path]:
    """Plot MPI's attribute weights of QCO-TA over the cycles (if cycles.parquet logs them); the paths written."""
    columns = [c for c in cycles.columns if c.startswith("weight_")]
    rows = cycles[cycles.scheme == "qcota"] if "scheme" in cycles else cycles.iloc[:0]
    if not columns or rows.empty or rows[columns].isna().all().all():
        return []
    plot_attribute_weights(rows, columns, out / "attribute_weights.png")
    return [out / "attribute_weights.png"]


def plot_attribute_weights(rows: pd.DataFrame, columns: list[str], path: Path) -> None:
    """One panel per attribute count: QCO-TA's weight of each attribute per cycle (Eq. 7), mean over seeds,
    inference methods and P, with the range over those runs shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted(rows["num_attributes"].unique())
    figure, axes = plt.subplots(1, len(counts), figsize=(4.5 * len(counts), 3.8), squeeze=False, sharey=True)
    for axis, count in zip(axes[0], counts):
        panel = rows[rows.num_attributes == count]
        for column in columns:
            if panel[column].isna().all():
                continue
            per_cycle = panel.groupby("cycle")[column]
            mean, low, high = per_cycle.mean(), per_cycle.min(), per_cycle.max()
            axis.plot(mean.index, mean.to_numpy(), lw=1.8, label=column.removeprefix("weight_"))
            axis.fill_between(mean.index, low.to_numpy(), high.to_numpy(), alpha=0.15,
                              color=axis.lines[-1].get_color())
        axis.axhline(1.0 / count, color="grey", lw=0.8, ls=":")
        axis.set_title(f"QCO-TA, {count} attributes")
        axis.set_xlabel("sensing cycle (day)")
        axis.set_ylim(0, 1)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("attribute weight w_y^a (Eq. 7)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
