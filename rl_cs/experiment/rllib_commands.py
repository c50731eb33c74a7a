"""`rl-cs train | evaluate` on any world trained through RLlib (csc today; dasc, lbf, rware next).

train: YAML -> the world's validated experiment config -> (RLlib AlgorithmConfig | heuristic trainable) ->
Ray Tune, one trial per seed and grid point, with fault tolerance and retries (tune_runner); then every
trial's final policy on the same held-out stream (heldout.json), and the best one next to the world's
baseline. A world module declares an ``RLlibWorld`` and forwards its commands here.

With a ``search:`` section (rl_cs.experiment.search) the trials are the search's sampled configurations
instead: each rebuilds its typed config from the sampled values (SearchPPO, or heuristic_trainable), Tune's
searcher and scheduler decide what runs and how long; every trial is then scored on the held-out stream as
above, search.csv ranks them by the search metric, and the best is compared with the baseline.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from rl_cs import evaluation, registry
from rl_cs.atomic import write_frame, write_json
from rl_cs.config import from_dict, parse_value, to_dict, with_override
from rl_cs.errors import InputError, require
from rl_cs.evaluation import load_actor
from rl_cs.experiment import search
from rl_cs.experiment.tune_runner import (FAILURES, METADATA, experiment_folder, failures, read_metadata,
                                          rewrite_progress, run_tuner, writable_parent)
from rl_cs.registry import Method, get_method, methods

HELDOUT = "heldout.json"
SEARCH_TABLE = "search.csv"


@dataclass(frozen=True)
class RLlibWorld:
    """What the shared commands need to know of one RLlib world beyond its registry entry."""

    name: str
    """The world's registry name (rl_cs.worlds)."""
    env_class: type
    """Its MultiAgentEnv, built from a plain-dict env_config."""
    env_config: Callable
    """(world config, data_dir) -> plain-dict env_config (absolute data folder: Tune changes directories)."""
    source: Callable
    """env -> one line naming the scenario it runs on (synthetic or which data)."""
    baseline: str
    """The heuristic a trained policy is compared with on the held-out stream (the paper's baseline)."""
    train_world: Callable = lambda method, world: world
    """(method, world config) -> the world config the method trains on (e.g. its reward mode)."""
    evaluation_world: Callable = lambda world: world
    """world config -> the world config every method is scored on (e.g. the platform's payments)."""
    check_policy: Callable = lambda actor, config, where: None
    """Refuses (InputError) a trained policy that does not fit this world's observations."""
    checkpoint_actor: Callable | None = None
    """(checkpoint path, world, deterministic) -> Actor for a world whose learned methods act through several
    modules (policies.sharing.actor.load_checkpoint_actor); None: one policy module (rl_cs.evaluation)."""

    def actor(self, policy: str, deterministic: bool):
        """A heuristic of this world by name, or a trained checkpoint's actor (rl_cs.evaluation.load_actor)."""
        return load_actor(policy, deterministic, world=self.name, checkpoint_actor=self.checkpoint_actor)

    @property
    def spec(self) -> registry.World:
        return registry.get_world(self.name)

    @property
    def shown(self) -> list[str]:
        return list(self.spec.metrics)

    @property
    def metric(self) -> str:
        """Tune's metric for the best trial: the world's first business metric, maximised."""
        return f"env_runners/{self.spec.metrics[0]}"

    def load(self, path, overrides=()):
        return self.spec.load_config(path, overrides)


def rllib_world(name: str) -> RLlibWorld:
    """The RLlibWorld a world's command module declares (for trial processes, which get the world's name)."""
    module = registry.get_world(name).command_module()
    for value in vars(module).values():
        for candidate in (value.values() if isinstance(value, dict) else [value]):
            if isinstance(candidate, RLlibWorld) and candidate.name == name:
                return candidate
    raise LookupError(f"{module.__name__} declares no RLlibWorld named '{name}'")


