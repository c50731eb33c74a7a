"""`rl-cs train | evaluate | bench | check --world vaccine`: vaccine allocation over a city grid, a
metapopulation SIR model (DyPS's Medical scenario, paper 002; envs.vaccine states the model).

train and evaluate are the shared RLlib commands (rl_cs.experiment.rllib_commands): heuristics
(policies.vaccine_baselines) run as Tune trials, and the learned methods (DyPS, its ablations and the
parameter-sharing baselines; rl_cs.methods) train with PPO through the same path and act, when scored, through
their several modules (policies.sharing.actor). The held-out comparison is with ``vaccine-local`` (each cell uses
its own doses). ``bench`` measures raw env steps (days) per second and RLlib's sampling of the world.
"""

from __future__ import annotations

from envs.vaccine import VaccineEnv, action_mask, env_config
from policies.sharing.actor import load_checkpoint_actor
from rl_cs.experiment import rllib_commands
from rl_cs.experiment.ridehailing import bench_world
from rl_cs.experiment.rllib_commands import RLlibWorld


def _source(env: VaccineEnv) -> str:
    c = env.config
    return (f"{env.scenario.source}; {env.grid.rows} x {env.grid.cols} cells, {c.population:,.0f} residents, "
            f"R0 {c.r0:g}, {c.days} days, {c.doses_share:g} doses per resident")


VACCINE = RLlibWorld(name="vaccine", env_class=VaccineEnv, env_config=env_config, baseline="vaccine-local",
                     source=_source, checkpoint_actor=load_checkpoint_actor)


def train(args) -> int:
    return rllib_commands.train(VACCINE, args)


def evaluate(args) -> int:
    return rllib_commands.evaluate(VACCINE, args)


def make_env(config, data_dir: str | None = None) -> VaccineEnv:
    return rllib_commands.make_env(VACCINE, config, data_dir)


def bench(args) -> int:
    return bench_world("vaccine", VaccineEnv, env_config, action_mask, "vaccine-proportional", args)
