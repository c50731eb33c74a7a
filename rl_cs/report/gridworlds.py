"""`rl-cs report` for the package gridworlds (``lbf``, ``rware``): each method's held-out return and business
numbers as mean ± std over its trials (seeds), beside DyPS Table 2's figures for the same scenario (paper
002), and the learning curves.

Reads what `rl-cs train --world lbf|rware` writes (rl_cs.experiment.rllib_commands): one experiment folder or
a `train all` folder of them, each with experiment.json and one folder per trial holding heldout.json (the
trial's final policy on the held-out episodes, the same for every method) and progress.csv (training
iterations). Writes table.md, table.csv and curves.png into the results folder (or ``--out``).
"""

from __future__ import annotations

import json
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
PAPER_STD = {
    ("lbf", "lbf1"): {"NoPS": 0.02, "PS": 0.03, "PS-id": 0.02, "PSA": 0.03, "SePS": 0.04, "DyPS": 0.02},
    ("lbf", "lbf2"): {"NoPS": 0.05, "PS": 0.04, "PS-id": 0.05, "PSA": 0.03, "SePS": 0.03, "DyPS": 0.04},
    ("rware", "rware1"): {"NoPS": 0.15, "PS": 0.22, "PS-id": 0.20, "PSA": 0.18, "SePS": 0.15, "DyPS": 0.20},
    ("rware", "rware2"): {"NoPS": 0.12, "PS": 0.15, "PS-id": 1.15, "PSA": 2.12, "SePS": 2.50, "DyPS": 2.31},
}
"""DyPS Table 2's standard deviations (over its 5 seeds)."""
PAPER_NAME = {"nops": "NoPS", "ps": "PS", "ps-id": "PS-id", "psa": "PSA", "seps": "SePS", "dyps": "DyPS"}
RERUN = "it is written by `rl-cs train --world lbf|rware`; rerun the experiment"


def _trials(folder: Path, metrics: list[str]) -> pd.DataFrame:
    """One row per trial of an experiment: its held-out means, seed and training length."""
    rows = []
    for heldout in sorted(folder.glob("*/heldout.json")):
        try:
            data = json.loads(heldout.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise InputError(str(heldout), f"unreadable ({type(error).__name__})", RERUN) from None
        missing = [m for m in metrics if not isinstance(data.get(m), (int, float))]
        require(not missing, str(heldout), f"missing metrics {missing}", RERUN)
        params = heldout.parent / "params.json"
        seed = json.loads(params.read_text()).get("seed") if params.is_file() else None
        rows.append({"trial": heldout.parent.name, "seed": seed, **{m: float(data[m]) for m in metrics}})
    return pd.DataFrame(rows)


def _curves(folder: Path, method: str) -> pd.DataFrame:
    frames = []
    for progress in sorted(folder.glob("*/progress.csv")):
        try:
            frame = pd.read_csv(progress)
        except (ValueError, OSError):
            continue
        if "env_runners/return" in frame and "num_env_steps_sampled_lifetime" in frame:
            frames.append(frame[["num_env_steps_sampled_lifetime", "env_runners/return"]].assign(
                method=method, trial=progress.parent.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
    tables, curves, budgets = [], [], {}
    for path, meta in zip(paths, metadata):
        method = meta.get("method")
        require(isinstance(method, str), str(path), "no 'method' in the experiment record", RERUN)
        trials = _trials(path.parent, metrics)
        require(not trials.empty, str(path.parent), "no trial has a heldout.json (unfinished run?)", RERUN)
        tables.append(trials.assign(method=method))
        curves.append(_curves(path.parent, method))
        config = meta.get("config", {})
        budgets[method] = (config.get("experiment", {}).get("iterations"),
                           config.get("training", {}).get("train_batch_size"))
    table = pd.concat(tables, ignore_index=True)
    grouped = table.groupby("method", sort=False)[metrics]
    summary = grouped.mean().round(3).astype(str) + " ± " + grouped.std().fillna(0).round(3).astype(str)
    summary.insert(0, "seeds", grouped.size())
    paper, paper_std = PAPER_RETURN.get((world, size), {}), PAPER_STD.get((world, size), {})
    summary["paper return (1M steps)"] = [
        f"{paper[PAPER_NAME[m]]} ± {paper_std[PAPER_NAME[m]]}" if PAPER_NAME.get(m) in paper else ""
        for m in summary.index]
    known = registry.methods()
    steps = {m: b[0] * b[1] for m, b in budgets.items() if m in known and known[m].learned and b[0] and b[1]}
    summary["env steps"] = [steps.get(m, "") for m in summary.index]
    out = output_folder(results, out)
    lines = [f"## {world} {size}: held-out return, mean ± std over seeds (each seed: the mean of its final "
             "policy's held-out episodes)", "", summary.to_markdown(), ""]
    if paper:
        lines += ["Paper: DyPS Table 2 (5 seeds, 1M env steps); ours: the env steps shown, every learned method "
                  "with the same budget and PPO settings.", ""]
    drawn = [c for c in curves if not c.empty]
    curve = pd.concat(drawn, ignore_index=True) if drawn else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines), encoding="utf-8")
    table.to_csv(out / "table.csv", index=False)
    if curve is not None:
        _plot(curve, out / "curves.png", f"{world} {size}")
    print("\n".join(lines))
    return 0


def _plot(curve: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, frame in curve.groupby("method", sort=False):
        mean = frame.groupby("num_env_steps_sampled_lifetime")["env_runners/return"].mean()
        ax.plot(mean.index, mean.values, label=method)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training return (mean over seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