def search_trial(params: dict):
    """(RLlibWorld, method, typed config) of a search trial's Tune config: the stored base config with the
    trial's sampled values, validated, on the method's train world (as ``prepare`` makes it)."""
    stored = params[search.RLCS]
    world, method = rllib_world(stored["world"]), get_method(stored["method"])
    config = search.trial_config(world.spec.config_class(), params, f"search trial {search.sampled(params)}")
    return world, method, dataclasses.replace(config, world=world.train_world(method, config.world))


def trial_env_config(world: RLlibWorld, params: dict) -> dict:
    """A trial's env_config: Tune's (params.json) for a plain trial, rebuilt from the sampled values for a
    search trial."""
    if search.is_trial(params):
        _, _, config = search_trial(params)
        return world.env_config(config.world, params[search.RLCS]["data_dir"])
    return params["env_config"]


def heuristic_trainable(config: dict) -> None:
    """Tune function trainable for planners: one evaluation episode per 'iteration', seeded per trial."""
    from ray import tune

    from rl_cs.evaluation import run_episode

    world = registry.resolve(config["env_class"])
    env_config = trial_env_config(rllib_world(config[search.RLCS]["world"]), config) if search.is_trial(config) \
        else config["env_config"]
    env, actor = world(env_config), methods()[config["method"]].make_heuristic()
    extra = {"searched": search.sampled(config)} if search.is_trial(config) else {}
    for iteration in range(config["iterations"]):
        metrics = run_episode(env, actor, seed=config["seed"] * 100_003 + iteration)
        tune.report({"env_runners": metrics, **extra})


