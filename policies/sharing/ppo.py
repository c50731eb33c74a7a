"""Typed experiment config -> RLlib PPOConfig (new API stack) for every parameter-sharing method on the package
gridworlds (lbf, rware) and the cell worlds (ridehailing, vaccine): the methods differ in their policy modules
and agent -> module mapping (schemes.py), in the world's observation options (PS-id's agent id, MAPPO's global
state) and, for PSA, SePS and DyPS, in a helper module and learner; sampling, PPO settings (the ``training``
section: Table 6 defaults), metrics and fault tolerance are shared with CSC's builder (rl_cs.experiment.ppo).

Every policy module is an MLPActorCritic (``model.hidden``), masking the actions the world forbids where its
observation says which (the cell worlds' ``action_mask_layout``); all spaces are given explicitly (a group
module no agent maps to at space-inference time would otherwise have none). Every checkpoint gets
``policy_weights.pt``: the state of every module of the MultiRLModule, keys ``<module id>/<parameter>``
(read back by policies.sharing.actor with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from policies.sharing.modules import MLPActorCritic, SharedCritic
from policies.sharing.schemes import MAPPINGS, policy_modules
from rl_cs.config import to_dict
from rl_cs.experiment.ppo import CSCMetrics, multi_module_ppo

SHARED_CRITIC = "shared_critic"
"""PSA's shared critic module."""
FIXED_SCHEMES = ("nops", "ps", "ps-id", "psa")


EPISODE_WINDOW = 100
"""The world's episode metrics are means over the last 100 episodes (RLlib's metrics_num_episodes_for_smoothing
default). RLlib's own default for a logged mean is an EMA with coefficient 0.01, under which an early
episode's value weighs on the reported figure for hundreds of episodes."""


class SharingCallbacks(CSCMetrics):
    """CSC's thread pinning and sampled-nothing check (rl_cs.experiment.ppo.CSCMetrics), with every module's
    weights written beside each checkpoint (not only ``shared``) and the world's episode metrics averaged
    over the last EPISODE_WINDOW episodes."""

    def on_algorithm_init(self, *, algorithm, **kwargs):
        torch.set_num_threads(algorithm.config.env_config["torch_threads"])
        save_all_weights_with_checkpoints(algorithm)

    def on_episode_end(self, *, episode, env=None, env_index: int = 0, metrics_logger=None, **kwargs):
        world = env.envs[env_index].unwrapped if hasattr(env, "envs") else env.unwrapped
        for key, value in world.episode_metrics().items():
            metrics_logger.log_value(key, float(value), window=EPISODE_WINDOW)


def save_all_weights_with_checkpoints(algorithm) -> None:
    """Every checkpoint the algorithm saves also holds WEIGHTS_FILE with every module's state (see the module
    docstring), written right after RLlib's own files."""
    from rl_cs.evaluation import WEIGHTS_FILE, write_weights

    if getattr(algorithm, "_rlcs_saves_weights", False):
        return
    save_checkpoint = algorithm.save_checkpoint

    def save_checkpoint_and_weights(checkpoint_dir):
        result = save_checkpoint(checkpoint_dir)
        weights = algorithm.learner_group.get_weights()
        flat = {f"{module}/{name}": value for module, state in weights.items() for name, value in state.items()}
        write_weights(flat, Path(checkpoint_dir) / WEIGHTS_FILE)
        return result

    algorithm.save_checkpoint = save_checkpoint_and_weights
    algorithm._rlcs_saves_weights = True


def world_env(config, options: dict):
    """The experiment's world with ``options`` (on its generated data: the spaces do not depend on a data folder),
    built once per process and (world, options): the builders ask for it several times."""
    import json

    from rl_cs.registry import get_world

    world = to_dict(config.world)
    key = (type(config).world_name, json.dumps(world, sort_keys=True, default=str),
           json.dumps(options, sort_keys=True, default=str))
    if key not in _WORLD_ENVS:
        if len(_WORLD_ENVS) >= 8:
            _WORLD_ENVS.clear()
        _WORLD_ENVS[key] = get_world(type(config).world_name).env_class()({"world": world, **options})
    return _WORLD_ENVS[key]


_WORLD_ENVS: dict = {}


def world_spaces(config, options: dict) -> tuple:
    """(observation space, action space, number of agents) of the experiment's world with ``options``."""
    env = world_env(config, options)
    agent = env.possible_agents[0]
    return env.observation_spaces[agent], env.action_spaces[agent], len(env.possible_agents)


def action_mask_layout(config) -> dict | None:
    """Where the world's observation holds its action mask (the env class's ``action_mask_layout``: the cell
    worlds), None for a world whose every action is always allowed (lbf, rware)."""
    layout = getattr(world_env(config, {}), "action_mask_layout", None)
    return dict(layout) if layout else None


def raw_observation_size(config) -> int:
    """Floats of an agent's own package observation (what the actor reads under MAPPO's global state)."""
    return int(world_spaces(config, {})[0].shape[0])


def policy_spec(config, observation_space, action_space, actor_inputs: int | None = None) -> RLModuleSpec:
    return RLModuleSpec(module_class=MLPActorCritic, observation_space=observation_space, action_space=action_space,
                        model_config={"hidden": list(config.model.hidden), "actor_inputs": actor_inputs,
                                      "action_mask": action_mask_layout(config)})


def gridworld_ppo(config, env_config: dict, seed, *, scheme: str, num_groups: int = 1, env_options: dict | None = None,
                  helpers: dict | None = None, learner_class=None, learner_config: dict | None = None,
                  callbacks=SharingCallbacks, actor_inputs: int | None = None) -> PPOConfig:
    """The PPOConfig of one sharing scheme (schemes.policy_modules) on the experiment's world.
    ``helpers``: module id -> RLModuleSpec of modules no agent maps to (PSA's critic, SePS's VAE, DyPS's
    selector); ``env_options``: the world's observation/reward options (envs.gridworld)."""
    env_options = dict(env_options or {})
    observation_space, action_space, agents = world_spaces(config, env_options)
    specs = {mid: policy_spec(config, observation_space, action_space, actor_inputs)
             for mid in policy_modules(scheme, agents, num_groups)}
    specs.update(helpers or {})
    ppo = multi_module_ppo(config, {**env_config, **env_options}, seed, specs, MAPPINGS[scheme], callbacks)
    if learner_class is not None:
        ppo = ppo.learners(learner_class=learner_class, learner_config_dict=dict(learner_config or {}))
    return ppo


def sharing_config(config, env_config: dict, seed, scheme: str = "ps") -> PPOConfig:
    """NoPS, PS, PS-id and PSA (``scheme``); SePS: policies.sharing.seps.seps_config, DyPS:
    policies.dyps.rllib.dyps_config."""
    if scheme == "ps-id":
        return gridworld_ppo(config, env_config, seed, scheme=scheme, env_options={"agent_id": True})
    if scheme == "psa":
        from policies.sharing.psa import PSALearner

        observation_space, action_space, _ = world_spaces(config, {})
        critic = RLModuleSpec(module_class=SharedCritic, observation_space=observation_space,
                              action_space=action_space, model_config={"hidden": list(config.model.hidden)})
        return gridworld_ppo(config, env_config, seed, scheme=scheme, helpers={SHARED_CRITIC: critic},
                             learner_class=PSALearner, learner_config={"shared_critic": SHARED_CRITIC})
    if scheme in ("nops", "ps"):
        return gridworld_ppo(config, env_config, seed, scheme=scheme)
    raise ValueError(f"unknown fixed sharing scheme {scheme!r} (one of {FIXED_SCHEMES})")
