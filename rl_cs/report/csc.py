"""`rl-cs report` for the CSC world: CAFE's Tables 1-2 (revenue and completion rate, mean ± std over seeds)
and Fig. 7 (learning curves) from one experiment folder or a `train all` folder of them.

Every Tune trial folder (params.json + result.json) is one (method, grid point, seed). A trial's value is
its held-out evaluation (heldout.json: the final policy on the experiment's evaluation episodes, the same
for every method) or, where that is missing, its last reported training iteration; the table says which. Table rows are methods, columns the swept world fields (the
experiment's ``grid``: world.num_tasks gives CAFE's Table 1, world.num_workers its Table 2). Revenue is
scaled by 10^4 like the paper only when the means reach 10^4; otherwise it is in raw payment units (CNY,
the fare tariff of rl_cs.data.tasks.TaskRules). Two more tables put revenue in proportion: its share of the
maximum payable (the sum of rho_max of the episodes' task windows: how much room the world leaves any
method) and its ratio to the paper's Greedy at the same grid point (RATIOS). Outputs (Markdown, CSV, PNG)
are written atomically.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from rl_cs.atomic import write_atomically
from rl_cs.errors import InputError, require
from rl_cs.report.dispatch import find_metadata

METRICS = ("revenue", "completion_rate")
"""Business metrics each trial reports under env_runners (rl_cs.experiment.csc, CSCMetrics)."""
RATIOS = ("revenue_share", "revenue_vs_greedy")
"""Per trial: revenue / max_payable (the sum of rho_max of the episodes' task windows: what finishing every
task by its t_e would pay, envs.csc episode_metrics) and revenue / the mean revenue of the paper's Greedy
(``greedy``) at the same grid point."""
DISPLAY_NAMES = {"greedy": "Greedy", "greedy-coord": "Greedy-coord", "random": "Random", "ippo": "IPPO",
                 "pau": "PAU", "ca-nofe": "CA-noFE", "cafe": "CAFE", "ir": "IR", "ices": "ICES", "relara": "ReLara"}
GRID_LABELS = {"world.num_tasks": "N_tau", "world.num_workers": "N_w"}
PAPER_SCALE = 1e4


def output_folder(results: Path, out: Path | None) -> Path:
    """Where a report writes (``--out``, else the results folder), checked before anything is computed: a
    folder or a place one can be made, writable, not under /proc."""
    where = "--out" if out is not None else str(results)
    folder = Path(out if out is not None else results)
    require(not folder.exists() or folder.is_dir(), where, f"{folder} is a file, not a folder",
            "give a folder for the tables and plots")
    if folder.exists():
        require(os.access(folder, os.W_OK | os.X_OK) and not str(folder.resolve()).startswith("/proc"), where,
                f"cannot write in {folder}", "give a folder you can write to with --out")
    else:
        from rl_cs.experiment.tune_runner import writable_parent

        writable_parent(folder.resolve(), where)
    return folder


def report(results: Path, out: Path | None = None) -> int:
    out = output_folder(results, out)
    curves = load_curves(results)
    final = payable_values(heldout_values(final_values(curves), results), results)
    summary = summarise(final, (*METRICS, *RATIOS))
    sources = ", ".join(sorted(set(final["source"])))
    scale = PAPER_SCALE if summary.loc[summary.metric == "revenue", "mean"].abs().max() >= PAPER_SCALE else 1.0
    seeds = sorted(summary.loc[summary.metric == "revenue", "seeds"].unique())
    over = f"mean ± std over {'/'.join(map(str, seeds))} seed(s); {sources}"
    unit = "x10^4" if scale != 1.0 else "CNY, unscaled"
    sections = [
        f"## Revenue ({unit}), {over}\n\n" + markdown_table(summary[summary.metric == "revenue"], scale, 2),
        f"## Completion rate, {over}\n\n" + markdown_table(summary[summary.metric == "completion_rate"], 1.0, 3),
        ratio_section(final, summary, over)]
    markdown = "\n\n".join(sections) + "\n"
    print(markdown)
    write_atomically(out / "csc_table.md", lambda path: path.write_text(markdown))
    write_atomically(out / "csc_table.csv", lambda path: summary.to_csv(path, index=False))
    write_atomically(out / "learning_curves.png", lambda path: plot_curves(curves, path))
    print(f"written: {out / 'csc_table.md'}, {out / 'csc_table.csv'}, {out / 'learning_curves.png'}")
    return 0


def load_curves(results: Path) -> pd.DataFrame:
    """Every trial's metrics per iteration: method, column (grid point label), seed, iteration, metrics;
    methods in the order the YAML's experiment.methods lists them (the paper's order)."""
    experiments = [(path, _read_json(path)) for path in find_metadata(results)]
    for path, metadata in experiments:
        require(isinstance(metadata.get("method"), str), str(path), "no 'method' entry",
                "it is written by `rl-cs train`; rerun the experiment")
        config = metadata.get("config", {})
        require(isinstance(config, dict) and all(isinstance(config.get(key, {}), dict) for key in ("experiment", "grid")),
                str(path), "'config' is not the experiment's config mapping", "it is written by `rl-cs train`")
    listed = [m for _, metadata in experiments for m in metadata.get("config", {}).get("experiment", {})
              .get("methods", []) if isinstance(m, str)]
    experiments.sort(key=lambda item: listed.index(item[1].get("method")) if item[1].get("method") in listed
                     else len(listed))
    frames = []
    for metadata_path, metadata in experiments:
        require(metadata.get("world") == "csc", str(metadata_path), "not a CSC experiment")
        grid = list(metadata.get("config", {}).get("grid", {}))
        trials = sorted(p.parent for p in metadata_path.parent.glob("*/params.json"))
        require(bool(trials), str(metadata_path.parent), "no Tune trial folders (params.json) here",
                "the experiment has not run yet, or give the folder `rl-cs train` wrote")
        for trial in trials:
            frames.append(_trial_curve(trial, metadata["method"], grid))
    return pd.concat(frames, ignore_index=True)


def _trial_curve(trial: Path, method: str, grid: list[str]) -> pd.DataFrame:
    """One trial's metrics per iteration, from result.json (one JSON result per line; unlike progress.csv
    it stays well-formed when a resumed trial reports more columns)."""
    params = _read_json(trial / "params.json")
    results = trial / "result.json"
    require(results.is_file(), str(trial), "no result.json", "the trial has not reported an iteration yet")
    rows = []
    for number, line in enumerate(_read_text(results).splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{results}:{number}", f"not valid JSON ({error})") from None
        require(isinstance(result, dict) and "training_iteration" in result, f"{results}:{number}",
                "no training_iteration", "not a Tune trial of `rl-cs train`")
        runners = result.get("env_runners", {})
        runners = runners if isinstance(runners, dict) else {}
        rows.append({"iteration": result["training_iteration"],
                     **{name: _number(runners.get(name, np.nan)) for name in METRICS}})
    env_config = params.get("env_config", {})
    world = env_config.get("world", {}) if isinstance(env_config, dict) else None
    require(isinstance(world, dict), str(trial / "params.json"), "env_config.world is not a mapping",
            "not a Tune trial of `rl-cs train`")
    frame = pd.DataFrame(rows, columns=["iteration", *METRICS])
    frame.insert(0, "trial", trial.name)
    frame.insert(0, "seed", params.get("seed"))
    frame.insert(0, "column", grid_label(world, grid, str(trial / "params.json")))
    frame.insert(0, "method", method)
    return frame


def grid_label(world: dict, grid: list[str], where: str = "params.json") -> str:
    """'N_tau = 50' for a world.num_tasks grid (several keys joined by ', '); without a grid, the world's
    N_w and N_tau."""
    grid = grid or ["world.num_workers", "world.num_tasks"]
    parts = []
    for dotted in grid:
        value = world
        for key in dotted.split(".")[1:]:
            require(isinstance(value, dict) and key in value, where, f"no {dotted} in env_config.world")
            value = value[key]
        parts.append(f"{GRID_LABELS.get(dotted, dotted)} = {value}")
    return ", ".join(parts)


def final_values(curves: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last iteration that reported revenue (a PPO iteration may finish no episode)."""
    reported = curves.dropna(subset=["revenue"])
    require(not reported.empty, "results", "no trial reported env_runners/revenue yet",
            "train longer: an iteration reports revenue once an episode has finished")
    return reported.loc[reported.groupby("trial", sort=False)["iteration"].idxmax()]


