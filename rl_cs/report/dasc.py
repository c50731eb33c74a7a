"""`rl-cs report` for the DASC world: a table of every method's metrics (mean ± std over runs; a run's value
is the mean over its episodes) from one experiment folder or a folder of them. Revenue is the realised profit
of Eq. 1 in CNY; revenue_share divides it by the maximum payable (sum of rho), so a reader sees how much room
the world leaves. Written atomically: dasc_table.md and dasc_table.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rl_cs.atomic import write_atomically
from rl_cs.errors import InputError, require
from rl_cs.report.dispatch import find_metadata, read_metadata

METRICS = ("revenue", "revenue_share", "completion_rate", "subtask_match_rate", "recommendation_success",
           "travel_km", "mean_lateness_s")
DECIMALS = {"revenue": 1, "travel_km": 1, "mean_lateness_s": 1}


def load_runs(results: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every experiment's runs.csv below ``results`` (with its data source), methods in first-seen order."""
    frames, sources = [], []
    for path in find_metadata(results):
        metadata = read_metadata(path)
        require(metadata["world"] == "dasc", str(path), f"not a DASC experiment (world '{metadata['world']}')")
        runs = path.parent / "runs.csv"
        require(runs.is_file(), str(path.parent), "no runs.csv", "the experiment did not finish; run it again")
        try:
            frame = pd.read_csv(runs)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise InputError(str(runs), f"not readable as CSV ({error})", "run the experiment again") from None
        missing = [column for column in ("method", "run", *METRICS) if column not in frame.columns]
        require(not missing, str(runs), f"missing column(s) {', '.join(missing)}", "run the experiment again")
        frames.append(frame)
        sources.append(str(metadata.get("data", "")))
    return pd.concat(frames, ignore_index=True), sorted(set(sources))


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: runs, and mean and std (over runs) of each metric."""
    per_run = runs.groupby(["method", "run"], sort=False)[list(METRICS)].mean().reset_index()
    grouped = per_run.groupby("method", sort=False)
    out = grouped[list(METRICS)].mean().join(grouped[list(METRICS)].std(ddof=0).add_suffix("_std"))
    out.insert(0, "runs", grouped.size())
    return out.reset_index()


def markdown(summary: pd.DataFrame) -> str:
    header = ["method", "runs", *METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for _, row in summary.iterrows():
        cells = [str(row["method"]), str(int(row["runs"]))]
        for metric in METRICS:
            places = DECIMALS.get(metric, 3)
            cells.append(f"{row[metric]:.{places}f} ± {row[metric + '_std']:.{places}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: Path, out: Path | None = None) -> int:
    runs, sources = load_runs(results)
    summary = table(runs)
    out = out or results
    text = (f"## DASC: the methods' metrics, mean ± std over runs\n\nData: {'; '.join(sources)}\n\n"
            + markdown(summary) + "\n")
    print(text)
    write_atomically(out / "dasc_table.md", lambda path: path.write_text(text))
    write_atomically(out / "dasc_table.csv", lambda path: summary.to_csv(path, index=False))
    print(f"written: {out / 'dasc_table.md'}, {out / 'dasc_table.csv'}")
    return 0
