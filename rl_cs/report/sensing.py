"""Tables 1 and 2 of QCO-TA (aggregated sensing error, average cost in km) from a sensing results folder,
in the paper's layout, with the paper's figures and the ratios to QCO-TA beside ours; Fig. 4 as a PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from policies.qcota.schemes import DISPLAY_NAMES
from rl_cs.data import qcota_paper
from rl_cs.errors import require

TABLES = (("error", "Table 1: aggregated sensing error (Eq. 15)", qcota_paper.ERROR, 3),
          ("cost_km", "Table 2: average task allocation cost, km (Eq. 16)", qcota_paper.COST_KM, 2))
KEYS = ["num_attributes", "inference", "participants"]


def report(results: Path, out: Path | None = None) -> int:
    experiment_file = results / "experiment.json"
    require(experiment_file.is_file(), str(results), "no experiment.json", "give a folder written by `rl-cs train`")
    experiment = json.loads(experiment_file.read_text())
    require(experiment.get("world") == "sensing", str(experiment_file), "not a sensing experiment")
    out = out or results
    out.mkdir(parents=True, exist_ok=True)
    if experiment.get("kind") == "sweep":
        print(pd.read_csv(results / "sweep.csv").to_string(index=False))
        return 0
    runs = pd.read_csv(results / "runs.csv")
    means = runs.groupby(["scheme"] + KEYS, sort=False)[["error", "cost_km"]].mean()
    print(f"# QCO-TA on {experiment['data']} ({runs['seed'].nunique()} seed(s) per cell, mean)\n")
    if experiment.get("calibration"):
        calibration = experiment["calibration"]
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
    plot_error_over_cycles(pd.read_parquet(results / "cycles.parquet"), out / "error_over_cycles.png")
    print(f"written: {out / 'tables.csv'}, {out / 'table_error.md'}, {out / 'table_cost_km.md'}, "
          f"{out / 'error_over_cycles.png'}")
    return 0


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
