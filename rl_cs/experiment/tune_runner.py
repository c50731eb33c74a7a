"""Ray start-up and the Tune run shared by every world: fresh runs, `--resume`, atomic metadata.

Tune writes each trial's results (progress.csv, result.json, TensorBoard event files) and checkpoints
under ``<results-dir>/<name>/``; ``experiment.json`` beside them records what was run, for reports.
"""

from __future__ import annotations

import os
from pathlib import Path

from rl_cs.errors import require

METADATA = "experiment.json"


def start_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (``auto`` under `ray submit`), else start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


def writable_parent(folder: Path, where: str = "--results-dir") -> None:
    """``folder`` can be created: its nearest existing ancestor is a writable directory (checked before any
    work, so a bad results folder never costs a finished computation)."""
    ancestor = folder.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    require(ancestor.is_dir(), where, f"{ancestor} is a file, not a folder", "give a folder path")
    require(os.access(ancestor, os.W_OK | os.X_OK) and not str(ancestor).startswith("/proc"), where,
            f"cannot write in {ancestor}", "give a folder you can write to")


def experiment_folder(results_dir: str, name: str, resume: bool) -> Path:
    """The experiment's folder, the same rule for every world: a new run never overwrites or mixes into an
    existing folder, ``--resume`` needs one to continue, and the place must be writable."""
    require(bool(name) and name.strip("/.") != "" and ".." not in Path(name).parts, "--name",
            f"'{name}' is not a usable experiment name", "use letters, digits, - and _")
    base = Path(results_dir)
    require(not base.exists() or base.is_dir(), "--results-dir", f"{base} is a file, not a folder",
            "give a folder path")
    folder = base.resolve() / name
    if resume:
        require(folder.is_dir() and (folder / METADATA).exists(), "--resume",
                f"no experiment to resume at {folder}", "run it once without --resume, or check --name")
    else:
        require(not folder.exists(), "--name", f"experiment folder {folder} already exists",
                "pass --resume to continue it (where the world supports it), or choose another --name")
        writable_parent(folder)
    return folder


def run_tuner(trainable, param_space, folder: Path, iterations: int, checkpoint_every: int,
              max_concurrent: int, resume: bool):
    """Fit (or restore and finish) one Tune experiment; returns its ResultGrid."""
    from ray import tune
    from ray.tune import RunConfig, TuneConfig

    start_ray()
    if resume:
        tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=TuneConfig(max_concurrent_trials=max_concurrent or None),
            run_config=RunConfig(
                name=folder.name, storage_path=str(folder.parent), stop={"training_iteration": iterations},
                checkpoint_config=_checkpoints(trainable, checkpoint_every),
                verbose=1,
            ),
        )
    return tuner.fit()


def _checkpoints(trainable, every: int):
    """Periodic and final checkpoints for class trainables (RLlib algorithms); none for function trainables
    (the heuristic planners have no state to save, and Tune refuses checkpoint settings for them)."""
    from ray.tune import CheckpointConfig

    if isinstance(trainable, type):
        return CheckpointConfig(checkpoint_frequency=every, checkpoint_at_end=True, num_to_keep=2)
    return CheckpointConfig()
