"""`rl-cs report` for the DASC world, from one experiment folder or a folder of them (a `train all` run, or
runs put side by side under one folder, e.g. results/fig5/{meta,sparse,shaped}):

- a table of every method's metrics, mean ± std over runs (a run's value is the mean over its episodes), one
  block per grid point (world.num_workers, world.num_tasks, world.ready_when) when there are several: every
  experiment's runs.csv (heuristics: their runs; RMO / REC: each trial's final policy on the same streams).
  Revenue is the realised profit of Eq. 1 in CNY; revenue_share divides it by the maximum payable (sum of
  rho), so a reader sees how much room the world leaves. Written atomically: dasc_table.md, dasc_table.csv;
- Fig. 5 (dasc_fig5_learning_curves.png): training revenue per episode (Tune's progress.csv,
  env_runners/recent_revenue: the mean of the last 5 training episodes; a rolling mean over 5 iterations)
  against subtask decisions sampled, per learned experiment, labelled by method and
  rmo.training_signal (meta: Algorithm 1; sparse; shaped), mean ± std over trials;
- Fig. 6 (dasc_fig6_eta.png): alpha and beta of eta (learners/shared/alpha, beta) against training iterations,
  per trial, labelled by their initial values (world.alpha, world.beta).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rl_cs.atomic import write_atomically
from rl_cs.errors import InputError, require
from rl_cs.report.dispatch import find_metadata, read_metadata

METRICS = ("revenue", "revenue_share", "completion_rate", "subtask_match_rate", "recommendation_success",
           "travel_km", "mean_lateness_s")
POINT = ("num_workers", "num_tasks", "ready_when")
DECIMALS = {"revenue": 1, "travel_km": 1, "mean_lateness_s": 1}
SMOOTHING = 5
"""Fig. 5's curves: a rolling mean over this many iterations."""
STEPS = ("env_runners/num_agent_steps_sampled_lifetime/subtasks", "num_agent_steps_sampled_lifetime",
         "num_env_steps_sampled_lifetime")


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
        folder = path.parent.name
        if metadata.get("kind") != "heuristics" and folder not in set(frame["method"]):
            # learned runs side by side (Fig. 5's signals, Fig. 6's initial etas): one row per experiment folder
            frame = frame.assign(method=frame["method"] + f" ({folder})")
        frames.append(frame)
        sources.append(str(metadata.get("data") or metadata.get("data_dir") or "synthetic"))
    return pd.concat(frames, ignore_index=True), sorted(set(sources))


