"""`rl-cs train | evaluate | bench | check` on the collaborative spatial crowdsourcing world (CAFE).

The commands are the shared RLlib ones (rl_cs.experiment.rllib_commands); this module says what is
particular to CSC: a method trains on its own reward mode (IR's remaining working time, the others' split
payments) while every method is scored on the platform's payments, the held-out comparison is with the
paper's Greedy, and a trained policy must have been trained on this world's observation layout.
"""

from __future__ import annotations

import dataclasses

from envs.csc import CSCEnv, env_config
from rl_cs.errors import require
from rl_cs.experiment import rllib_commands
from rl_cs.experiment.rllib_commands import RLlibWorld


def _check_policy(actor, config, where: str) -> None:
    modules = [getattr(actor, "module", None), *getattr(actor, "modules", {}).values()]  # DyPS: its group modules
    wanted = config.policy_model_config()["layout"]
    for trained in (getattr(module, "layout", None) for module in modules):  # a trained policy's observation layout
        require(trained is None or trained.to_dict() == wanted, where,
                f"the policy was trained on observations {trained and trained.to_dict()}, this world gives {wanted}",
                "evaluate with the experiment's own YAML, or --set the world's num_* observation sizes to match")


def _checkpoint_actor(path, world: str, deterministic: bool):
    """A checkpoint's actor: DyPS's (its M attention group modules and the selector that maps the workers to them
    per episode: policies.sharing.actor.load_checkpoint_actor), else the one shared module
    (rl_cs.evaluation.load_policy), as without this hook."""
    from policies.sharing.actor import experiment_method, load_checkpoint_actor
    from rl_cs.evaluation import ModuleActor, load_policy
    from rl_cs.registry import methods

    method = methods().get(experiment_method(path) or "")
    if method is not None and method.section == "dyps":
        return load_checkpoint_actor(path, world, deterministic)
    return ModuleActor(load_policy(path, world), name=path.name, deterministic=deterministic)


CSC = RLlibWorld(
    name="csc", env_class=CSCEnv, env_config=env_config, baseline="greedy",
    source=lambda env: f"{env.scenario.source}, {env.config.num_workers} workers, {env.config.num_tasks} tasks",
    train_world=lambda method, world: dataclasses.replace(world, reward=method.reward),
    evaluation_world=lambda world: dataclasses.replace(world, reward="split"),
    check_policy=_check_policy, checkpoint_actor=_checkpoint_actor,
)


def train(args) -> int:
    return rllib_commands.train(CSC, args)


def evaluate(args) -> int:
    return rllib_commands.evaluate(CSC, args)


def make_env(config, data_dir: str | None = None) -> CSCEnv:
    return rllib_commands.make_env(CSC, config, data_dir)


def bench(args) -> int:
    from rl_cs.bench import run_bench

    return run_bench(args)
