"""`rl-cs train|evaluate|bench --world dasc`: the DASC world (RMO, paper 001), RMO, REC and the baselines.

``train`` of a **learned** method (rmo, rec) is the shared RLlib training (rl_cs.experiment.rllib_commands with
the ``DASC`` RLlibWorld below: Ray Tune, one trial per seed and grid point, checkpoints with policy weights,
held-out evaluation, comparison with ``km``); afterwards every trial's final policy is scored on the
evaluation streams of the heuristics (run r = trial seed r: ``evaluation_seeds``), written to the experiment
folder's runs.csv and assignments.parquet, so `rl-cs report` tabulates learned and heuristic methods alike.

``train`` of **heuristics** runs each on ``experiment.seeds`` runs of ``evaluation.episodes`` seeded episodes
(every grid point of ``grid``) through the one evaluation path (rl_cs.evaluation) and writes
``<results-dir>/<name>/``: experiment.json, runs.csv (one row per method, grid point, run and episode) and
assignments.parquet. `train all` with both kinds writes ``<name>/baselines/`` and ``<name>/<method>/``.
A folder is never overwritten (rl_cs.experiment.tune_runner.experiment_folder).

``rmo_config`` is RMO's (and REC's) builder: typed config -> RLlib PPOConfig with the RMO learner.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ray.rllib.utils.metrics import NUM_AGENT_STEPS_SAMPLED, NUM_AGENT_STEPS_SAMPLED_LIFETIME

from envs.dasc import STATE_BASE, DASCEnv, env_config
from rl_cs import registry
from rl_cs.atomic import write_atomically
from rl_cs.config import to_dict, with_override
from rl_cs.errors import InputError, require
from rl_cs.experiment import rllib_commands
from rl_cs.experiment.dasc_config import DASCExperimentConfig, evaluation_seeds
from rl_cs.experiment.env_runner import PerModuleMetricsEnvRunner
from rl_cs.experiment.ppo import CSCMetrics
from rl_cs.experiment.rllib_commands import RLlibWorld
from rl_cs.experiment.tune_runner import experiment_folder, writable_parent

WORLD = "dasc"
TABLE_METRICS = ("revenue", "revenue_share", "completion_rate", "subtask_match_rate", "recommendation_success",
                 "travel_km", "mean_lateness_s")
GRID_COLUMNS = ("num_workers", "num_tasks", "ready_when")
"""World fields recorded with every run (Table 2's axes, and the matching opt-in)."""
RECENT_EPISODES = 5
"""Episodes averaged in the recent_* training metrics (learning curves)."""
THETA, THETA_HAT = "shared", "theta_hat"
"""RMO's module ids: theta is the policy every subtask agent maps to (rl_cs.experiment.ppo.SHARED_MODULE, so
checkpoints carry its weights as every RLlib world's), theta-hat lives on the learner only."""

def _check_policy(actor, config, where: str) -> None:
    """A trained policy must have been trained on this world's observation layout."""
    from envs.dasc_observation import DASCObsLayout

    trained = getattr(getattr(actor, "module", None), "layout", None)
    w = config.world
    wanted = DASCObsLayout(w.num_skill_categories, w.max_subtasks, w.num_near_workers, w.num_near_subtasks).to_dict()
    require(trained is None or trained.to_dict() == wanted, where,
            f"the policy was trained on observations {trained and trained.to_dict()}, this world gives {wanted}",
            "evaluate with the experiment's own YAML, or --set the world's subtasks_per_task, num_near_workers, "
            "num_near_subtasks and num_skill_categories to match")


DASC = RLlibWorld(
    name=WORLD, env_class=DASCEnv, env_config=env_config, baseline="km",
    source=lambda env: f"{env.scenario.source}, {env.config.num_workers} workers, {env.config.num_tasks} tasks",
    check_policy=_check_policy,
)
"""What the shared RLlib commands need of the DASC world. Matching and eta are the policy's own (a trained RMO
or REC module sets them on the world before each episode: policies.rmo.network.configure_env)."""


def make_env(config: DASCExperimentConfig, data_dir: str | None = None) -> DASCEnv:
    """The configured world (for `rl-cs check`, evaluation and RLlib users)."""
    return DASCEnv(env_config(config.world, data_dir))


def load(path: str | None, overrides: list[str] = ()) -> DASCExperimentConfig:
    """The experiment config of ``path`` (default: tune_configs/dasc_quick.yaml) with ``--set`` overrides."""
    return registry.get_world(WORLD).load_config(path, overrides)


# ------------------------------------------------------------------------------------------------ RMO's builder
class DecisionCountingEnvRunner(PerModuleMetricsEnvRunner):
    """PerModuleMetricsEnvRunner that also counts agent steps (subtask decisions) in total, under one key:
    RLlib's sampling loop reads them when batch sizes count agent steps (``count_steps_by="agent_steps"``)."""

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED, "subtasks"), len(next_obs), reduce="sum")
        self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, "subtasks"), len(next_obs), reduce="lifetime_sum")
        return super()._increase_sampled_metrics(num_steps, next_obs, episode)


