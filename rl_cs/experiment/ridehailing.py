"""`rl-cs train | evaluate | bench | check --world ridehailing`: order dispatch over a city grid (DyPS, paper 002).

train and evaluate are the shared RLlib commands (rl_cs.experiment.rllib_commands): heuristics (the paper's
rule-based Greedy and Nearest of Table 7, policies.ridehailing_baselines) run as Tune trials, and the learned
methods (DyPS, its ablations and the parameter-sharing baselines NoPS, PS, PS-id, PSA, SePS; rl_cs.methods)
train with PPO through the same path, one trial per seed, and are scored on the same held-out episodes. Trained
policies act through several modules (one per cell, group or a shared one): policies.sharing.actor rebuilds them
from the checkpoint's weights. The held-out comparison is with ``rh-greedy``. ``bench`` measures raw env steps per
second (random allowed actions, and the Greedy planner's loop) and RLlib's sampling of the world.
"""

from __future__ import annotations

import time
import numpy as np
import pandas as pd

from envs.ridehailing import RideHailingEnv, action_mask, env_config
from policies.sharing.actor import load_checkpoint_actor
from rl_cs import registry
from rl_cs.experiment import rllib_commands
from rl_cs.experiment.rllib_commands import RLlibWorld


def _source(env: RideHailingEnv) -> str:
    c = env.config
    return (f"{env.scenario.source}; {env.grid.rows} x {env.grid.cols} cells, {env.num_drivers} drivers "
            f"({env.orders_per_step:.1f} orders per step / {c.ratio:.3f} orders per driver per step), "
            f"{c.episode_steps} steps of {c.step_minutes:g} min")


RIDEHAILING = RLlibWorld(name="ridehailing", env_class=RideHailingEnv, env_config=env_config, baseline="rh-greedy",
                         source=_source, checkpoint_actor=load_checkpoint_actor)


def train(args) -> int:
    return rllib_commands.train(RIDEHAILING, args)


def evaluate(args) -> int:
    return rllib_commands.evaluate(RIDEHAILING, args)


def make_env(config, data_dir: str | None = None) -> RideHailingEnv:
    return rllib_commands.make_env(RIDEHAILING, config, data_dir)


# --- bench ------------------------------------------------------------------------------------------------
def random_actions(env, mask, count: int = 256, seed: int = 0) -> list[dict]:
    """``count`` action dicts of uniformly random allowed actions (the masks of a grid world never change)."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    allowed = {agent: np.flatnonzero(mask(env, agent, o)) for agent, o in obs.items()}
    return [{agent: int(rng.choice(options)) for agent, options in allowed.items()} for _ in range(count)]


def raw_steps_per_second(env, seconds: float, actions: list[dict] | None = None, actor=None) -> float:
    """Env steps per second of the world alone, on pre-drawn ``actions`` or driven by ``actor`` (its planning
    time included), resetting (seeds 0, 1, ...) when an episode ends."""
    episode = 0
    obs, _ = env.reset(seed=episode)
    if actor is not None:
        actor.reset(episode)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        act = actor.act(env.decision_view(), obs) if actor is not None else actions[steps % len(actions)]
        obs, _, terminated, truncated, _ = env.step(act)
        steps += 1
        if terminated["__all__"] or truncated["__all__"]:
            episode += 1
            obs, _ = env.reset(seed=episode)
            if actor is not None:
                actor.reset(episode)
    return steps / (time.perf_counter() - start)


def rllib_steps_per_second(env_class, config: dict, seconds: float, num_envs: int = 2, fragment: int = 18) -> float:
    """Env steps per second of RLlib's MultiAgentEnvRunner sampling a world (local runner, one torch thread, PPO's
    default module shared by every agent, ``num_envs`` vectorised envs): module forward, connectors and episode
    bookkeeping included."""
    import torch
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    torch.set_num_threads(1)
    ppo = (PPOConfig().environment(env_class, env_config=config)
           .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent, episode, **kwargs: "shared")
           .env_runners(num_env_runners=0, num_envs_per_env_runner=num_envs, rollout_fragment_length=fragment))
    runner = MultiAgentEnvRunner(config=ppo)
    runner.sample(num_timesteps=fragment * num_envs)  # warm-up: module tracing, first resets
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += sum(episode.env_steps() for episode in runner.sample(num_timesteps=fragment * num_envs))
    rate = steps / (time.perf_counter() - start)
    runner.stop()
    return rate


def bench_world(world: str, env_class, make_config, mask, planner: str, args) -> int:
    """Raw env steps/s (random allowed actions; the ``planner`` heuristic's loop) and RLlib sampling, one core."""
    spec = registry.get_world(world)
    config = spec.load_config(args.config, args.set)
    env = spec.make_env(config, args.data_dir)
    agents = len(env.possible_agents)
    actions = random_actions(env, mask)
    actor = registry.get_method(planner).make_heuristic()
    rllib = rllib_steps_per_second(env_class, make_config(config.world, args.data_dir), args.seconds)
    rows = [{"loop": "raw world, random allowed actions",
             "env_steps_per_s": raw_steps_per_second(env, args.seconds, actions=actions)},
            {"loop": f"raw world driven by {planner}",
             "env_steps_per_s": raw_steps_per_second(env, args.seconds, actor=actor)},
            {"loop": "RLlib EnvRunner sampling (PPO default module, 2 envs)", "env_steps_per_s": rllib}]
    table = pd.DataFrame(rows)
    table["agent_steps_per_s"] = table["env_steps_per_s"] * agents
    print(f"{world}: {agents} agents (cells), {args.seconds:g} s each")
    print(table.round(1).to_string(index=False))
    return 0


def bench(args) -> int:
    return bench_world("ridehailing", RideHailingEnv, env_config, action_mask, "rh-greedy", args)