def _grid_env_config(config, base: dict) -> dict:
    """A copy of env_config with tune.grid_search at every swept world field (``base`` stays a plain world:
    the driver still builds an env from it)."""
    from ray import tune

    base = copy.deepcopy(base)
    for dotted, values in config.grid.items():
        head, *path = dotted.split(".")
        require(head == "world", f"grid.{dotted}", "only world fields can be swept", "e.g. world.num_tasks")
        node = base["world"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = tune.grid_search(values)
    return base


def prepare(world: RLlibWorld, args, method: Method):
    """The validated config a method trains with (before Ray starts; errors exit 2, write nothing)."""
    config = world.load(args.config, args.set)
    if getattr(args, "seeds", None) is not None:
        require(args.seeds >= 1, "--seeds", "must be >= 1")
        config = dataclasses.replace(config, experiment=dataclasses.replace(config.experiment, seeds=args.seeds))
    if config.search.enabled:
        search.check_method(config, method, origin=search.origin_of(args.config, args.set))
        seeds_flag = getattr(args, "seeds", None) is not None
        seeds_set = [f"--set {item}: experiment.seeds" for item in args.set
                     if item.partition("=")[0].strip() in ("experiment", "experiment.seeds")]
        require(config.experiment.seeds == 1, "--seeds" if seeds_flag else
                (seeds_set[-1] if seeds_set else f"{args.config or 'defaults'}: experiment.seeds"),
                f"a search trains every sampled configuration with seed {search.SEED}, not "
                f"{config.experiment.seeds} seeds", ("leave out --seeds" if seeds_flag else "use seeds: 1")
                + "; re-run the best configuration without search: and with --seeds N for its spread over seeds")
    return dataclasses.replace(config, world=world.train_world(method, config.world))


def train(world: RLlibWorld, args) -> int:
    to_run = _methods_to_run(world, args)
    if not args.resume:  # every method's search is checked before the first one runs
        for method in to_run:
            prepare(world, args, method)
    for method in to_run:
        code = _train_one(world, args, method)
        if code:
            return code
    return 0


def _methods_to_run(world: RLlibWorld, args) -> list[Method]:
    if args.method != "all":
        return [get_method(args.method, world.name)]
    config = world.load(args.config, args.set)
    require(bool(config.experiment.methods), "experiment.methods", "`train all` needs a list of methods",
            "add e.g. methods: [greedy, ippo] to the YAML")
    where = f"{args.config or 'quick config'}: experiment.methods"
    return [get_method(name, world.name, where=where) for name in config.experiment.methods]


def _train_one(world: RLlibWorld, args, method: Method) -> int:
    resume = args.resume
    if resume:  # the YAML and --set only name the folder here; the run's settings are the stored ones
        name = _experiment_name(args, method, world.load(args.config, args.set))
        if args.method == "all" and not (Path(args.results_dir).resolve() / name / METADATA).exists():
            resume = False  # `train all --resume`: a method the interrupted run never reached starts now
        else:
            folder = experiment_folder(args.results_dir, name, resume=True)
    if not resume:
        config = prepare(world, args, method)
        folder = experiment_folder(args.results_dir, _experiment_name(args, method, config), resume=False)
        source = world.source(world.env_class(world.env_config(config.world, args.data_dir)))  # loads, validates
    else:
        config = _resumed_config(world, folder, method, args)
        source = f"settings stored in {METADATA}"
    run = config.experiment
    searching = config.search.enabled
    seeds = [search.SEED] if searching else list(range(run.seeds))
    from ray import tune

    trainable, param_space = heuristic_trainable, None
    if method.learned:
        from ray.rllib.algorithms.ppo import PPO

        import envs

        envs.register()
        trainable = search.SearchPPO if searching else PPO
    target = search.Target.of_world(world.name)
    if not resume:
        base_env = world.env_config(config.world, args.data_dir)
        if searching:  # what a trial rebuilds its typed config from (absolute data folder: trials chdir)
            constants = {search.RLCS: {"world": world.name, "method": method.name, "config": to_dict(config),
                                       "seed": search.SEED, "data_dir": base_env.get("data_dir")},
                         "seed": search.SEED}
            if not method.learned:
                constants.update(method=method.name, env_class=world.spec.env, iterations=run.iterations)
            param_space = search.param_space(config.search, constants)
        elif method.learned:
            param_space = method.build_algorithm(config, _grid_env_config(config, base_env), tune.grid_search(seeds))
        else:
            param_space = {"method": method.name, "env_config": _grid_env_config(config, base_env),
                           "env_class": world.spec.env,
                           "seed": tune.grid_search(seeds), "iterations": run.iterations}
        write_json(folder / METADATA, {
            "world": args.world, "method": method.name, "data_dir": args.data_dir,
            "config": to_dict(config), "seeds": seeds,
            **({"search": search.summary(config.search, target)} if searching else {})})
    tune_config = search.tune_config(config.search, target, run.iterations, run.max_concurrent_trials) \
        if searching and not resume else None
    what = (f"a search of {config.search.num_samples} sampled configuration(s) ({config.search.searcher} searcher, "
            f"scheduler {config.search.scheduler}, trial seed {search.SEED})" if searching else f"{len(seeds)} seed(s)")
    print(f"rl-cs: {'resuming ' if resume else ''}{method.name} on {args.world} ({source}); "
          f"{what}, {run.iterations} iteration(s) -> {folder}", file=sys.stderr)
    results, interrupted = run_tuner(trainable, param_space, folder, run.iterations, run.checkpoint_every,
                                     run.max_concurrent_trials, resume, run.max_failures, tune_config=tune_config,
                                     keep_checkpoints=None if config.search.scheduler == "pbt" else 2)
    rewrite_progress(folder)
    _report_faults(folder, results)
    early = searching and config.search.scheduler == "asha"
    code = _unfinished(args, folder, results, run.iterations, interrupted, early_stopping=early)
    if code:
        return code
    evaluate_trials(world, folder, method, config.evaluation)
    summary = _summarise(world, results)
    write_frame(summary, folder / "trials.csv")
    best = None
    if searching:
        best = _search_table(world, folder, results, config, target)
    else:
        print(summary.to_markdown(index=False, floatfmt=".3f"))
    if method.learned and not args.no_compare:
        best = best or _best_trial(world, results)
        if (best / HELDOUT).exists():
            comparison = compare(world, best, config.evaluation, method.name)
            write_frame(comparison, folder / "comparison.csv")
            print(f"\nHeld-out stream (seeds {config.evaluation.seed}..): {method.name} vs {world.baseline}")
            print(comparison.to_markdown(index=False, floatfmt=".3f"))
    return 0


def _best_trial(world: RLlibWorld, results) -> Path:
    """The trial with the best training metric; when no trial reported it (no episode ended within a short
    run), the first trial, said on stderr, rather than Tune's RuntimeError after a finished run."""
    try:
        return Path(results.get_best_result(metric=world.metric, mode="max").path)
    except RuntimeError:
        first = Path(results[0].path)
        print(f"rl-cs: no trial reported {world.metric} during training (no episode ended within "
              f"the budget); comparing the first trial, {first.name}", file=sys.stderr)
        return first


def _experiment_name(args, method: Method, config) -> str:
    name = args.name or config.experiment.name or f"{method.name}-{args.world}"
    return f"{name}/{method.name}" if args.method == "all" else name


def _resumed_config(world: RLlibWorld, folder: Path, method: Method, args):
    """The stored config of the run ``--resume`` continues. A ``--set`` or ``--seeds`` that would change it
    is refused (exit 2), naming the field: Tune restores the stored trials and stopping rule, so a changed
    setting would be announced and then ignored."""
    metadata = read_metadata(folder)
    where = str(folder / METADATA)
    require(metadata.get("method") == method.name, "--resume",
            f"{folder} holds a '{metadata.get('method')}' run, not '{method.name}'",
            f"resume it with `rl-cs train {metadata.get('method')}`, or choose another --name")
    stored = from_dict(world.spec.config_class(), metadata["config"], f"{where}:")
    stored.validate(where)
    asked = stored
    for item in args.set:
        key, sep, text = item.partition("=")
        require(bool(sep) and bool(key.strip()), f"--set {item}", "expected KEY=VALUE")
        asked = with_override(asked, key.strip(), parse_value(text), f"--set {item}")
    if args.seeds is not None:
        asked = dataclasses.replace(asked, experiment=dataclasses.replace(asked.experiment, seeds=args.seeds))
    changed = _differences(to_dict(stored), to_dict(asked))
    if changed:
        field, before, after = changed[0]
        flag = "--seeds" if field == "experiment.seeds" and args.seeds is not None else "--set"
        raise InputError(f"{flag} {field}", f"--resume continues the stored run, which has {field}={before!r}, "
                         f"not {after!r}", "drop the change to resume as stored, or start a new run under "
                         "another --name with the new settings")
    return stored


def _differences(before, after, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [change for key in sorted(set(before) | set(after), key=str)
                for change in _differences(before.get(key), after.get(key), f"{path}{'.' if path else ''}{key}")]
    return [] if before == after else [(path, before, after)]


def _unfinished(args, folder: Path, results, iterations: int, interrupted: bool, early_stopping: bool = False) -> int:
    """Exit code of a run that did not finish every trial (0 if all did): failed trials -> 1, a Ctrl-C -> 130.
    Nothing final (trials.csv, heldout.json, comparison.csv, the table) is written for such a run. With
    ``early_stopping`` (ASHA) a terminated trial short of ``iterations`` was stopped by the scheduler: done."""
    done = {Path(r.path).name: (r.metrics or {}).get("training_iteration") or 0 for r in results}
    failed = [result for result in results if result.error]
    short = [] if early_stopping else [name for name, reached in done.items() if reached < iterations]
    if not failed and not short and results.num_terminated == len(results):
        return 0
    experiment = folder.parent if args.method == "all" else folder
    flags = [f"--world {args.world}", f"--results-dir {shlex.quote(str(experiment.parent))}",
             f"--name {shlex.quote(experiment.name)}"]
    if args.config:
        flags.append(f"--config {shlex.quote(args.config)}")
    again = f"`rl-cs train {args.method} {' '.join(flags)} --resume`"
    progress = ", ".join(f"{name}: {reached}/{iterations}" for name, reached in sorted(done.items()))
    if interrupted:
        lost = f"; {len(failed)} trial(s) had failed" if failed else ""
        print(f"rl-cs: interrupted at {progress}{lost}; no final results were written. {again} continues from the "
              "last checkpoints", file=sys.stderr)
        return 130
    if failed:
        print(f"rl-cs: {len(failed)} trial(s) failed (retries exhausted); first error:\n{failed[0].error}",
              file=sys.stderr)
        print(f"rl-cs: iterations done: {progress}. No final results were written; {again} retries the failed "
              "trials from their last checkpoints", file=sys.stderr)
        return 1
    print(f"rl-cs: the run ended before its {iterations} iterations ({progress}); no final results were written. "
          f"{again} continues it", file=sys.stderr)
    return 1


def _report_faults(folder: Path, results) -> None:
    """One line on what fault tolerance did in this run: env runners restarted, trials retried."""
    restarts = 0
    for result in results:
        log = Path(result.path) / "result.json"
        counts = [json.loads(line).get("env_runner_restarts", 0) for line in
                  (log.read_text(encoding="utf-8").splitlines() if log.exists() else []) if line.strip()]
        previous = 0
        for count in counts:  # a per-process count: it starts again at 0 when a trial is retried or resumed
            restarts += count - previous if count >= previous else count
            previous = count
    retried = [record for record in failures(folder) if record.get("retried")]
    if restarts or retried:
        print(f"rl-cs: fault tolerance: {restarts} env runner restart(s) in reported iterations, "
              f"{len(retried)} trial retr{'y' if len(retried) == 1 else 'ies'} from checkpoint "
              f"(details: {folder / FAILURES})", file=sys.stderr)


def _summarise(world: RLlibWorld, results) -> pd.DataFrame:
    rows = []
    for result in results:
        row = {"trial": Path(result.path).name, "seed": result.config.get("seed"), **search.sampled(result.config)}
        runners = result.metrics.get("env_runners", {})
        row.update({key: runners.get(key) for key in world.shown})
        row["iterations"] = result.metrics.get("training_iteration")
        rows.append(row)
    return pd.DataFrame(rows)


def _search_table(world: RLlibWorld, folder: Path, results, config, target) -> Path | None:
    """search.csv: every trial of a search, best first by the search metric (search.ranked), with its
    sampled values (a PBT trial's last ones), the iterations it ran (ASHA's early stops), its metric and its
    held-out figures; printed with the best configuration. Returns the best trial's folder."""
    metric, mode = search.resolved(config.search, target)
    rows = []
    for result in results:
        trial = Path(result.path)
        flat = pd.json_normalize(result.metrics or {}, sep="/")
        last = flat.iloc[0].to_dict() if len(flat) else {}
        values = (result.metrics or {}).get("searched") or search.sampled(result.config)
        iterations = int(last.get("training_iteration") or 0)
        heldout = json.loads((trial / HELDOUT).read_text()) if (trial / HELDOUT).exists() else {}
        rows.append({"trial": trial.name, **values, metric: last.get(metric), "iterations": iterations,
                     "stopped_early": iterations < config.experiment.iterations,
                     **{f"heldout_{key}": heldout.get(key) for key in world.shown}})
    table = search.ranked(pd.DataFrame(rows), metric, mode)
    write_frame(table, folder / SEARCH_TABLE)
    best = table.iloc[0]
    shown = ", ".join(f"{key} = {_short(best[key])}" for key in config.search.space)
    stops = ""
    if config.search.scheduler == "asha":
        budget = len(table) * config.experiment.iterations
        saved = int((config.experiment.iterations - table["iterations"]).sum())
        stops = f"; ASHA stopped {int(table['stopped_early'].sum())} early, saving {saved} of {budget} trial-iterations"
    print(f"Search ({config.search.searcher}, scheduler {config.search.scheduler}): {len(table)} trial(s) ranked "
          f"by {metric} ({mode}){stops}")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    heldout = best.get(f"heldout_{world.shown[0]}")
    print(f"\nBest configuration ({best['trial']}): {shown}; {metric} = {_short(best[metric])}"
          + (f"; held-out {world.shown[0]} = {_short(heldout)}" if pd.notna(heldout) else ""))
    return folder / best["trial"]


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def heldout_metrics(world: RLlibWorld, trial: Path, actor, settings) -> dict:
    """Mean metrics of ``actor`` on the held-out episodes of a trial's own world (its grid point, or its
    sampled configuration)."""
    env_cfg = trial_env_config(world, json.loads((trial / "params.json").read_text()))
    world_type = typing.get_type_hints(world.spec.config_class())["world"]
    scored = world.evaluation_world(from_dict(world_type, env_cfg["world"], str(trial / "params.json")))
    seeds = [settings.seed + i for i in range(settings.episodes)]
    metrics, _ = evaluation.evaluate(world.env_class({**env_cfg, "world": to_dict(scored)}), actor, seeds)
    return {**metrics[world.shown].mean().to_dict(), "episodes": len(seeds), "seeds": seeds}


def evaluate_trials(world: RLlibWorld, folder: Path, method: Method, settings) -> None:
    """Every trial's final policy on the held-out task stream of its own world, written to
    ``<trial>/heldout.json``: the figures tables compare, all methods on the same episodes."""
    for params_path in sorted(folder.glob("*/params.json")):
        trial = params_path.parent
        if method.learned:
            checkpoints = sorted(trial.glob("checkpoint_*"))
            if not checkpoints:
                continue
            actor = world.actor(str(checkpoints[-1]), settings.deterministic)
        else:
            actor = method.make_heuristic()
        write_json(trial / HELDOUT, heldout_metrics(world, trial, actor, settings))


def compare(world: RLlibWorld, trial: Path, settings, name: str) -> pd.DataFrame:
    """A trial's held-out figures (already in heldout.json) next to the world's baseline's on the same episodes."""
    trained = json.loads((trial / HELDOUT).read_text())
    baseline = heldout_metrics(world, trial, get_method(world.baseline, world.name).make_heuristic(), settings)
    return pd.DataFrame([{"method": name, **{key: trained[key] for key in world.shown}},
                         {"method": world.baseline, **{key: baseline[key] for key in world.shown}}])


def make_env(world: RLlibWorld, config, data_dir: str | None = None):
    """The configured world (for `rl-cs check`): its scenario is loaded, cached and validated here."""
    return world.env_class(world.env_config(config.world, data_dir))


def evaluate(world: RLlibWorld, args) -> int:
    """A heuristic or a trained checkpoint on ``--episodes`` held-out episodes; ``--log`` writes the log."""
    config = world.load(args.config, args.set)
    require(args.episodes >= 1, "--episodes", "must be >= 1")
    if args.log:
        writable_parent(Path(args.log).resolve(), where="--log")
        require(not Path(args.log).is_dir(), "--log", f"{args.log} is a folder", "give a file name, e.g. log.parquet")
    actor = world.actor(args.policy, config.evaluation.deterministic)
    world.check_policy(actor, config, args.config or "--config")
    scored = world.evaluation_world(config.world)
    env = world.env_class(world.env_config(scored, args.data_dir))
    metrics, log = evaluation.evaluate(env, actor, [args.seed + i for i in range(args.episodes)])
    print(f"{actor.name} on {world.source(env)}")
    print(metrics.set_index("seed")[world.shown].to_markdown(floatfmt=".3f"))
    if args.log:
        write_frame(log, Path(args.log))
        print(f"episode log: {len(log)} rows -> {args.log}")
    return 0