class RMOCallbacks(CSCMetrics):
    """CSCMetrics (episode metrics from the world's counters, policy weights beside every checkpoint, torch
    threads, fault checks) plus RMO's matching stage: before each episode the world gets the acting policy's
    eta and matching rule (policies.rmo.network.configure_env) -- eta reaches the env runners with theta's
    weights every iteration -- and each episode logs the eta it ran with (Fig. 6)."""

    def on_episode_start(self, *, episode, env_runner=None, metrics_logger=None, env=None, env_index: int = 0,
                         rl_module=None, **kwargs):
        world = env.envs[env_index].unwrapped if hasattr(env, "envs") else env.unwrapped
        module = (rl_module if rl_module is not None else env_runner.module)[THETA]
        module.configure_env(world)

    def on_episode_end(self, *, episode, env=None, env_index: int = 0, metrics_logger=None, **kwargs):
        super().on_episode_end(episode=episode, env=env, env_index=env_index, metrics_logger=metrics_logger, **kwargs)
        world = env.envs[env_index].unwrapped if hasattr(env, "envs") else env.unwrapped
        metrics_logger.log_value("alpha", float(world.alpha), window=1)
        metrics_logger.log_value("beta", float(world.beta), window=1)
        # the episode metrics above are smoothed over hundreds of episodes (RLlib's default EMA): learning
        # curves (Fig. 5) read the mean of the last RECENT_EPISODES episodes instead
        for key in ("revenue", "revenue_share", "completion_rate"):
            metrics_logger.log_value(f"recent_{key}", float(world.episode_metrics()[key]), window=RECENT_EPISODES)


def rmo_config(config: DASCExperimentConfig, env_config: dict, seed=None, matching: str | None = None):
    """RMO (or, with ``matching="greedy"``, REC) as an RLlib PPOConfig: theta (``shared``: GAT actor,
    two-GRU critic, eta) and theta-hat (``theta_hat``, learner only) in one MultiRLModule, every subtask agent
    mapped to theta, one RMOLearner over both (policies.rmo.learner), the world's global state in the infos.
    REC never learns eta (its greedy matching does not read the utility)."""
    import gymnasium as gym
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from envs.dasc_observation import DASCObsLayout
    from policies.rmo.learner import RMOLearner
    from policies.rmo.network import RMOActorCritic
    from rl_cs.experiment.ppo import ENV_RUNNER_RESTART_DELAY_S, MAX_ENV_RUNNER_RESTARTS, shared_module

    r, w = config.rmo, config.world
    t = r.training
    matching = matching or w.matching
    settings = dataclasses.replace(r, learn_eta=r.learn_eta and matching == "km")
    layout = DASCObsLayout(w.num_skill_categories, w.max_subtasks, w.num_near_workers, w.num_near_subtasks)
    network = {name: getattr(r, name) for name in ("gat_hidden", "gat_heads", "gat_out", "mlp_hidden", "gru_hidden")}
    model = {"layout": layout.to_dict(), "state_size": STATE_BASE + 2 * w.num_skill_categories, "network": network,
             "eta": [w.alpha, w.beta], "matching": matching}
    spaces = {"observation_space": gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32),
              "action_space": gym.spaces.Discrete(2)}
    specs = {THETA: RLModuleSpec(module_class=RMOActorCritic, model_config={**model, "critic": True}, **spaces),
             THETA_HAT: RLModuleSpec(module_class=RMOActorCritic, model_config={**model, "critic": False},
                                     learner_only=True, **spaces)}
    return (
        PPOConfig()
        .environment(WORLD, env_config={**env_config, "global_state": True, "torch_threads": t.torch_threads},
                     disable_env_checking=True)
        .multi_agent(policies={THETA, THETA_HAT}, policy_mapping_fn=shared_module, policies_to_train=[THETA, THETA_HAT],
                     count_steps_by="agent_steps")  # batch sizes count subtask decisions, not env steps
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .env_runners(env_runner_cls=DecisionCountingEnvRunner, num_env_runners=t.num_env_runners,
                     num_envs_per_env_runner=t.num_envs_per_env_runner,
                     rollout_fragment_length=t.rollout_fragment_length or "auto")
        .learners(num_learners=t.num_learners, num_gpus_per_learner=t.num_gpus_per_learner, learner_class=RMOLearner,
                  learner_config_dict={"rmo": {"theta": THETA, "theta_hat": THETA_HAT,
                                               "settings": dataclasses.asdict(settings)}})
        .training(lr=t.lr, gamma=t.gamma, lambda_=t.lambda_, clip_param=t.clip_param, entropy_coeff=t.entropy_coeff,
                  vf_loss_coeff=t.vf_loss_coeff, train_batch_size_per_learner=t.train_batch_size,
                  minibatch_size=t.minibatch_size, num_epochs=t.num_epochs, use_kl_loss=False,
                  grad_clip=r.grad_clip or None)
        .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=MAX_ENV_RUNNER_RESTARTS,
                         delay_between_env_runner_restarts_s=ENV_RUNNER_RESTART_DELAY_S)
        .callbacks(RMOCallbacks)
        .debugging(seed=seed)
    )