def heldout_values(final: pd.DataFrame, results: Path) -> pd.DataFrame:
    """Replace each trial's last training values by its held-out evaluation (``heldout.json``, written by
    `rl-cs train` after the trials: every method on the same evaluation episodes), where present."""
    final = final.copy()
    final["source"] = "training"
    for path in results.glob("**/heldout.json"):
        rows = final["trial"] == path.parent.name
        values = _read_json(path)
        missing = [name for name in (*METRICS, "episodes") if name not in values]
        require(not missing, str(path), f"no {', '.join(missing)}", "it is written by `rl-cs train`; rerun it")
        for name in METRICS:
            final.loc[rows, name] = values[name]
        final.loc[rows, "source"] = f"held-out ({values['episodes']} episode(s))"
    return final


def payable_values(final: pd.DataFrame, results: Path) -> pd.DataFrame:
    """``final`` with each trial's ``max_payable`` (mean over the episodes its revenue comes from: the
    held-out episodes, from heldout.json or, for folders written before it carried the figure, recomputed from
    the trial's world and the held-out seeds; else the last training iteration's episodes) and RATIOS.
    A figure that cannot be had (the data folder is gone) is NaN and its cells stay empty."""
    final = final.copy()
    trials = {path.parent.name: path.parent for path in results.glob("**/params.json")}
    final["max_payable"] = [_max_payable(trials.get(row.trial), row.source, row.iteration)
                            for row in final.itertuples()]
    final["revenue_share"] = final["revenue"] / final["max_payable"]
    greedy = final[final["method"] == "greedy"].groupby("column")["revenue"].mean()
    final["revenue_vs_greedy"] = final["revenue"] / final["column"].map(greedy).astype(float)
    return final


