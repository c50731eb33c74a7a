"""The CSC world through the `rl-cs` command line: train (Ray Tune + RLlib PPO), compare, evaluate with a
log, resume after an interruption, and every bad-input case exiting with code 2 and writing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rl_cs.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")


def cli(*args: str) -> int:
    """Run the CLI in-process and return its exit code."""
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny IPPO experiment (1 iteration) shared by the tests below."""
    results = tmp_path_factory.mktemp("results")
    assert cli("train", "ippo", "--world", "csc", "--config", TINY, "--results-dir", str(results)) == 0
    return results / "ippo-csc"


@pytest.mark.slow
def test_train_writes_results_checkpoints_and_comparison(trained):
    metadata = json.loads((trained / "experiment.json").read_text())
    assert metadata["world"] == "csc" and metadata["method"] == "ippo"
    trial = next(trained.glob("PPO_csc_*"))
    assert list(trial.glob("events.out.tfevents.*")), "TensorBoard event file missing"
    assert list(trial.glob("checkpoint_*/learner_group/learner/rl_module/shared"))
    progress = pd.read_csv(trial / "progress.csv")
    assert progress["training_iteration"].tolist() == [1]
    assert progress["env_runners/revenue"].iloc[-1] > 0
    comparison = pd.read_csv(trained / "comparison.csv")
    assert comparison["method"].tolist() == ["ippo", "greedy"]
    assert comparison["revenue"].iloc[1] > 0, "Greedy earned nothing on the held-out stream"
    assert (comparison["revenue"] >= 0).all() and (comparison["completion_rate"] <= 1).all()


@pytest.mark.slow
def test_evaluate_checkpoint_writes_assignment_log(trained, tmp_path, capsys, monkeypatch):
    checkpoint = sorted(next(trained.glob("PPO_csc_*")).glob("checkpoint_*"))[-1]
    log = tmp_path / "log.parquet"
    monkeypatch.chdir(checkpoint.parent)  # a relative checkpoint path, as users type it
    assert cli("evaluate", checkpoint.name, "--world", "csc", "--config", TINY, "--log", str(log)) == 0
    assert "revenue" in capsys.readouterr().out
    frame = pd.read_parquet(log)
    assert {"task", "workers", "work", "start", "finish", "payment"} <= set(frame.columns)
    assert (frame["payment"] <= frame["rho_max"] + 1e-9).all()
    assert (frame["finish"] <= frame["deadline"]).all()
    assert (frame["finish"] >= frame["start"]).all()
    assert frame["workers"].map(len).min() >= 1


def test_evaluate_greedy_reports_business_metrics(capsys):
    assert cli("evaluate", "greedy", "--world", "csc", "--config", TINY, "--episodes", "2") == 0
    out = capsys.readouterr().out
    for column in ("revenue", "completion_rate", "travel_km"):
        assert column in out


@pytest.mark.slow
def test_resume_continues_an_interrupted_experiment(tmp_path):
    """Kill an 8-iteration run once its results folder holds a checkpoint and a result (Tune copies both from
    the driver's folder with a lag); --resume finishes it without redoing or losing iterations."""
    command = [sys.executable, "-m", "rl_cs.cli", "train", "ippo", "--config", TINY, "--results-dir", str(tmp_path),
               "--set", "experiment.iterations=8", "--no-compare"]
    log = tmp_path / "first_run.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 240
        while (time.time() < deadline and process.poll() is None
               and not (list(tmp_path.glob("ippo-csc/PPO_*/checkpoint_000001"))
                        and list(tmp_path.glob("ippo-csc/PPO_*/result.json")))):
            time.sleep(1)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    found = list(tmp_path.glob("ippo-csc/PPO_*/result.json"))
    assert found, f"the first run wrote no result (exit {process.returncode}); its output:\n{log.read_text()[-3000:]}"
    results = found[0]
    before = iterations(results)
    assert before and before[-1] < 8, f"the run finished before it could be interrupted: {before}"
    assert cli("train", "ippo", "--config", TINY, "--results-dir", str(tmp_path), "--resume", "--no-compare") == 0
    after = iterations(results)
    assert after[:len(before)] == before, "finished iterations were lost"
    assert after[-1] == 8 and len(after) == len(set(after)), after


