"""Overhead of the RLlib wrapper over the raw LBF and RWARE packages (issue 11, "Performance"; a benchmark,
not a test). Target: RLlib sampling at most 2x slower than the raw package (raw env steps/s over RLlib's).

Three loops over the same world (DyPS Table 1 LBF (1): 6 agents; RWARE (1): 8 agents), env steps per second:

* raw: the package env alone (``lbforaging``'s ForagingEnv / ``rware``'s Warehouse) stepped with pre-drawn
  uniformly random actions, reset when done;
* wrapper: this repository's MultiAgentEnv (envs.lbf / envs.rware) on the same actions, as action dicts;
* RLlib: ``EnvRunner.sample`` of the runner `rl-cs train ps` builds (the registry's ``ps`` config: one shared
  MLPActorCritic, PerModuleMetricsEnvRunner, SharingCallbacks, torch threads 1), exploring, on the local
  runner, ``--envs`` vectorised worlds each; module forward, connectors, episode bookkeeping and metrics
  included. Variants add RLlib switches / shared-wiring changes (``--variants``, see VARIANTS), measured
  here with an uncommitted monkeypatch where they are not in the repository's config.

All loops run in one process on one core, in alternating rounds (``--rounds``, median), since a shared
machine's load drifts; the load average is printed. Then one pass per RLlib variant times where the
sampling goes (instance-level timers, no profiler): package step, wrapper (+ gymnasium wrapper and the
vector env's copy), env-to-module connectors, module forward, module-to-env connectors, metrics, episode
callbacks, and the rest (MultiAgentEpisode bookkeeping and the sampling loop itself), per env step and per
agent step. ``--profile`` adds cProfile's top functions of ``sample`` for the first variant.

    .venv/bin/python benchmarks/gridworld_overhead.py [--world lbf|rware|both] [--seconds 2] [--rounds 3]
        [--envs 1,4,16] [--variants ps,fast] [--profile] [--set KEY=VALUE]

What to expect (measured on 2 cores at load 10-15, CPU clock, issue 11's report): raw LBF (1) ~3,400 and
RWARE (1) ~1,250 steps/s of CPU; the wrapper within 10% of raw; RLlib with the ps runner, 4 envs: LBF 3.4x,
RWARE 2.1x slower than raw before the two switches now in the ps config (normalize/clip actions off,
counters logged once per sample); 16 envs: 2.5x / 1.75x; 16 envs with every switch ("fast"): 2.3x / 1.6x. RLlib's
own cost is ~115 us per agent step at 4 envs and does not go below ~60 us with 16 envs and every switch
(episode objects, per-agent connector items), about the LBF package's own ~50 us per agent step: RWARE
meets the 2x target, LBF cannot with RLlib's default connector pipeline.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import pstats
import statistics
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import torch

import envs
from policies.sharing.modules import MLPActorCritic
from ray.rllib.core.columns import Columns
from rl_cs.config import to_dict
from rl_cs.experiment import gridworlds
from rl_cs.experiment.gridworlds_config import load_experiment
from rl_cs.registry import get_method


# ---------------------------------------------------------------------------------------------------------
# variants: what `rl-cs train ps` builds ("ps": since issue 11's measurement it has normalize_actions and
# clip_actions off and logs the sampled-step counters once per sample, rl_cs.experiment.ppo / env_runner), and
# a proposed module change measured on top of it ("sample").
class SamplingMLPActorCritic(MLPActorCritic):
    """A proposed change of policies.sharing.modules.MLPActorCritic (not in the repository: another helper's
    module), measured here: exploring, the module samples its actions itself (one softmax, one multinomial
    draw, the log-probability gathered), so RLlib's GetActions connector does not build a torch Categorical
    (with its argument checks) per call. Same distribution, another random stream."""

    def _forward_exploration(self, batch, **kwargs):
        with torch.no_grad():
            out = self._forward(batch, **kwargs)
            logp = torch.log_softmax(out[Columns.ACTION_DIST_INPUTS], dim=-1)
            actions = torch.multinomial(logp.exp(), 1)
            out[Columns.ACTIONS] = actions.squeeze(-1)
            out[Columns.ACTION_LOGP] = logp.gather(-1, actions).squeeze(-1)
        return out


def _sampling_module(ppo):
    for spec in ppo._rl_module_spec.rl_module_specs.values():
        if spec.module_class is MLPActorCritic:
            spec.module_class = SamplingMLPActorCritic
    return ppo


VARIANTS = {
    "ps": ("the runner `rl-cs train ps` builds", ()),
    "sample": ("ps + the module samples its own actions (MLPActorCritic change)", (_sampling_module,)),
    "fast": ("ps + sample (the old name of the all-switches variant)", (_sampling_module,)),
}


def build_runner(world: str, config, num_envs: int, variant: str):
    """A local env runner of the ``ps`` method on ``config``'s world with ``num_envs`` envs, warmed up."""
    ppo = get_method("ps").build_algorithm(config, {"world": to_dict(config.world)}, 0)
    ppo = ppo.env_runners(num_env_runners=0, num_envs_per_env_runner=num_envs)
    for tweak in VARIANTS[variant][1]:
        ppo = tweak(ppo)
    runner = ppo.env_runner_cls(config=ppo)
    torch.set_num_threads(1)
    runner.sample(num_timesteps=100 * num_envs)  # warm-up: first resets, module's first forward
    runner.get_metrics()
    return runner