def _max_payable(trial: Path | None, source: str, iteration) -> float:
    if trial is None:
        return np.nan
    if source != "training":
        values = _read_json(trial / "heldout.json")
        if "max_payable" in values:
            return _number(values["max_payable"])
        return _heldout_payable(trial, tuple(values.get("seeds") or ()))
    for line in reversed(_read_text(trial / "result.json").splitlines()):
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict) and result.get("training_iteration") == iteration:
            runners = result.get("env_runners", {})
            return _number(runners.get("max_payable", np.nan)) if isinstance(runners, dict) else np.nan
    return np.nan


def _heldout_payable(trial: Path, seeds: tuple) -> float:
    """The mean max_payable of the held-out episodes ``seeds`` of the trial's world (the task windows only
    depend on the world and the seed); NaN where the world cannot be rebuilt here."""
    env_config = _read_json(trial / "params.json").get("env_config")
    if not seeds or not isinstance(env_config, dict):
        return np.nan
    return _payable_of(json.dumps({key: env_config.get(key) for key in ("world", "data_dir", "cache_dir")},
                                  sort_keys=True), seeds)


@lru_cache(maxsize=64)
def _payable_of(env_config: str, seeds: tuple) -> float:
    from envs.csc import CSCEnv

    try:
        env = CSCEnv(json.loads(env_config))
        payable = []
        for seed in seeds:
            env.reset(seed=int(seed))
            payable.append(env.episode_metrics()["max_payable"])
    except (InputError, OSError, KeyError, TypeError, ValueError):
        return np.nan
    return float(np.mean(payable))