def iterations(result_json: Path) -> list[int]:
    """Training iterations recorded in a trial's result.json (JSON lines; robust to keys added on resume,
    which make Tune's progress.csv rows uneven)."""
    return [json.loads(line)["training_iteration"] for line in result_json.read_text().splitlines() if line]


def bad_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("args, expected", [
    (["train", "ipo"], "did you mean 'ippo'"),
    (["train", "ippo", "--world", "cscc"], "did you mean 'csc'"),
    (["train", "ippo", "--set", "world.num_workers=0"], "no workers"),
    (["train", "ippo", "--set", "world.speed_mps=0"], "speed must be > 0"),
    (["train", "ippo", "--set", "world.rules.deadline_minutes=-5"], "t_d < t_e"),
    (["train", "ippo", "--set", "world.rules.payment_at_deadline=1.5"], "negative payment"),
    (["train", "ippo", "--set", "world.rules.fare_per_km=-1"], "negative payment"),
    (["train", "ippo", "--set", "world.num_wokers=5"], "did you mean 'num_workers'"),
    (["train", "ippo", "--set", "world.reward=splitt"], "did you mean 'split'"),
    (["train", "ippo", "--set", "world.num_tasks=100000"], "world.num_tasks"),
    (["train", "ippo", "--data-dir", "/nonexistent/folder"], "does not exist"),
    (["train", "ippo", "--config", "/nonexistent.yaml"], "config file not found"),
    (["train", "ippo", "--seeds", "0"], "--seeds"),
    (["train", "ippo", "--resume"], "no experiment to resume"),
    (["evaluate", "no-such-policy"], "nor an existing checkpoint folder"),
    (["report", "/nonexistent/results"], "results folder not found"),
])
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(args, expected, tmp_path, capsys):
    results = tmp_path / "results"
    extra = ["--results-dir", str(results)] if args[0] == "train" else []
    assert cli(*args, *extra) == 2
    assert expected in capsys.readouterr().err
    assert not results.exists()


@pytest.mark.parametrize("text, expected", [
    ("wrold: {num_workers: 5}\n", "did you mean 'world'"),
    ("world: {rules: {fare_bse: 3}}\n", "fare_bse"),
    ("world: {num_workers: many}\n", "expected an integer"),
    ("training: {minibatch_size: 5000, train_batch_size: 100}\n", "minibatch_size"),
    ("world: [1, 2\n", "not valid YAML"),
])
def test_bad_yaml_names_file_and_field(text, expected, tmp_path, capsys):
    path = bad_yaml(tmp_path, text)
    assert cli("train", "ippo", "--config", path, "--results-dir", str(tmp_path / "results")) == 2
    err = capsys.readouterr().err
    assert expected in err and "bad.yaml" in err
    assert not (tmp_path / "results").exists()


def test_existing_experiment_is_not_overwritten_without_resume(tmp_path, capsys):
    (tmp_path / "greedy-csc").mkdir()
    assert cli("train", "greedy", "--config", TINY, "--results-dir", str(tmp_path)) == 2
    assert "--resume" in capsys.readouterr().err
    assert list((tmp_path / "greedy-csc").iterdir()) == []


def test_input_error_survives_pickling():
    """Ray pickles errors raised inside trials; the copy must keep the message, not raise TypeError."""
    import pickle

    from rl_cs.errors import InputError

    copy = pickle.loads(pickle.dumps(InputError("world.num_workers", "no workers", "must be > 0")))
    assert str(copy) == "world.num_workers: no workers (must be > 0)"


def test_env_config_makes_a_relative_data_dir_absolute(tmp_path, monkeypatch):
    """Tune runs trials in their own working directories, so a relative --data-dir must be resolved."""
    from envs.csc import env_config
    from envs.csc_config import CSCConfig

    monkeypatch.chdir(tmp_path)
    assert env_config(CSCConfig(), "data/chengdu")["data_dir"] == str(tmp_path / "data" / "chengdu")