CLOCK = time.thread_time
"""The clock of every rate and timer here: this thread's CPU time (``--clock cpu``, the default), which other
processes on a loaded machine do not inflate, or wall time (``--clock wall``). Every loop is single-threaded
(torch threads 1, no Ray processes)."""


def raw_steps(world: str, config, seconds: float, actions: np.ndarray) -> tuple[int, float]:
    """(steps, clock seconds) of the package env alone (pre-drawn random actions, reset when done)."""
    raw = importlib.import_module(gridworlds.ENVS[world][0]).make_package_env(config.world)
    raw.reset(seed=0)
    steps, rows, wall, start = 0, len(actions), time.perf_counter(), CLOCK()
    while time.perf_counter() - wall < seconds:
        _, _, done, _, _ = raw.step(actions[steps % rows].tolist())
        steps += 1
        if done:
            raw.reset()
    return steps, CLOCK() - start


def wrapper_steps(world: str, config, seconds: float, actions: np.ndarray) -> tuple[int, float]:
    """(steps, clock seconds) of this repository's MultiAgentEnv on the same actions, as action dicts."""
    env = gridworlds.make_env(config)
    env.reset(seed=0)
    dicts = [dict(zip(env.possible_agents, row.tolist())) for row in actions]
    steps, rows, wall, start = 0, len(actions), time.perf_counter(), CLOCK()
    while time.perf_counter() - wall < seconds:
        _, _, terminated, truncated, _ = env.step(dicts[steps % rows])
        steps += 1
        if terminated["__all__"] or truncated["__all__"]:
            env.reset()
    return steps, CLOCK() - start


def rllib_steps(runner, num_envs: int, seconds: float, fragment: int) -> tuple[int, float]:
    """(env steps, clock seconds) of ``runner.sample`` calls of ``fragment`` steps per env."""
    steps, wall, start = 0, time.perf_counter(), CLOCK()
    while time.perf_counter() - wall < seconds:
        steps += sum(episode.env_steps() for episode in runner.sample(num_timesteps=fragment * num_envs))
    elapsed = CLOCK() - start
    runner.get_metrics()  # what the algorithm does each iteration (keeps the logger's buffers small)
    return steps, elapsed


# ---------------------------------------------------------------------------------------------------------
# where RLlib's sampling time goes
class Timers:
    def __init__(self):
        self.seconds = defaultdict(float)

    def wrap(self, name: str, function):
        seconds = self.seconds

        def timed(*args, **kwargs):
            start = CLOCK()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += CLOCK() - start

        return timed


def breakdown(runner, num_envs: int, seconds: float, fragment: int) -> dict[str, float]:
    """Seconds per env step in each part of ``runner.sample`` (instance timers; removed afterwards)."""
    from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

    timers = Timers()
    patched = [(runner.env, "step"), (runner, "_env_to_module"), (runner.module, "forward_exploration"),
               (runner, "_module_to_env"), (runner, "_increase_sampled_metrics"), (runner, "_log_env_steps"),
               (runner, "_make_on_episode_callback")]
    patched += [(env.unwrapped.raw, "step") for env in runner.env.envs]
    names = {"step": "env step", "_env_to_module": "env-to-module connectors",
             "forward_exploration": "module forward", "_module_to_env": "module-to-env connectors",
             "_increase_sampled_metrics": "metrics", "_log_env_steps": "metrics",
             "_make_on_episode_callback": "episode callbacks"}
    for owner, attribute in patched:
        name = "package step" if attribute == "step" and owner is not runner.env else names[attribute]
        setattr(owner, attribute, timers.wrap(name, getattr(owner, attribute)))
    episode_methods = {name: getattr(MultiAgentEpisode, name) for name in ("add_env_step", "add_env_reset")}
    for name, method in episode_methods.items():
        setattr(MultiAgentEpisode, name, timers.wrap("episode add_env_step/reset", method))
    try:
        steps, elapsed = rllib_steps(runner, num_envs, seconds, fragment)
    finally:
        for owner, attribute in patched:
            delattr(owner, attribute)
        for name, method in episode_methods.items():
            setattr(MultiAgentEpisode, name, method)
    parts = dict(timers.seconds)
    parts["wrapper + vector env"] = parts.pop("env step", 0.0) - parts.get("package step", 0.0)
    parts["rest (sampling loop, episode objects)"] = elapsed - sum(parts.values())
    return {name: value / steps for name, value in parts.items()} | {"total": elapsed / steps}