# ------------------------------------------------------------------------------------------------ train
def _checked_methods(config, args) -> list[registry.Method]:
    """The methods to run (``all``: the YAML's experiment.methods), every YAML method checked to run here."""
    where = f"{args.config or 'quick config'}: experiment.methods"
    listed = [registry.get_method(name, WORLD, where=where) for name in config.experiment.methods]
    if args.method == "all":
        require(bool(listed), "experiment.methods", "`train all` needs a list of methods",
                "e.g. methods: [km, rmo]")
        return listed
    return [registry.get_method(args.method, WORLD)]


def train(args: argparse.Namespace) -> int:
    config = load(args.config, args.set)
    methods = _checked_methods(config, args)
    seeds = args.seeds or config.experiment.seeds
    require(seeds >= 1, "--seeds", f"must be >= 1, got {seeds}")
    base = args.name or config.experiment.name or f"{args.method}-{WORLD}"
    heuristics = [m.name for m in methods if not m.learned]
    learned = [m for m in methods if m.learned]
    require(not (config.search.enabled and heuristics), f"{args.config or '--set'}: search",
            f"a search on DASC trains a learned method (rmo, rec), not {', '.join(heuristics)}",
            "train rmo or rec with this search, or run the heuristics without search:")
    mixed = bool(heuristics) and bool(learned)
    planned = ([f"{base}/baselines"] if mixed else [base] if heuristics else []) + \
        [f"{base}/{m.name}" if args.method == "all" else base for m in learned]
    for name in planned:  # every folder refused (exit 2) before anything runs
        writable_parent(experiment_folder(args.results_dir, name, resume=False))
    if heuristics:
        code = train_heuristics(args, config, heuristics, seeds, planned[0])
        if code:
            return code
    for method in learned:
        name = f"{base}/{method.name}" if args.method == "all" else base
        code = train_learned(args, method, name)
        if code:
            return code
    return 0


def train_learned(args: argparse.Namespace, method: registry.Method, name: str) -> int:
    """The shared RLlib training of one learned method, then its trials on the heuristics' evaluation streams."""
    one = copy.copy(args)
    one.method, one.name = method.name, name
    one.resume, one.no_compare = getattr(args, "resume", False), getattr(args, "no_compare", False)
    code = rllib_commands.train(DASC, one)
    if code:
        return code
    folder = Path(args.results_dir).resolve() / name
    runs, log = evaluate_learned_trials(folder, method.name)
    write_atomically(folder / "runs.csv", lambda p: runs.to_csv(p, index=False))
    write_atomically(folder / "assignments.parquet", lambda p: log.to_parquet(p, index=False))
    print(f"{method.name} trials on the evaluation streams (runs.csv):")
    print(summary(runs).round(3).to_string(index=False))
    print(f"results in {folder}; table: rl-cs report {folder}")
    return 0


