"""Hyperparameter search (rl_cs.experiment.search): the ``search:`` section's distributions, its validation
before Ray starts (exit 2, the file or --set and the field named, nothing written), a round trip through
YAML, the Tune wiring (searcher, scheduler, PBT's clamped perturbations), a search trial's typed config (for
training and for loading its checkpoint), `rl-cs report` on a search folder, and end to end through the CLI:
a tiny IPPO search with random sampling and ASHA, an interrupted search continued by --resume, and a restored
checkpoint taking its new config's learning rate (what PBT's exploit needs)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rl_cs import registry
from rl_cs.cli import main, run
from rl_cs.config import load_config, to_dict
from rl_cs.errors import InputError
from rl_cs.experiment import search
from rl_cs.experiment.config import ExperimentConfig
from rl_cs.experiment.search import SearchSettings

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")
SPACE = "search.space={training.lr: {loguniform: [1e-4, 1e-2]}, training.clip_param: {uniform: [0.1, 0.3]}}"


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


def sets(*pairs: str) -> list[str]:
    return [item for pair in pairs for item in ("--set", pair)]


# --- distributions --------------------------------------------------------------------------------------------
def test_space_parses_every_distribution_into_tune_domains():
    from ray.tune.search.sample import Categorical, Float, Integer

    space = {"training.lr": {"loguniform": ["1e-4", 1e-2]}, "training.clip_param": {"uniform": [0.1, 0.3]},
             "training.num_epochs": {"randint": [1, 4]}, "world.reward": {"choice": ["split", "ir"]},
             "model.embed_dim": {"grid": [16, 32]}}
    parsed = search.parse_space(space, "search.space")
    assert parsed["training.lr"] == search.Distribution("loguniform", (1e-4, 1e-2))  # YAML's 1e-4 text is a number
    assert isinstance(parsed["training.lr"].domain(), Float) and parsed["training.lr"].log_scale
    randint = parsed["training.num_epochs"].domain()
    assert isinstance(randint, Integer) and (randint.lower, randint.upper) == (1, 5)  # high included
    assert isinstance(parsed["world.reward"].domain(), Categorical)
    assert parsed["model.embed_dim"].domain() == {"grid_search": [16, 32]}
    assert parsed["training.num_epochs"].clamp(7.6) == 4 and parsed["training.lr"].clamp(1.0) == 1e-2
    assert parsed["world.reward"].mutation() == ["split", "ir"]


def test_empty_search_means_no_search():
    config = load_config(ExperimentConfig, TINY)
    assert config.search == SearchSettings() and not config.search.enabled
    off = load_config(ExperimentConfig, REPO / "tune_configs" / "csc_ippo_search.yaml", ["search.space={}"])
    assert not off.search.enabled and off.search.scheduler == "asha"  # a YAML's search turned off: a plain run


def test_config_with_a_search_round_trips_through_yaml(tmp_path):
    config = load_config(ExperimentConfig, REPO / "tune_configs" / "csc_ippo_search.yaml")
    assert config.search.enabled and config.search.scheduler == "asha" and config.search.asha.grace_period == 3
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    assert load_config(ExperimentConfig, path) == config


@pytest.mark.parametrize("world", sorted(registry.worlds()))
def test_every_world_config_has_the_search_section(world):
    config = registry.get_world(world).config_class()()
    assert isinstance(config.search, SearchSettings)


def test_target_names_metrics_as_the_world_reports_them():
    target = search.Target.of_world("csc")
    assert target.key("") == "env_runners/revenue" and target.key("travel_km") == "env_runners/travel_km"
    assert target.key("env_runners/completion_rate") == "env_runners/completion_rate"
    with pytest.raises(InputError, match="never reports a metric 'revnue'.*did you mean 'revenue'"):
        target.key("revnue")


# --- validation: exit 2, the file or --set and the field named, nothing written ----------------------------
BAD = [
    (["--set", "search.spaec={training.lr: {uniform: [0.1, 0.2]}}"], "did you mean 'space'"),
    (sets("search.space={training.lrr: {uniform: [0.001, 0.002]}}"), "did you mean 'training.lr'"),
    (sets("search.space={trainin.lr: {uniform: [0.001, 0.002]}}"), "did you mean 'training'"),
    (sets("search.space={training.lr: {loguniform: [0, 0.01]}}"), "bounds must be > 0"),
    (sets("search.space={training.lr: {loguniform: [-1, 0.01]}}"), "bounds must be > 0"),
    (sets("search.space={training.clip_param: {uniform: [0.3, 0.1]}}"), "low must be < high"),
    (sets("search.space={training.num_epochs: {randint: [3, 3]}}"), "low must be < high"),
    (sets("search.space={training.clip_param: {choice: []}}"), "non-empty list"),
    (sets("search.space={training.clip_param: [0.1, 0.2]}"), "a list is not a distribution"),
    (sets("search.space={training.clip_param: {normal: [0.1, 0.2]}}"), "unknown distribution 'normal'"),
    (sets("search.space={training.lr: {uniform: [0.001, 2.0]}}"), "the high 2.0 is refused by the field's own check"),
    (sets("search.space={world.num_workers: {randint: [0, 10]}}"), "the low 0 is refused"),
    (sets("search.space={training.clip_param: {choice: [0.2, 1.5]}}"), "the value 1.5 is refused"),
    (sets("search.space={world.num_workers: {uniform: [5, 10]}}"), "integer field"),
    (sets("search.space={training: {uniform: [0.1, 0.2]}}"), "is a section, not a field"),
    (sets("search.space={experiment.iterations: {randint: [1, 3]}}"), "not searchable"),
    (sets(SPACE, "search.num_samples=0"), "search.num_samples: must be >= 1"),
    (sets(SPACE, "search.max_concurrent_trials=-1"), "search.max_concurrent_trials: must be >= 0"),
    (sets(SPACE, "search.metric=speed"), "never reports a metric 'speed'"),
    (sets(SPACE, "search.mode=maximum"), "unknown mode"),
    (sets(SPACE, "search.searcher=hyperopt"), "unknown searcher"),
    (sets(SPACE, "search.scheduler=pbt"), "random sampling only"),
    (sets("search.space={training.lr: {grid: [0.001, 0.002]}}"), "Optuna cannot take a grid"),
    (sets("search.space={world.num_workers: {randint: [10, 20]}}", "search.searcher=random", "search.scheduler=pbt"),
     "PBT changes the values of a running trial"),
    (sets(SPACE, "search.scheduler=asha", "search.asha.grace_period=1"), "ASHA would never stop"),
    (sets("experiment.iterations=3", SPACE, "search.scheduler=asha", "search.asha.reduction_factor=1"),
     "search.asha.reduction_factor: must be > 1"),
    (sets("grid={world.num_tasks: [10, 20]}", SPACE), "a grid next to it"),
    (sets("search.space={cafe.phi.phi_lr: {loguniform: [1e-4, 1e-2]}}"), "'ippo' does not read the cafe section"),
    (["--seeds", "2", *sets(SPACE)], "--seeds: a search trains every sampled configuration with seed 0"),
]


@pytest.mark.parametrize("argv, says", BAD, ids=[says for _, says in BAD])
def test_bad_search_exits_2_naming_the_set_and_field_and_writes_nothing(argv, says, tmp_path, capsys):
    results = tmp_path / "results"
    assert cli("train", "ippo", "--config", TINY, "--results-dir", str(results), *argv) == 2
    error = capsys.readouterr().err
    assert says in error, error
    assert ("--set search" in error or "--set grid" in error or "--seeds" in error), error
    assert not results.exists()


@pytest.mark.parametrize("method, setting, says", [
    ("greedy", "search.space={training.lr: {uniform: [0.001, 0.002]}}", "'greedy' does not read the training section"),
    ("greedy", "search.space={training.lr: {uniform: [0.001, 0.002]}}", "is a heuristic: PBT"),
])
def test_a_search_the_method_cannot_take_is_refused(method, setting, says, tmp_path):
    extra = sets("search.searcher=random", "search.scheduler=pbt") if "PBT" in says else []
    with pytest.raises(InputError, match=says):
        run(["train", method, "--config", TINY, "--results-dir", str(tmp_path / "r"),
             *sets("experiment.iterations=3", setting), *extra])
    assert not (tmp_path / "r").exists()


def test_a_bad_search_in_a_yaml_names_the_file_and_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("search:\n  space:\n    training.lr: {loguniform: [0.0, 1.0e-2]}\n")
    assert cli("train", "ippo", "--config", str(path), "--results-dir", str(tmp_path / "results")) == 2
    error = capsys.readouterr().err
    assert f"{path}: search.space.training.lr.loguniform: bounds must be > 0" in error
    assert not (tmp_path / "results").exists()


def test_dasc_searches_rmos_own_training_section():
    """DASC has no top-level training section: PBT takes RMO's (rmo.training.*), and world fields stay ASHA's."""
    dasc = registry.get_world("dasc")
    config = dasc.load_config(None, ["experiment.iterations=4", "search.space={rmo.training.lr: {loguniform: "
                                     "[1e-4, 1e-2]}}", "search.searcher=random", "search.scheduler=pbt"])
    assert config.search.scheduler == "pbt"
    with pytest.raises(InputError, match="PBT changes"):
        dasc.load_config(None, ["experiment.iterations=4", "search.space={world.num_workers: {randint: [10, 20]}}",
                                "search.searcher=random", "search.scheduler=pbt"])
    with pytest.raises(InputError, match="did you mean 'rmo.training'"):
        dasc.load_config(None, ["search.space={rmo.trainin.lr: {uniform: [0.001, 0.002]}}"])


def test_the_sensing_world_says_sweep_is_now_search(tmp_path):
    from rl_cs.experiment.sensing_config import load_config as load_sensing

    path = tmp_path / "old.yaml"
    path.write_text("sweep:\n  space: {qcota.beta: [0.3, 0.6]}\n")
    with pytest.raises(InputError) as error:
        load_sensing(str(path))
    assert error.value.where == f"{path}: sweep" and "now search" in str(error.value)
    assert "qcota_search.yaml" in error.value.fix
    with pytest.raises(InputError, match="now search"):
        load_sensing(None, ["sweep.num_samples=2"])


def test_sensing_search_refuses_a_scheduler():
    from rl_cs.experiment.sensing_config import load_config as load_sensing

    with pytest.raises(InputError, match="reports once"):
        load_sensing(None, ["search.space={qcota.beta: {uniform: [0.2, 0.8]}}", "search.scheduler=asha"])


# --- trials -------------------------------------------------------------------------------------------------
def _params(config, values: dict) -> dict:
    return {search.RLCS: {"world": "csc", "method": "ippo", "config": to_dict(config), "seed": 0, "data_dir": None},
            search.SEARCH: values, "seed": 0}


def test_a_trial_config_applies_sampled_values_of_any_section():
    base = load_config(ExperimentConfig, TINY, [SPACE])
    values = {"training.lr": np.float64(3e-4), "world.num_workers": np.int64(12), "model.embed_dim": 32,
              "cafe.phi.phi_lr": 0.01}
    config = search.trial_config(ExperimentConfig, _params(base, values), "trial")
    assert config.training.lr == 3e-4 and config.world.num_workers == 12 and type(config.world.num_workers) is int
    assert config.model.embed_dim == 32 and config.cafe.phi.phi_lr == 0.01 and not config.search.enabled
    with pytest.raises(InputError, match="num_heads"):  # a sampled value is validated with the whole config
        search.trial_config(ExperimentConfig, _params(base, {"model.embed_dim": 17}), "trial")


def test_a_trials_algorithm_config_is_built_by_the_method_with_the_sampled_values():
    base = load_config(ExperimentConfig, TINY, [SPACE])
    algorithm = search.algorithm_config(_params(base, {"training.lr": 3e-4, "world.num_workers": 12}))
    assert algorithm.lr == 3e-4 and algorithm.env_config["world"]["num_workers"] == 12 and algorithm.seed == 0


def test_a_search_trials_checkpoint_config_has_its_sampled_values(tmp_path):
    """`rl-cs evaluate` and the held-out scoring rebuild a search trial's network from its sampled values."""
    from rl_cs.evaluation import experiment_config

    base = load_config(ExperimentConfig, TINY, [SPACE])
    trial = tmp_path / "exp" / "SearchPPO_1"
    (trial / "checkpoint_000001").mkdir(parents=True)
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps({"world": "csc", "method": "ippo",
                                                                  "config": to_dict(base)}))
    (trial / "params.json").write_text(json.dumps(_params(base, {"model.hidden_dim": 48, "world.num_workers": 11})))
    config = experiment_config(trial / "checkpoint_000001", "csc")
    assert config.model.hidden_dim == 48 and config.world.num_workers == 11