def profile(runner, num_envs: int, fragment: int, lines: int = 40) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(max(1, 400 // (fragment * num_envs))):
        runner.sample(num_timesteps=fragment * num_envs)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------
def bench_world(world: str, args) -> tuple[pd.DataFrame, pd.DataFrame]:
    config = load_experiment(world, args.config, ["training.train_batch_size=100000", *args.set])
    env = gridworlds.make_env(config)
    agents = len(env.possible_agents)
    actions = np.random.default_rng(0).integers(0, env.action_spaces[env.possible_agents[0]].n, size=(4096, agents))
    fragment = config.training.rollout_fragment_length or 50
    runners = {(variant, n): build_runner(world, config, n, variant)
               for variant in args.variants for n in args.envs}
    loops = {"raw": lambda: raw_steps(world, config, args.seconds, actions),
             "wrapper": lambda: wrapper_steps(world, config, args.seconds, actions)}
    loops |= {key: (lambda runner=runner, n=key[1]: rllib_steps(runner, n, args.seconds, fragment))
              for key, runner in runners.items()}
    order, rates = list(loops), defaultdict(list)
    for round_ in range(args.rounds):  # alternating, each round starting one loop later (no fixed position)
        for key in order[round_ % len(order):] + order[:round_ % len(order)]:
            steps, elapsed = loops[key]()
            rates[key].append(steps / elapsed)
    raw = statistics.median(rates["raw"])
    rows = [{"loop": f"raw {world} package", "envs": 1, "env_steps_per_s": raw},
            {"loop": "rl-cs MultiAgentEnv wrapper", "envs": 1, "env_steps_per_s": statistics.median(rates["wrapper"])}]
    rows += [{"loop": f"RLlib sampling: {variant}", "envs": n, "env_steps_per_s": statistics.median(rates[variant, n])}
             for variant, n in runners]
    table = pd.DataFrame(rows)
    table["raw_over_this"] = raw / table["env_steps_per_s"]
    table["rllib_us_per_agent_step"] = (1e6 / table["env_steps_per_s"] - 1e6 / raw) / agents
    parts = {f"{variant}, {n} env(s)": breakdown(runner, n, args.seconds, fragment)
             for (variant, n), runner in runners.items()}
    split = pd.DataFrame(parts).fillna(0.0) * 1e6
    split.index.name = "us per env step"
    if args.profile:
        (variant, n), runner = next(iter(runners.items()))
        print(f"cProfile of {variant}, {n} env(s):\n{profile(runner, n, fragment)}")
    for runner in runners.values():
        runner.stop()
    print(f"\n{world} {config.world.size}: {agents} agents; {args.rounds} alternating rounds of {args.seconds:g} s "
          f"per loop (median, {args.clock} clock); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print("\nwhere RLlib's sampling time goes (us per env step; divide by the agents for per agent step):")
    print(split.to_string(float_format=lambda v: f"{v:,.0f}"))
    return table, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="both", choices=["lbf", "rware", "both"])
    parser.add_argument("--config", default=None, help="experiment YAML (default: the world's quick one)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per loop and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", default="1,4,16", help="vectorised envs per runner, comma-separated")
    parser.add_argument("--variants", default="ps,fast", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                        help="thread CPU time (default; robust to other load) or wall time")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    args.envs = [int(n) for n in args.envs.split(",")]
    args.variants = args.variants.split(",")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    envs.register()
    print("variants: " + "; ".join(f"{v}: {VARIANTS[v][0]}" for v in args.variants))
    for world in (["lbf", "rware"] if args.world == "both" else [args.world]):
        bench_world(world, args)


if __name__ == "__main__":
    main()