def evaluate_learned_trials(folder: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each trial's last checkpoint on evaluation_seeds(evaluation, trial seed), in the trial's own world."""
    from rl_cs.evaluation import evaluate as evaluate_actor
    from rl_cs.evaluation import load_actor
    from rl_cs.config import from_dict

    metadata = json.loads((folder / "experiment.json").read_text())
    config = from_dict(DASCExperimentConfig, metadata["config"], str(folder / "experiment.json"))
    tables, logs = [], []
    for params_path in sorted(folder.glob("*/params.json")):
        trial = params_path.parent
        checkpoints = sorted(trial.glob("checkpoint_*"))
        if not checkpoints:
            continue
        params = json.loads(params_path.read_text())
        run = int(params.get("seed") or 0)
        env_config = rllib_commands.trial_env_config(DASC, params)  # a grid point's, or a search trial's
        world = from_dict(type(config.world), env_config["world"], str(params_path))
        env = DASCEnv({**env_config, "world": to_dict(world)})
        actor = load_actor(str(checkpoints[-1]), config.evaluation.deterministic, world=WORLD)
        table, log = evaluate_actor(env, actor, evaluation_seeds(config.evaluation, run))
        point = {key: getattr(world, key) for key in GRID_COLUMNS}
        tables.append(table.assign(method=name, run=run, trial=trial.name, **point))
        logs.append(log.assign(method=name, run=run, trial=trial.name))
    require(bool(tables), str(folder), "no trial with a checkpoint", "run the experiment again")
    return pd.concat(tables, ignore_index=True), pd.concat(logs, ignore_index=True)


def grid_points(config: DASCExperimentConfig, where: str = "grid") -> list[DASCExperimentConfig]:
    """Every point of the config's ``grid`` (cartesian product of its world fields), or the config itself."""
    if not config.grid:
        return [config]
    keys = list(config.grid)
    return [_with(config, dict(zip(keys, values)), where) for values in itertools.product(*config.grid.values())]


def _with(config, changes: dict, where: str):
    for key, value in changes.items():
        config = with_override(config, key, value, f"{where}.{key}")
    return dataclasses.replace(config, grid={})


def run_method(env: DASCEnv, name: str, config: DASCExperimentConfig, seeds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``seeds`` runs of one heuristic through rl_cs.evaluation: (metrics per episode, assignment log)."""
    from rl_cs.evaluation import evaluate as evaluate_actor

    method = registry.get_method(name, WORLD)
    tables, logs = [], []
    for run in range(seeds):
        actor = method.make_heuristic(config.baselines if method.settings else None)
        table, log = evaluate_actor(env, actor, evaluation_seeds(config.evaluation, run))
        tables.append(table.assign(method=name, run=run))
        logs.append(log.assign(method=name, run=run))
    return pd.concat(tables, ignore_index=True), pd.concat(logs, ignore_index=True)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over each run's episodes, then mean and std over runs, per grid point and method."""
    keys = [column for column in GRID_COLUMNS if column in runs.columns and runs[column].nunique() > 1]
    per_run = runs.groupby([*keys, "method", "run"], sort=False)[list(TABLE_METRICS)].mean().reset_index()
    grouped = per_run.groupby([*keys, "method"], sort=False)[list(TABLE_METRICS)]
    return grouped.mean().join(grouped.std(ddof=0).add_suffix("_std")).reset_index()


def train_heuristics(args, config: DASCExperimentConfig, names: list[str], seeds: int, name: str) -> int:
    out = experiment_folder(args.results_dir, name, resume=False)
    writable_parent(out)
    start = time.perf_counter()
    tables, logs, seconds, source = [], [], {}, ""
    for point in grid_points(config):
        env = make_env(point, args.data_dir)
        source = env.scenario.source
        values = {key: getattr(point.world, key) for key in GRID_COLUMNS}
        for method in names:
            began = time.perf_counter()
            table, log = run_method(env, method, point, seeds)
            seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - began
            tables.append(table.assign(**values))
            logs.append(log.assign(**values))
    runs, log = pd.concat(tables, ignore_index=True), pd.concat(logs, ignore_index=True)
    require(not out.exists(), str(out), "appeared while the methods ran (another run of the same name?)",
            "choose another --name; nothing was overwritten")
    out.mkdir(parents=True)
    write_atomically(out / "runs.csv", lambda p: runs.to_csv(p, index=False))
    write_atomically(out / "assignments.parquet", lambda p: log.to_parquet(p, index=False))
    metadata = {"world": WORLD, "kind": "heuristics", "method": args.method, "methods": names, "data": source,
                "config": to_dict(dataclasses.replace(
                    config, experiment=dataclasses.replace(config.experiment, seeds=seeds, methods=names))),
                "wall_seconds": {"total": time.perf_counter() - start, **seconds}}
    write_atomically(out / "experiment.json", lambda p: p.write_text(json.dumps(metadata, indent=2)))
    print(f"DASC world on {source}; {len(grid_points(config))} grid point(s); "
          f"{seeds} run(s) x {config.evaluation.episodes} episode(s) per method")
    print(summary(runs).round(3).to_string(index=False))
    print(f"results in {out}; table: rl-cs report {out}")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate, bench
def evaluate(args: argparse.Namespace) -> int:
    """A baseline, or a trained RMO / REC checkpoint (weights only: rl_cs.evaluation.load_policy), on
    ``--episodes`` seeded episodes from ``--seed``; ``--log`` writes the per-subtask assignment log (parquet)."""
    from rl_cs.evaluation import evaluate as evaluate_actor

    known = {method.name: method for method in registry.methods_for(WORLD)}
    if args.policy not in known and Path(args.policy).exists():
        return rllib_commands.evaluate(DASC, args)
    method = registry.get_method(args.policy, WORLD, where="policy")  # a bad name is refused before the config
    if method.learned:
        raise InputError("policy", f"'{args.policy}' is a learned method: evaluate a trained checkpoint",
                         f"train it (rl-cs train {args.policy} --world dasc) and give its checkpoint folder")
    config = load(args.config, args.set)
    actor = method.make_heuristic(config.baselines if method.settings else None)
    if args.log:
        writable_parent(Path(args.log).resolve(), where="--log")
        require(not Path(args.log).is_dir(), "--log", f"{args.log} is a folder", "give a file name, e.g. dasc.parquet")
    env = make_env(config, args.data_dir)
    table, log = evaluate_actor(env, actor, [args.seed + episode for episode in range(args.episodes)])
    print(f"{args.policy} on the DASC world ({env.scenario.source}), N_w = {config.world.num_workers}, "
          f"{config.world.num_tasks} tasks, eta = ({env.alpha}, {env.beta})")
    print(table[["seed", "revenue", "max_payable", "revenue_share", "completion_rate", "subtask_match_rate",
                 "travel_km", "mean_lateness_s", "invalid_actions"]].round(3).to_string(index=False))
    if args.log:
        write_atomically(Path(args.log), lambda p: log.to_parquet(p, index=False))
    return 0


def bench(args: argparse.Namespace) -> int:
    """The raw world: env steps and subtask decisions per second (every decider recommended, the world's
    Kuhn-Munkres matching; and uniformly random recommendations), and Kuhn-Munkres time per matching step
    (utility matrix + linear_sum_assignment) at ``--workers`` workers and ``--tasks`` tasks."""
    config = load(args.config, [f"world.num_workers={args.workers}", f"world.num_tasks={args.tasks}", *args.set])
    env = make_env(config, args.data_dir)
    rows = []
    for policy in ("recommend all", "random"):
        rng = np.random.default_rng(0)
        steps = decisions = episodes = 0
        matching_s, matching_steps, sizes = 0.0, 0, []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds or episodes == 0:
            obs, _ = env.reset(seed=episodes)
            done = False
            while not done:
                decisions += len(obs)
                actions = ({agent: 1 for agent in obs} if policy == "recommend all"
                           else {agent: int(rng.integers(2)) for agent in obs})
                obs, _, terminated, truncated, _ = env.step(actions)
                steps += 1
                done = terminated["__all__"] or truncated["__all__"]
            episodes += 1
            matching_s += env.stats.matching_s
            matching_steps += env.stats.matching_steps
            sizes.extend(env.stats.matching_sizes)
        elapsed = time.perf_counter() - start
        size = np.array(sizes or [(0, 0)], dtype=np.float64)
        rows.append({"policy": policy, "episodes": episodes, "env steps/s": steps / elapsed,
                     "subtask decisions/s": decisions / elapsed,
                     "KM ms/matching step": 1000.0 * matching_s / max(matching_steps, 1),
                     "recommended x idle (mean)": f"{size[:, 0].mean():.1f} x {size[:, 1].mean():.1f}",
                     "largest": f"{int(size[:, 0].max())} x {int(size[:, 1].max())}"})
    print(f"DASC world on {env.scenario.source}; N_w = {args.workers}, {args.tasks} tasks, decision interval "
          f"{config.world.decision_interval_s:.0f} s; at least {args.seconds:.0f} s per policy")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))
    return 0
