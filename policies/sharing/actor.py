"""Evaluation of the sharing methods' trained policies (NoPS, PS, PS-id, PSA, SePS, DyPS): an actor that acts
for every agent through the module the method maps it to, rebuilt from a checkpoint's weights alone.

``load_actor(policy, deterministic, world)`` takes a heuristic name of the world or a checkpoint folder
written by `rl-cs train` (``<results>/<name>/<trial>/checkpoint_00000N``). For a checkpoint: the method
named in the experiment's experiment.json is looked up in the registry, its own builder is run on the typed
config (experiment.json) and the trial's env_config (params.json) to get every module's RLModuleSpec, each
module is built and filled from ``policy_weights.pt`` (keys ``<module id>/<parameter>``, read with
``torch.load(weights_only=True)`` by rl_cs.evaluation.read_weights; no pickle is opened), and then:

* fixed mappings (nops, ps, ps-id, psa): agent -> module by the method's own mapping function;
* SePS: the groups stored in the ``seps`` module (``group_0`` for all if the run never left pre-sampling);
* DyPS: policies.dyps.actor.DyPSActor, which draws a group per agent at each episode's start from the
  trained selector, as in training.

The world's observation options the method trained with (PS-id's agent id, MAPPO's global state: the
trial's env_config) are applied here, the world's own way (its env class's ``extend_observations``, else the
package gridworlds'), when the evaluated env does not apply them itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from envs.gridworld import extend_observations
from policies.sharing.schemes import agent_index, group_module
from rl_cs import registry
from rl_cs.config import to_dict
from rl_cs.errors import require

OPTIONS = ("agent_id", "global_state")


class MultiModuleActor:
    """Acts for every agent through its module (``mapping``: agent id -> module id, fixed per episode)."""

    def __init__(self, modules: dict, mapping, options: dict, name: str = "trained", deterministic: bool = False,
                 extend=extend_observations):
        self.modules, self.options, self.name, self.deterministic = modules, options, name, deterministic
        self.extend = extend
        """(observations in agent order, agent_id, global_state) -> extended observations: the world's own
        (envs.gridworld.extend_observations; the cell worlds' env class ``extend_observations``)."""
        self._mapping = mapping
        self.mapping: dict | None = None
        self.generator = torch.Generator()

    def reset(self, seed: int | None) -> None:
        self.generator.manual_seed(seed or 0)
        self.mapping = None

    def assign(self, agents: list) -> dict:
        """agent id -> module id for the episode running now (called for the agents of its first step, and again
        for any agent that first acts later in it)."""
        return {agent: self._mapping(agent) for agent in agents}

    def observations(self, obs: dict) -> dict:
        """The observations the modules were trained on (the method's options applied if the env did not)."""
        agents = list(obs)
        sample = next(iter(self.modules.values()))
        wanted = int(sample.observation_space.shape[0])
        if not any(self.options.get(key) for key in OPTIONS) or len(np.asarray(obs[agents[0]]).ravel()) == wanted:
            return obs
        ordered = sorted(agents, key=agent_index)
        extended = self.extend([obs[a] for a in ordered], bool(self.options.get("agent_id")),
                               bool(self.options.get("global_state")))
        return dict(zip(ordered, extended))

    def act(self, view, obs: dict) -> dict:
        if not obs:
            return {}
        if self.mapping is None:
            self.mapping = self.assign(sorted(obs, key=agent_index))
        newcomers = [agent for agent in obs if agent not in self.mapping]
        if newcomers:  # a world whose agents act irregularly (CSC): one first acting later in the episode
            self.mapping.update(self.assign(sorted(newcomers, key=agent_index)))
        inputs = self.observations(obs)
        actions = {}
        by_module: dict[str, list] = {}
        for agent in obs:
            by_module.setdefault(self.mapping[agent], []).append(agent)
        for module_id, agents in sorted(by_module.items()):
            module = self.modules[module_id]
            batch = torch.as_tensor(np.stack([np.asarray(inputs[a], np.float32) for a in agents]))
            with torch.no_grad():
                logits = module.forward_inference({Columns.OBS: batch})[Columns.ACTION_DIST_INPUTS]
                if self.deterministic:
                    choice = logits.argmax(-1)
                else:
                    choice = torch.multinomial(torch.softmax(logits, -1), 1, generator=self.generator).squeeze(-1)
            actions.update(zip(agents, choice.tolist()))
        return {agent: actions[agent] for agent in obs}


def load_modules(checkpoint: Path, world: str):
    """(method, typed config, env_config, {module id: RLModule}) of a checkpoint (module docstring)."""
    from rl_cs.evaluation import METADATA, TRIAL_PARAMS, WEIGHTS_FILE, _read_json, experiment_config, read_weights

    checkpoint = checkpoint.resolve()
    weights = checkpoint / WEIGHTS_FILE
    require(weights.is_file(), str(checkpoint), f"no trained policy here: its weights file {WEIGHTS_FILE} is missing",
            "give a checkpoint folder written by `rl-cs train` (<results>/<name>/<trial>/checkpoint_00000N)")
    config = experiment_config(checkpoint, world)
    metadata = _read_json(checkpoint.parent.parent / METADATA)
    name = metadata.get("method")
    require(isinstance(name, str), str(checkpoint.parent.parent / METADATA), "no 'method' in the experiment record",
            "give a checkpoint inside its own results folder, unchanged")
    method = registry.get_method(name, world, where=f"{checkpoint.parent.parent / METADATA}: method")
    require(method.learned, str(checkpoint.parent.parent / METADATA), f"'{name}' is a heuristic: no trained policy")
    stored = _read_json(checkpoint.parent / TRIAL_PARAMS).get("env_config")
    env_config = {**(stored if isinstance(stored, dict) else {}), "world": to_dict(config.world)}
    specs = method.build_algorithm(config, {"world": env_config["world"]}, 0).rl_module_spec.rl_module_specs
    state = read_weights(weights)
    modules = {}
    for module_id, spec in specs.items():
        module = spec.build()
        expected = module.state_dict()
        missing = [key for key in expected if f"{module_id}/{key}" not in state]
        wrong = [key for key in expected if f"{module_id}/{key}" in state
                 and tuple(state[f"{module_id}/{key}"].shape) != tuple(expected[key].shape)]
        require(not missing and not wrong, str(weights),
                f"these weights do not fit module '{module_id}' of method '{name}' ("
                + (f"missing {', '.join(missing[:3])}" if missing else f"wrong shape: {', '.join(wrong[:3])}") + ")",
                "give the checkpoint inside its own results folder, unchanged")
        values = {key: state[f"{module_id}/{key}"] for key in expected}
        bad = [key for key, value in values.items() if not torch.isfinite(value.float()).all()]
        require(not bad, str(weights), f"non-finite values in {module_id}/{', '.join(bad[:3])}",
                "give an intact checkpoint")
        module.load_state_dict(values, strict=True)
        module.eval()
        modules[module_id] = module
    return method, config, env_config, modules


def load_checkpoint_actor(checkpoint: Path, world: str, deterministic: bool = False):
    from policies.dyps.rllib import DYPS
    from policies.sharing.seps import SEPS

    method, config, env_config, modules = load_modules(checkpoint, world)
    options = {key: bool(env_config.get(key)) for key in OPTIONS}
    name = f"{method.name} ({Path(checkpoint).name})"
    extend = getattr(registry.get_world(world).env_class(), "extend_observations", extend_observations)
    if DYPS in modules:
        from policies.dyps.actor import DyPSActor

        return DyPSActor(modules, options, name=name, deterministic=deterministic, extend=extend)
    policies = {mid: module for mid, module in modules.items() if mid != SEPS and hasattr(module, "pi")}
    if SEPS in modules:
        groups = modules[SEPS].groups()

        def mapping(agent):
            return group_module(groups[agent_index(agent)] if groups else 0)
    else:
        algorithm = method.build_algorithm(config, {"world": env_config["world"]}, 0)

        def mapping(agent):
            return algorithm.policy_mapping_fn(agent, None)
    return MultiModuleActor(policies, mapping, options, name=name, deterministic=deterministic, extend=extend)


def experiment_method(checkpoint: Path) -> str | None:
    """The method an experiment folder's checkpoint was trained with (None if unreadable)."""
    try:
        return json.loads((Path(checkpoint).resolve().parent.parent / "experiment.json").read_text())["method"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