def ratio_section(final: pd.DataFrame, summary: pd.DataFrame, over: str) -> str:
    """Revenue as a share of the maximum payable (room left for any method) and as a ratio to the paper's
    Greedy at the same grid point."""
    payable = final.groupby("column", sort=False)["max_payable"].mean()
    known = ", ".join(f"{column}: {payable[column]:.1f}" for column in _column_order(final["column"])
                      if np.isfinite(payable[column]))
    share = summary[(summary.metric == "revenue_share") & summary["mean"].notna()]
    parts = ["## Revenue as a share of the maximum payable (%), " + over + "\n\n"
             + (f"Maximum payable (sum of rho_max of the task window, mean per episode): {known}\n\n"
                + markdown_table(share, 0.01, 1) if len(share) else "No maximum payable in these results.")]
    ratio = summary[(summary.metric == "revenue_vs_greedy") & summary["mean"].notna()]
    parts.append("## Revenue / Greedy's (the paper's Greedy, same grid point), " + over + "\n\n"
                 + (markdown_table(ratio, 1.0, 3) if len(ratio) else "No Greedy trials in these results."))
    return "\n\n".join(parts)


def summarise(final: pd.DataFrame, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Long table: method, column, metric, mean, std (sample std over seeds; NaN for one seed), seeds."""
    long = final.melt(id_vars=["method", "column", "seed"], value_vars=list(metrics), var_name="metric")
    grouped = long.groupby(["method", "column", "metric"], sort=False)["value"]
    summary = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    summary["method"] = pd.Categorical(summary["method"], _method_order(final["method"]))
    summary["column"] = pd.Categorical(summary["column"], _column_order(final["column"]))
    return summary.sort_values(["metric", "method", "column"]).reset_index(drop=True).astype(
        {"method": str, "column": str})


def _method_order(methods: pd.Series) -> list[str]:
    """Methods in order of first appearance (load_curves orders them as the YAML lists them)."""
    return list(dict.fromkeys(methods))


def _column_order(columns: pd.Series) -> list[str]:
    """Grid points by their numbers (N_tau = 50 before N_tau = 100), else as found."""
    def key(label: str):
        numbers = [part.rpartition("= ")[2] for part in label.split(", ")]
        return [float(n) if _is_number(n) else np.inf for n in numbers], label
    return sorted(dict.fromkeys(columns), key=key)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def markdown_table(summary: pd.DataFrame, scale: float, digits: int) -> str:
    """Rows methods, columns grid points, cells 'mean ± std' (just the mean for a single seed)."""
    columns = list(dict.fromkeys(summary["column"]))
    lines = ["| Method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for method, rows in summary.groupby("method", sort=False):
        cells = {row.column: _cell(row.mean / scale, row.std / scale, digits) for row in rows.itertuples()}
        lines.append(f"| {DISPLAY_NAMES.get(method, method)} | "
                     + " | ".join(cells.get(column, "") for column in columns) + " |")
    return "\n".join(lines)


def _cell(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def plot_curves(curves: pd.DataFrame, path: Path) -> None:
    """CAFE Fig. 7: revenue per training iteration, one line per method (mean, ±std band over seeds), one
    panel per grid point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = _column_order(curves["column"])
    figure, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.8), squeeze=False)
    for axis, column in zip(axes[0], columns):
        panel = curves[curves["column"] == column]
        for method in _method_order(panel["method"]):
            stats = panel[panel["method"] == method].groupby("iteration")["revenue"].agg(["mean", "std"])
            band = stats["std"].fillna(0.0)
            axis.plot(stats.index, stats["mean"], marker="o", markersize=3, label=DISPLAY_NAMES.get(method, method))
            axis.fill_between(stats.index, stats["mean"] - band, stats["mean"] + band, alpha=0.2)
        axis.set(title=column, xlabel="training iteration", ylabel="revenue per episode")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    plt.close(figure)


def _read_text(path: Path) -> str:
    require(path.is_file(), str(path), "file not found")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(str(path), f"not UTF-8 text ({error.reason} at byte {error.start})",
                         "it is written by `rl-cs train`; rerun the experiment") from None
    except OSError as error:
        raise InputError(str(path), f"cannot read the file ({error.strerror})") from None


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``; a file that is missing, not UTF-8, not JSON or not an object is an
    InputError naming it."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise InputError(str(path), f"not valid JSON ({error})") from None
    require(isinstance(data, dict), str(path), f"expected a JSON object, got a {type(data).__name__}",
            "it is written by `rl-cs train`; rerun the experiment")
    return data


def _number(value) -> float:
    """A reported metric as a float (NaN where Tune wrote something else)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan
