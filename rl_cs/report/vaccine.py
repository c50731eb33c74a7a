"""`rl-cs report` for the vaccine world: infections averted (mean ± std over seeds) per method, as a share of the
infections without vaccines and as a ratio to ``vaccine-local`` (each cell uses its own doses) at the same world,
and, for DyPS, as a ratio to the best other method run, beside DyPS Table 2's Medical column (paper 002,
"Infection Reduction"; its Atlanta data and units are not public, so compare ratios between methods, not
numbers).

Reads what `rl-cs train --world vaccine` writes (as rl_cs.report.ridehailing does); writes vaccine_table.md and
vaccine_table.csv (atomically) into the results folder or ``--out``.
"""

from __future__ import annotations

from pathlib import Path

from rl_cs.atomic import write_atomically
from rl_cs.report.csc import output_folder
from rl_cs.report.ridehailing import _cell, summarise, trial_values

PAPER = {"NoPS": 253, "PS": 345, "PS-id": 378, "PSA": 365, "SePS": 452, "DyPS": 539}
"""DyPS Table 2, Medical, infection reduction (mean over 5 seeds)."""
REFERENCE = "vaccine-local"
METRICS = ["infections_averted", "averted_share", "doses_used", "peak_prevalence"]


def report(results: Path, out: Path | None = None) -> int:
    out = output_folder(results, out)
    values = trial_values(results, "vaccine", METRICS)
    table = summarise(values, METRICS)
    reference = table[table.method == REFERENCE].set_index("size")["infections_averted"]
    table["vs_reference"] = [row.infections_averted / reference[row.size] if row.size in reference
                                and reference[row.size] else float("nan") for row in table.itertuples()]
    lines = [f"## Vaccine allocation: mean ± std over seeds ({', '.join(sorted(set(values.source)))})", "",
             f"| method | seeds | infections averted | share of infections without vaccines | doses used | "
             f"peak prevalence | / {REFERENCE} |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in table.itertuples():
        lines.append(f"| {row.method} | {row.seeds} | {_cell(row.infections_averted, row.infections_averted_std, 0)} | "
                     f"{_cell(row.averted_share, row.averted_share_std, 3)} | "
                     f"{_cell(row.doses_used, row.doses_used_std, 0)} | "
                     f"{_cell(row.peak_prevalence, row.peak_prevalence_std, 3)} | {row.vs_reference:.3f} |")
    others = table[~table.method.str.startswith("dyps")]
    if not others.empty:
        top = others.loc[others.infections_averted.idxmax()]
        for row in table[table.method.str.startswith("dyps")].itertuples():
            ratio = row.infections_averted / top.infections_averted if top.infections_averted else float("nan")
            lines += ["", f"{row.method} / best baseline ({top.method}): infections averted {ratio:.3f}."]
    best = max(value for name, value in PAPER.items() if name != "DyPS")
    lines += ["", "DyPS paper, Medical (infection reduction): " + ", ".join(f"{n} {v}" for n, v in PAPER.items())
              + f". DyPS / best baseline = {PAPER['DyPS'] / best:.3f}."]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_atomically(out / "vaccine_table.md", lambda path: path.write_text(markdown))
    write_atomically(out / "vaccine_table.csv", lambda path: table.to_csv(path, index=False))
    print(f"written: {out / 'vaccine_table.md'}, {out / 'vaccine_table.csv'}")
    return 0
