"""`rl-cs report <search folder>`: a hyperparameter search (rl_cs.experiment.search) of any world.

Reads the folder's experiment.json (what was searched: space, searcher, scheduler, metric, mode) and
search.csv (one row per trial, written by `rl-cs train` once every trial finished and was scored on the
held-out stream) and writes, next to the Markdown it prints:

- search_trials.csv: the trials best first by the search metric (search.ranked: trials that ran every
  iteration first), with their searched values (a PBT trial's last ones), the iterations each ran (ASHA's
  early stops show here) and their held-out figures;
- search_report.md: the best configuration and that table;
- search_metric.png: the search metric against each searched parameter (log axis for loguniform; trials ASHA
  stopped early hollow, the best a star), with the held-out figure of the world's first metric in a second
  row where trials have one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from rl_cs.atomic import write_atomically
from rl_cs.errors import InputError, require
from rl_cs.experiment.search import parse_space, ranked
from rl_cs.report.csc import output_folder
from rl_cs.report.dispatch import read_metadata

TABLE = "search.csv"
RERUN = "it is written by `rl-cs train` at the end of a search; finish it (--resume) or run it again"


def is_search(metadata: dict) -> bool:
    return isinstance(metadata.get("search"), dict)


def report(results: Path, out: Path | None = None) -> int:
    """Everything is read and checked before the first file is written."""
    metadata_path = results / "experiment.json"
    metadata = read_metadata(metadata_path)
    summary = metadata["search"]
    for key in ("space", "metric", "mode"):
        require(key in summary, f"{metadata_path}: search", f"no '{key}' entry", RERUN)
    require(summary["mode"] in ("max", "min"), f"{metadata_path}: search.mode", f"unknown mode {summary['mode']!r}",
            RERUN)
    distributions = parse_space(summary["space"], f"{metadata_path}: search.space")
    metric, mode = summary["metric"], summary["mode"]
    table = read_trials(results / TABLE, [*distributions, metric])
    out = output_folder(results, out)
    table = ranked(table, metric, mode)
    markdown = render(metadata, table, distributions)
    print(markdown)
    write_atomically(out / "search_trials.csv", lambda path: table.to_csv(path, index=False))
    write_atomically(out / "search_report.md", lambda path: path.write_text(markdown))
    write_atomically(out / "search_metric.png", lambda path: plot(table, distributions, metric, path))
    print(f"written: {out / 'search_trials.csv'}, {out / 'search_report.md'}, {out / 'search_metric.png'}")
    return 0


def read_trials(path: Path, columns: list[str]) -> pd.DataFrame:
    """search.csv with ``columns`` present; an InputError names the file (missing, unreadable, no rows) or
    the column."""
    require(path.is_file(), str(path), "file not found", RERUN)
    try:
        table = pd.read_csv(io.StringIO(path.read_bytes().decode("utf-8")))
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(str(path), f"not a readable CSV table ({type(error).__name__})", RERUN) from None
    require(len(table) > 0, str(path), "no trials", RERUN)
    for column in ("trial", *columns):
        require(column in table.columns, str(path), f"no column '{column}'", RERUN)
    return table


def render(metadata: dict, table: pd.DataFrame, distributions: dict) -> str:
    summary = metadata["search"]
    metric, mode = summary["metric"], summary["mode"]
    iterations = metadata.get("config", {}).get("experiment", {}).get("iterations")
    best = table.iloc[0]
    lines = [f"# Search: {metadata.get('method', '?')} on {metadata['world']} ({summary.get('searcher', '?')} "
             f"searcher, scheduler {summary.get('scheduler', '?')}, {len(table)} trial(s), {metric} {mode}, "
             f"trial seed {summary.get('trial_seed', 0)})", ""]
    lines.append("## Best configuration")
    lines.append("")
    lines.append(f"Trial {best['trial']}: " + ", ".join(f"{key} = {_value(best[key])}" for key in distributions)
                 + f"; {metric} = {_value(best[metric])}")
    heldout = [column for column in table.columns if column.startswith("heldout_")]
    if heldout and pd.notna(best[heldout[0]]):
        lines.append("")
        lines.append("Held-out stream: " + ", ".join(f"{column[len('heldout_'):]} = {_value(best[column])}"
                                                     for column in heldout))
    if "stopped_early" in table and table["stopped_early"].astype(bool).any() and iterations:
        saved = int((iterations - table["iterations"]).sum())
        lines += ["", f"ASHA stopped {int(table['stopped_early'].astype(bool).sum())} of {len(table)} trials early: "
                      f"{saved} of {len(table) * iterations} trial-iterations not run "
                      f"({saved / (len(table) * iterations):.0%})."]
    shown = ["trial", *distributions, metric, *[c for c in ("iterations", "stopped_early") if c in table], *heldout]
    lines += ["", f"## Trials, best first by {metric} ({mode})", "",
              table[shown].to_markdown(index=False, floatfmt=".4g"), ""]
    return "\n".join(lines)


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot(table: pd.DataFrame, distributions: dict, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heldout = next((c for c in table.columns if c.startswith("heldout_") and table[c].notna().any()), None)
    rows = [metric] + ([heldout] if heldout else [])
    keys = list(distributions)
    figure, axes = plt.subplots(len(rows), len(keys), figsize=(4.2 * len(keys), 3.4 * len(rows)), squeeze=False)
    early = table["stopped_early"].astype(bool) if "stopped_early" in table else pd.Series(False, index=table.index)
    for row, column in enumerate(rows):
        for axis, key in zip(axes[row], keys):
            x, labels = _positions(table[key])
            full, cut = ~early, early
            axis.scatter(x[full], table[column][full], color="tab:blue", label="ran every iteration")
            if cut.any():
                axis.scatter(x[cut], table[column][cut], facecolors="none", edgecolors="tab:blue",
                             label="stopped early (ASHA)")
            axis.scatter(x[:1], table[column][:1], marker="*", s=200, color="tab:red", label="best", zorder=3)
            if labels is not None:
                axis.set_xticks(range(len(labels)), labels)
            elif distributions[key].log_scale:
                from matplotlib.ticker import NullFormatter

                axis.set_xscale("log")
                axis.xaxis.set_minor_formatter(NullFormatter())  # labelled decades only (minor labels overlap)
            axis.set(xlabel=key, ylabel=column)
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)


def _positions(values: pd.Series):
    """Numeric values as they are; anything else (text, booleans, lists) at category positions."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and values.map(lambda v: not isinstance(v, bool)).all():
        return numeric.to_numpy(dtype=float), None
    labels = sorted(values.astype(str).unique())
    return values.astype(str).map(labels.index).to_numpy(dtype=float), labels