def _point_columns(runs: pd.DataFrame) -> list[str]:
    return [column for column in POINT if column in runs.columns and runs[column].nunique(dropna=True) > 1]


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per grid point and method: runs, and mean and std (over runs) of each metric."""
    keys = _point_columns(runs)
    per_run = runs.groupby([*keys, "method", "run"], sort=False)[list(METRICS)].mean().reset_index()
    grouped = per_run.groupby([*keys, "method"], sort=False)
    out = grouped[list(METRICS)].mean().join(grouped[list(METRICS)].std(ddof=0).add_suffix("_std"))
    out.insert(0, "runs", grouped.size())
    return out.reset_index()


def markdown(summary: pd.DataFrame) -> str:
    keys = [column for column in POINT if column in summary.columns]
    header = [*keys, "method", "runs", *METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * (len(keys) + 1) + ["---:"] * (len(header) - len(keys) - 1)) + "|"]
    for _, row in summary.iterrows():
        cells = [str(row[key]) for key in keys] + [str(row["method"]), str(int(row["runs"]))]
        for metric in METRICS:
            places = DECIMALS.get(metric, 3)
            cells.append(f"{row[metric]:.{places}f} ± {row[metric + '_std']:.{places}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _learned_trials(results: Path) -> list[tuple[dict, Path, pd.DataFrame]]:
    """(experiment.json, trial folder, progress.csv) of every learned trial below ``results``."""
    trials = []
    for path in find_metadata(results):
        metadata = json.loads(path.read_text(encoding="utf-8"))
        if metadata.get("kind") == "heuristics":
            continue
        for progress in sorted(path.parent.glob("*/progress.csv")):
            try:
                frame = pd.read_csv(progress)
            except (pd.errors.ParserError, pd.errors.EmptyDataError):
                continue
            if len(frame):
                trials.append((metadata, progress.parent, frame))
    return trials


def _label(metadata: dict) -> str:
    signal = ((metadata.get("config") or {}).get("rmo") or {}).get("training_signal", "meta")
    return f"{metadata.get('method', '?')} ({signal})"


def learning_curves(trials, path: Path) -> bool:
    """Fig. 5: training revenue against subtask decisions sampled, mean ± std over each label's trials."""
    curves: dict[str, list[pd.Series]] = {}
    for metadata, _, frame in trials:
        y = next((column for column in ("env_runners/recent_revenue", "env_runners/revenue") if column in frame.columns),
                 None)
        if y is None:
            continue
        x = next((column for column in STEPS if column in frame.columns), "training_iteration")
        curves.setdefault(_label(metadata), []).append(frame.set_index(x)[y].rename(None))
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, series in curves.items():
        joined = pd.concat(series, axis=1).sort_index().interpolate(limit_area="inside")
        joined = joined.rolling(SMOOTHING, min_periods=1).mean()  # episodes differ every iteration: smooth
        mean, std = joined.mean(axis=1), joined.std(axis=1, ddof=0).fillna(0.0)
        axis.plot(mean.index, mean.values, label=f"{label}, {len(series)} trial(s)")
        axis.fill_between(mean.index, (mean - std).values, (mean + std).values, alpha=0.2)
    axis.set_xlabel("subtask decisions sampled")
    axis.set_ylabel("training revenue per episode (CNY)")
    axis.set_title("RMO training (Fig. 5): sparse, shaped, meta-gradient")
    axis.legend(fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda target: figure.savefig(target, format="png", dpi=120))
    plt.close(figure)
    return True


def eta_trajectories(trials, path: Path) -> bool:
    """Fig. 6: alpha and beta against training iterations, one line per trial, by initial eta."""
    lines = []
    for metadata, trial, frame in trials:
        if "learners/shared/alpha" not in frame.columns:
            continue
        params = json.loads((trial / "params.json").read_text()) if (trial / "params.json").exists() else {}
        world = (params.get("env_config") or {}).get("world") or (metadata.get("config") or {}).get("world") or {}
        label = f"initial ({world.get('alpha', '?')}, {world.get('beta', '?')}), seed {params.get('seed', '?')}"
        lines.append((label, frame["training_iteration"], frame["learners/shared/alpha"], frame["learners/shared/beta"]))
    if not lines:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharex=True)
    for label, x, alpha, beta in lines:
        axes[0].plot(x, alpha, label=label)
        axes[1].plot(x, beta, label=label)
    for axis, name in zip(axes, ("alpha", "beta")):
        axis.set_xlabel("training iteration")
        axis.set_ylabel(name)
        axis.set_ylim(-0.02, 1.02)
    axes[0].set_title("eta = {alpha, beta} (Fig. 6)")
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    write_atomically(path, lambda target: figure.savefig(target, format="png", dpi=120))
    plt.close(figure)
    return True


def report(results: Path, out: Path | None = None) -> int:
    runs, sources = load_runs(results)
    summary = table(runs)
    out = out or results
    text = (f"## DASC: the methods' metrics, mean ± std over runs\n\nData: {'; '.join(sources)}\n\n"
            + markdown(summary) + "\n")
    print(text)
    write_atomically(out / "dasc_table.md", lambda path: path.write_text(text))
    write_atomically(out / "dasc_table.csv", lambda path: summary.to_csv(path, index=False))
    written = [out / "dasc_table.md", out / "dasc_table.csv"]
    trials = _learned_trials(results)
    for name, plot in (("dasc_fig5_learning_curves.png", learning_curves), ("dasc_fig6_eta.png", eta_trajectories)):
        if trials and plot(trials, out / name):
            written.append(out / name)
    print(f"written: {', '.join(str(path) for path in written)}")
    return 0