def test_tune_config_wires_searcher_scheduler_and_concurrency():
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    target = search.Target.of_world("csc")
    settings = SearchSettings(space={"training.lr": {"loguniform": [1e-4, 1e-2]}}, scheduler="asha",
                              num_samples=5, max_concurrent_trials=2)
    tune_config = search.tune_config(settings, target, iterations=10, max_concurrent=0)
    assert isinstance(tune_config.search_alg, ConcurrencyLimiter) and tune_config.search_alg.max_concurrent == 2
    assert isinstance(tune_config.scheduler, ASHAScheduler) and tune_config.num_samples == 5
    assert (tune_config.metric, tune_config.mode) == ("env_runners/revenue", "max")
    pbt = dataclasses.replace(settings, searcher="random", scheduler="pbt", mode="min", metric="travel_km",
                              space={"training.lr": {"uniform": [0.001, 0.002]},
                                     "training.num_epochs": {"choice": [1, 2, 4]}})
    tune_config = search.tune_config(pbt, target, iterations=10, max_concurrent=0)
    assert isinstance(tune_config.search_alg, BasicVariantGenerator)
    assert isinstance(tune_config.scheduler, PopulationBasedTraining)
    assert (tune_config.metric, tune_config.mode) == ("env_runners/travel_km", "min")
    clamp = search.ClampToSpace(pbt.space)  # PBT's x1.2 must not leave the range the field was validated for
    assert clamp({search.SEARCH: {"training.lr": 0.0024, "training.num_epochs": 4}})[search.SEARCH] == \
        {"training.lr": 0.002, "training.num_epochs": 4}


