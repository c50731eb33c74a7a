"""Ray start-up and the Tune run shared by every world: fresh runs, `--resume`, atomic metadata, failures.

Tune writes each trial's results (progress.csv, result.json, TensorBoard event files) and checkpoints
under ``<results-dir>/<name>/``; ``experiment.json`` beside them records what was run, for reports.
A failed trial is retried from its last checkpoint (``experiment.max_failures``); every failure is printed
and recorded in ``failures.jsonl`` beside them. Ctrl-C ends the Tune run with its state saved, and
run_tuner says so, so that the caller treats the run as unfinished (``--resume`` continues it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ray.tune import Callback

from rl_cs.errors import InputError, require
from rl_cs.experiment.ray_session import start_ray

METADATA = "experiment.json"
FAILURES = "failures.jsonl"


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
              max_concurrent: int, resume: bool, max_failures: int = 0, tune_config=None,
              keep_checkpoints: int | None = 2):
    """Fit (or restore and finish) one Tune experiment; returns its ResultGrid and whether Ctrl-C (SIGINT)
    ended it early. A failed trial is retried up to ``max_failures`` times from its last checkpoint (a
    resumed run keeps the retry settings it was started with). ``tune_config``: a search's TuneConfig
    (searcher, scheduler, samples, metric: rl_cs.experiment.search), else one trial per grid point and seed;
    a resumed search keeps its searcher's and scheduler's state (Tuner.restore). ``keep_checkpoints``: the
    newest checkpoints kept per trial (None: all, for PBT, which restores trials from others' checkpoints)."""
    from ray import tune
    from ray.tune import FailureConfig, RunConfig, TuneConfig

    start_ray()
    if resume:
        tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune_config or TuneConfig(max_concurrent_trials=max_concurrent or None),
            run_config=RunConfig(
                name=folder.name, storage_path=str(folder.parent), stop={"training_iteration": iterations},
                checkpoint_config=_checkpoints(trainable, checkpoint_every, keep_checkpoints),
                failure_config=FailureConfig(max_failures=max_failures),
                callbacks=[TrialFailures()],
                verbose=1,
            ),
        )
    with _sigint_watch() as interrupted:
        results = tuner.fit()
    return results, interrupted.is_set()


class _sigint_watch:
    """Whether Tune's own SIGINT handler fired during ``fit``: Tune stops the run on the first Ctrl-C and puts
    back the handler it found, which is ours; a second Ctrl-C reaches ours and raises KeyboardInterrupt."""

    def __enter__(self) -> threading.Event:
        self.event = threading.Event()
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self.event

    def _handler(self, signum, frame):
        self.event.set()
        raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self.active:
            current = signal.signal(signal.SIGINT, self.previous)
            if current == self._handler and not int(os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0")):
                self.event.set()  # Tune took a Ctrl-C and restored ours


class TrialFailures(Callback):
    """Prints each trial failure in the driver's output and appends it to ``<experiment>/failures.jsonl``:
    the trial, its last reported iteration, the error's last line, and whether Tune retries it."""

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._record(trial, retried=True)
        _keep_logs(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, retried=False)

    @staticmethod
    def _record(trial, retried: bool) -> None:
        error = _error_line(trial.error_file)
        done = (trial.last_result or {}).get("training_iteration", 0)
        limit = trial.max_failures
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "trial": str(trial), "after_iteration": done,
                  "failures": trial.num_failures, "retried": retried, "error": error}
        action = (f"retrying from its last checkpoint ({trial.num_failures} of "
                  f"{'unlimited' if limit < 0 else limit} retries)" if retried else "no retries left")
        print(f"rl-cs: trial {trial} failed after iteration {done}: {error}; {action}", file=sys.stderr, flush=True)
        if trial.local_path:
            with open(Path(trial.local_path).parent / FAILURES, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")


def _keep_logs(trial) -> None:
    """Copy a trial's result.json and progress.csv from the driver's staging folder to the results folder before
    Tune retries it. Tune restarts a retried trial's logs from the results folder's copies, which the driver
    refreshes only every few seconds: the iterations reported since then vanished from result.json (seen after
    a lost node, tests/test_multinode.py)."""
    if not trial.local_path or not trial.path or Path(trial.local_path) == Path(trial.path):
        return
    for name in ("result.json", "progress.csv"):
        source, target = Path(trial.local_path) / name, Path(trial.path) / name
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.partial")
            partial.write_bytes(source.read_bytes())
            os.replace(partial, target)


def _error_line(path: str | None) -> str:
    """The most telling line of a trial's error file: the last exception line, without Ray's wrapping."""
    try:
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except (OSError, TypeError):
        return "unknown error"
    found = next((line for line in reversed(lines) if "Error" in line.split(":", 1)[0]
                  or "Exception" in line.split(":", 1)[0]), lines[-1] if lines else "unknown error")
    if len(found) > 240:  # Ray's actor-death texts run on: keep whole sentences
        found = found[:found.rfind(". ", 0, 240) + 1] or found[:240]
    return found


def failures(folder: Path) -> list[dict]:
    """The trial failures recorded in an experiment folder (oldest first)."""
    path = folder / FAILURES
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rewrite_progress(folder: Path) -> None:
    """Each trial's progress.csv rebuilt from its result.json, one column per metric seen in any iteration.
    Tune's CSV logger keeps the columns of the first result it writes: after `--resume` (a new logger) it
    appends rows shaped like the first resumed result (RLlib adds timers after iteration 1), under the old
    header, and the file no longer parses. result.json (one JSON result per line) is the record."""
    import pandas as pd

    from rl_cs.atomic import write_frame

    for results in sorted(folder.glob("*/result.json")):
        rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            frame = pd.json_normalize([{k: v for k, v in row.items() if k != "config"} for row in rows], sep="/")
            write_frame(frame, results.parent / "progress.csv")


def read_metadata(folder: Path) -> dict:
    """``experiment.json`` of an experiment folder; unreadable or malformed files are InputErrors."""
    path = folder / METADATA
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(str(path), f"cannot read the experiment's metadata ({error})",
                         "it is written by `rl-cs train`; start a new run under another --name") from None
    require(isinstance(data, dict) and isinstance(data.get("config"), dict), str(path),
            "not an rl-cs experiment record (expected an object with a 'config')",
            "start a new run under another --name")
    return data


def _checkpoints(trainable, every: int, keep: int | None = 2):
    """Periodic and final checkpoints for class trainables (RLlib algorithms); none for function trainables
    (the heuristic planners have no state to save, and Tune refuses checkpoint settings for them)."""
    from ray.tune import CheckpointConfig

    if isinstance(trainable, type):
        return CheckpointConfig(checkpoint_frequency=every, checkpoint_at_end=True, num_to_keep=keep)
    return CheckpointConfig()