def test_ranking_puts_trials_stopped_early_after_complete_ones():
    frame = pd.DataFrame({"trial": list("abcd"), "m": [5.0, 9.0, 7.0, float("nan")],
                          "stopped_early": [False, True, False, False]})
    assert search.ranked(frame, "m", "max")["trial"].tolist() == ["c", "a", "d", "b"]
    assert search.ranked(frame, "m", "min")["trial"].tolist() == ["a", "c", "d", "b"]


# --- the report ---------------------------------------------------------------------------------------------
def _search_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    space = {"training.lr": {"loguniform": [1e-4, 1e-2]}, "training.num_epochs": {"choice": [1, 2]}}
    (folder / "experiment.json").write_text(json.dumps({
        "world": "csc", "method": "ippo", "config": {"experiment": {"iterations": 6}},
        "search": {"space": space, "searcher": "optuna", "scheduler": "asha", "metric": "env_runners/revenue",
                   "mode": "max", "trial_seed": 0}}))
    pd.DataFrame({"trial": ["t1", "t2", "t3"], "training.lr": [1e-3, 3e-4, 5e-3], "training.num_epochs": [2, 1, 2],
                  "env_runners/revenue": [300.0, 350.0, 250.0], "iterations": [6, 2, 6],
                  "stopped_early": [False, True, False], "heldout_revenue": [310.0, 280.0, 240.0],
                  "heldout_completion_rate": [0.7, 0.6, 0.5]}).to_csv(folder / "search.csv", index=False)
    return folder


def test_report_of_a_search_ranks_trials_and_plots_the_metric(tmp_path, capsys):
    folder = _search_folder(tmp_path / "search")
    assert cli("report", str(folder)) == 0
    out = capsys.readouterr().out
    assert "Trial t1: training.lr = 0.001, training.num_epochs = 2; env_runners/revenue = 300" in out
    assert "Held-out stream: revenue = 310" in out
    assert "ASHA stopped 1 of 3 trials early: 4 of 18 trial-iterations not run" in out
    table = pd.read_csv(folder / "search_trials.csv")
    assert table["trial"].tolist() == ["t1", "t3", "t2"]
    assert (folder / "search_metric.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "search_report.md").read_text().startswith("# Search: ippo on csc")


def test_report_of_an_unfinished_search_says_so(tmp_path, capsys):
    folder = _search_folder(tmp_path / "search")
    (folder / "search.csv").unlink()
    assert cli("report", str(folder)) == 2
    assert "search.csv: file not found" in capsys.readouterr().err


# --- end to end ---------------------------------------------------------------------------------------------
TINY_SEARCH = [*sets("world.num_workers=10", "world.num_tasks=10", "training.train_batch_size=100",
                     "training.minibatch_size=50", "experiment.iterations=2", SPACE, "search.searcher=random",
                     "search.scheduler=asha", "search.num_samples=3", "search.max_concurrent_trials=2")]


@pytest.mark.slow
def test_ippo_search_with_asha_end_to_end(tmp_path, capsys):
    assert cli("train", "ippo", "--config", TINY, "--results-dir", str(tmp_path), "--name", "s", *TINY_SEARCH) == 0
    folder = tmp_path / "s"
    record = json.loads((folder / "experiment.json").read_text())["search"]
    assert record["searcher"] == "random" and record["scheduler"] == "asha" and set(record["space"]) == \
        {"training.lr", "training.clip_param"} and record["metric"] == "env_runners/revenue"
    table = pd.read_csv(folder / "search.csv")
    assert len(table) == 3 and table["iterations"].between(1, 2).all()
    assert (table["iterations"] < 2).tolist() == table["stopped_early"].tolist()
    assert table["heldout_revenue"].notna().all(), "every trial is scored on the held-out stream"
    assert table["training.lr"].between(1e-4, 1e-2).all() and table["training.clip_param"].between(0.1, 0.3).all()
    for trial in table["trial"]:  # each trial trained with its own sampled values, seed 0
        params = json.loads((folder / trial / "params.json").read_text())
        last = json.loads((folder / trial / "result.json").read_text().splitlines()[-1])
        assert last["searched"] == params["search"] and params["seed"] == 0
    assert pd.read_csv(folder / "comparison.csv")["method"].tolist() == ["ippo", "greedy"]
    assert "Best configuration" in capsys.readouterr().out
    assert cli("report", str(folder)) == 0 and (folder / "search_metric.png").exists()


@pytest.mark.slow
def test_resume_continues_an_interrupted_search(tmp_path):
    """Interrupt a heuristic search (Optuna, 4 samples of 3 iterations, one at a time; Ctrl-C) once a trial's
    result reached the results folder (Tune copies it from the driver with a lag, so the signal lands while a
    later trial runs); --resume finishes it with the searcher's state: the finished trials are kept as they
    were, 4 trials in all."""
    argv = ["train", "greedy", "--config", TINY, "--results-dir", str(tmp_path), "--name", "r",
            *sets("experiment.iterations=3", "search.space={world.num_tasks: {randint: [10, 30]}}",
                  "search.num_samples=4", "search.max_concurrent_trials=1", "search.metric=completion_rate")]
    process = subprocess.Popen([sys.executable, "-m", "rl_cs.cli", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None and not list(tmp_path.glob("r/*/result.json")):
        time.sleep(0.2)
    assert process.poll() is None, f"the search ended (exit {process.returncode}) before it could be interrupted"
    process.send_signal(signal.SIGINT)  # Tune stops and saves its state; rl-cs exits 130
    try:
        assert process.wait(timeout=120) == 130
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    before = {path.parent.name: json.loads((path.parent / "params.json").read_text())["search"]
              for path in tmp_path.glob("r/*/result.json")}
    assert 1 <= len(before) < 4, f"the search was not interrupted mid-way: {len(before)} trials"
    assert cli(*argv, "--resume") == 0
    table = pd.read_csv(tmp_path / "r" / "search.csv")
    assert len(table) == 4 and set(before) <= set(table["trial"])
    for trial, values in before.items():
        assert table.set_index("trial").loc[trial, "world.num_tasks"] == values["world.num_tasks"]
    assert table["heldout_completion_rate"].notna().all()


@pytest.mark.slow
def test_a_restored_checkpoint_takes_its_new_configs_learning_rate(tmp_path):
    """PBT continues a trial from another's checkpoint under a perturbed config: SearchPPO rebuilds its
    AlgorithmConfig from the new values, and the restored optimizer runs at the new learning rate at once."""
    import envs
    from rl_cs.experiment.ray_session import start_ray

    start_ray()
    envs.register()
    base = load_config(ExperimentConfig, TINY, ["world.num_workers=10", "world.num_tasks=10",
                                                "training.train_batch_size=100", "training.minibatch_size=50", SPACE])

    def build(lr: float):
        return search.SearchPPO(config=_params(base, {"training.lr": lr, "training.clip_param": 0.2}))

    def learning_rates(algorithm) -> list[list[float]]:
        calls = algorithm.learner_group.foreach_learner(
            lambda learner, **kwargs: [group["lr"] for optimizer in learner._named_optimizers.values()
                                       for group in optimizer.param_groups])
        return [call.get() for call in calls]

    first = build(1e-3)
    first.train()
    checkpoint = first.save(str(tmp_path / "checkpoint")).checkpoint.path
    first.stop()
    second = build(2e-4)
    assert second.config.lr == 2e-4
    second.restore(checkpoint)
    assert second.training_iteration == 1
    rates = [rate for learner in learning_rates(second) for rate in learner]
    assert rates and all(rate == pytest.approx(2e-4) for rate in rates), rates
    second.stop()
