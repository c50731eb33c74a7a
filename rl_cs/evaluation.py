"""One evaluation path for every method: run an actor on seeded episodes of a world, collect metrics.

Actors are heuristics (policies.heuristics) or trained RLModules loaded from a checkpoint's weights alone
(load_policy: never from a pickle); both see the same task stream (the episode seed fixes the task window,
worker starts and skills) and are scored by the world's own counters.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from envs.csc_observation import ObsLayout
from envs.csc_view import DecisionView
from policies.heuristics import Actor
from rl_cs import registry
from rl_cs.config import from_dict, to_dict
from rl_cs.errors import InputError, closest, require

class ModuleActor:
    """A trained RLModule acting on every decider at once through RLlib's public inference API: its
    ``forward_inference`` output (action distribution inputs; AttentionActorCritic masks the actions the
    observation's action mask forbids) fed to its inference action distribution. Samples that distribution
    (seeded per episode, the policy PPO trained) or, if ``deterministic``, takes its deterministic version
    (the argmax). An undertrained policy's argmax is often tau_0 everywhere, which would score zero, so
    sampling is the default."""

    def __init__(self, module, name: str = "trained", deterministic: bool = False):
        self.module, self.name, self.deterministic = module, name, deterministic
        self.generator = torch.Generator()

    def reset(self, seed: int | None) -> None:
        self.generator.manual_seed(seed or 0)

    def prepare(self, env) -> None:
        """Before an episode: a module that brings settings of its world (RMO's matching stage: its learned eta
        and matching rule, ``configure_env``) gives them to the env; others change nothing."""
        configure = getattr(self.module, "configure_env", None)
        if configure is not None:
            configure(getattr(env, "unwrapped", env))

    def act(self, view: DecisionView | None, obs: dict) -> dict:
        """Actions of the agents in ``obs``; the module sees only the observations (``view`` is unused)."""
        if not obs:
            return {}
        batch = torch.from_numpy(np.stack(list(obs.values())))
        with torch.no_grad():
            inputs = self.module.forward_inference({Columns.OBS: batch})[Columns.ACTION_DIST_INPUTS]
            dist = self.module.get_inference_action_dist_cls().from_logits(inputs)
            if self.deterministic:
                choice = dist.to_deterministic().sample()
            else:  # the distribution's probabilities of every action, (B, A), sampled with our own generator
                actions = torch.arange(self.module.action_space.n).unsqueeze(-1)
                probs = dist.logp(actions).exp().T
                choice = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        return dict(zip(obs, choice.numpy().tolist()))


def load_actor(policy: str, deterministic: bool = False, world: str = "csc", checkpoint_actor=None) -> Actor:
    """A heuristic of ``world`` by method name (rl_cs.methods), or a trained policy from a checkpoint folder,
    loaded from its weights alone (load_policy: never a pickle). ``checkpoint_actor(path, world,
    deterministic)`` builds the actor of a checkpoint whose method acts through several modules (the
    parameter-sharing methods: policies.sharing.actor.load_checkpoint_actor); default one policy module."""
    methods = {method.name: method for method in registry.methods_for(world)}
    if policy in methods and not methods[policy].learned:
        return methods[policy].make_heuristic()
    require(policy not in methods, "policy", f"'{policy}' is a learned method: evaluate a trained checkpoint",
            f"train it (rl-cs train {policy} --world {world}) and give its checkpoint folder")
    path = Path(policy).resolve()
    if not path.exists():
        heuristics = [name for name, method in methods.items() if not method.learned]
        raise InputError("policy", f"'{policy}' is neither a heuristic of world '{world}' nor an existing "
                         "checkpoint folder", closest(policy, heuristics))
    if checkpoint_actor is not None:
        return checkpoint_actor(path, world, deterministic)
    return ModuleActor(load_policy(path, world), name=path.name, deterministic=deterministic)


# --- trained policies: weights only ------------------------------------------------------------------------
#
# RLlib writes every part of a checkpoint (class_and_ctor_args.pkl, module_state.pkl, algorithm_state.pkl,
# ...) with pickle, and unpickling a file can run any code in it; Tune's tuner.pkl and params.pkl are pickles
# too. So a trained policy is read from WEIGHTS_FILE alone -- the shared policy module's state dict, written
# by the trial into every checkpoint it saves (save_weights_with_checkpoints) and read back with
# ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers -- plus the
# network's architecture from the experiment's own typed config (experiment.json and the trial's
# params.json, both JSON). No pickle of a checkpoint is ever opened.

WEIGHTS_FILE = "policy_weights.pt"
"""The shared policy's state dict (name -> tensor), in every checkpoint `rl-cs train` writes."""
POLICY_MODULE = "shared"
"""The policy module every worker maps to (rl_cs.experiment.ppo.SHARED_MODULE)."""
METADATA = "experiment.json"
TRIAL_PARAMS = "params.json"


def save_weights_with_checkpoints(algorithm, module_id: str = POLICY_MODULE) -> None:
    """Make every checkpoint that ``algorithm`` (an RLlib Algorithm run by Tune) saves also hold WEIGHTS_FILE:
    the learner's ``module_id`` weights, read right after RLlib wrote its own (pickled) files. Tune saves a
    class trainable through ``save_checkpoint(checkpoint_dir)`` and then persists the whole folder, so the
    file travels with the checkpoint. Called from the algorithm's ``on_algorithm_init`` callback."""
    if getattr(algorithm, "_rlcs_saves_weights", False):
        return
    save_checkpoint = algorithm.save_checkpoint

    def save_checkpoint_and_weights(checkpoint_dir):
        result = save_checkpoint(checkpoint_dir)
        weights = algorithm.learner_group.get_weights(module_ids=[module_id])[module_id]
        write_weights(weights, Path(checkpoint_dir) / WEIGHTS_FILE)
        return result

    algorithm.save_checkpoint = save_checkpoint_and_weights
    algorithm._rlcs_saves_weights = True


def write_weights(state: dict, path: Path) -> None:
    """A state dict (name -> numpy array or tensor) as WEIGHTS_FILE, replaced atomically."""
    tensors = {name: torch.as_tensor(np.array(value, copy=True)) for name, value in state.items()}
    partial = path.with_name(path.name + ".partial")
    torch.save(tensors, partial)
    partial.replace(path)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """WEIGHTS_FILE through ``torch.load(weights_only=True)``: tensors and plain containers only (a file that
    asks for any other object is refused, never run); anything else unreadable is an InputError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: exactly what must not happen
        raise InputError(str(path), "not a policy weights file (refused by the weights-only loader: it holds "
                         "objects other than tensors, or is no torch file at all; nothing in it was run)",
                         "it is written by `rl-cs train` into each checkpoint; give an intact checkpoint") from None
    except Exception as error:  # noqa: BLE001 -- torch raises RuntimeError, EOFError, OSError, ... on bad files
        raise InputError(str(path), f"not a policy weights file (unreadable: empty, truncated or no torch file; "
                         f"{type(error).__name__})",
                         "it is written by `rl-cs train` into each checkpoint; give an intact checkpoint") from None
    require(isinstance(state, dict) and bool(state)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()), str(path),
            "not a policy weights file (expected a mapping of parameter names to tensors)",
            "it is written by `rl-cs train` into each checkpoint; give an intact checkpoint")
    return state


def load_policy(checkpoint: Path, world: str = "csc"):
    """The trained policy of a checkpoint folder as an inference-only RLModule: its architecture rebuilt by
    the trained method's own builder (rl_cs.methods: ``build_algorithm(config, env_config, 0)``'s module spec
    for POLICY_MODULE) from the experiment's typed config and the trial's env_config, its parameters (and
    buffers, e.g. RMO's eta) from WEIGHTS_FILE (read_weights). Its critic, if the file holds one, is not needed
    to act and is left out."""
    checkpoint = checkpoint.resolve()
    weights = checkpoint / WEIGHTS_FILE
    if not weights.is_file():
        rllib = any(checkpoint.glob("**/module_state.*")) or (checkpoint / "rllib_checkpoint.json").exists()
        raise InputError(
            str(checkpoint), f"no trained RLModule found here: its weights file {WEIGHTS_FILE} is missing"
            + ("; its RLlib files are pickles, which rl-cs does not load (unpickling can run code)" if rllib else ""),
            "give a checkpoint folder written by `rl-cs train` (<results>/<name>/<trial>/checkpoint_00000N); "
            "for an older checkpoint you trust like code, rl_cs.evaluation.export_weights_from_trusted_checkpoint "
            "adds the file")
    config = experiment_config(checkpoint, world)
    spec = policy_spec(checkpoint, world, config)
    state = read_weights(weights)
    with torch.device("meta"):  # shapes first: a config/weights mismatch costs no memory
        expected = {name: tuple(value.shape) for name, value in spec.build().state_dict().items()}
    missing = sorted(name for name in expected if name not in state)
    wrong = sorted(name for name in expected if name in state and tuple(state[name].shape) != expected[name])
    require(not missing and not wrong, str(weights),
            "these weights do not fit the policy network of the experiment's config ("
            + (f"missing {', '.join(missing[:3])}" if missing else f"wrong shape: {', '.join(wrong[:3])}") + ")",
            "give the checkpoint inside its own results folder, unchanged")
    bad = [name for name in expected if not torch.isfinite(state[name]).all()]
    require(not bad, str(weights), f"non-finite values in {', '.join(bad[:3])}", "give an intact checkpoint")
    module = spec.build()
    module.load_state_dict({name: state[name] for name in expected}, strict=True)
    module.eval()
    return module


def policy_spec(checkpoint: Path, world: str, config) -> RLModuleSpec:
    """The inference-only spec of the policy module a checkpoint's method trained: the method named in
    experiment.json, its builder run on the typed config and the trial's env_config (JSON), its POLICY_MODULE
    spec; observation and action spaces from the spec, else from the trial's world (an env built from its
    env_config), else, for CSC's attention network, from its observation layout."""
    folder, trial = checkpoint.parent.parent, checkpoint.parent
    metadata = _read_json(folder / METADATA)
    name = metadata.get("method")
    require(isinstance(name, str), str(folder / METADATA), "no 'method' in the experiment record",
            "give a checkpoint inside its own results folder, unchanged")
    method = registry.get_method(name, world, where=f"{folder / METADATA}: method")
    require(method.learned, str(folder / METADATA), f"'{name}' is a heuristic: it has no trained policy",
            "give a checkpoint of a learned method")
    stored = _read_json(trial / TRIAL_PARAMS).get("env_config")
    env_cfg = {**(stored if isinstance(stored, dict) else {}), "world": to_dict(config.world)}
    modules = method.build_algorithm(config, env_cfg, 0).rl_module_spec
    specs = getattr(modules, "rl_module_specs", None) or {POLICY_MODULE: modules}
    require(POLICY_MODULE in specs, str(folder / METADATA), f"method '{name}' has no '{POLICY_MODULE}' policy module")
    base = specs[POLICY_MODULE]
    observation_space, action_space = base.observation_space, base.action_space
    if observation_space is None or action_space is None:
        observation_space, action_space = _policy_spaces(world, config, base, env_cfg)
    return RLModuleSpec(module_class=base.module_class, inference_only=True, model_config=base.model_config,
                        observation_space=observation_space, action_space=action_space)


def _policy_spaces(world: str, config, spec, env_cfg: dict):
    """Spaces of a policy whose spec names none: CSC's attention network from its layout (no env built),
    any other world's from an env of the trial's world."""
    layout = (spec.model_config or {}).get("layout") if isinstance(spec.model_config, dict) else None
    if world == "csc" and isinstance(layout, dict):
        layout = ObsLayout(**layout)
        return (gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32), gym.spaces.Discrete(layout.num_actions))
    env = registry.get_world(world).env_class()(env_cfg)
    agent = env.possible_agents[0]
    return env.observation_spaces[agent], env.action_spaces[agent]


def experiment_config(checkpoint: Path, world: str = "csc"):
    """The typed experiment config a checkpoint was trained with: ``config`` of the experiment folder's
    experiment.json, with the world of the checkpoint's own trial (params.json ``env_config.world``: a grid
    point) or, for a search trial, its sampled values (params.json ``search``: any field, the network's sizes
    included). Both are JSON; a folder outside an experiment is an InputError."""
    trial, folder = checkpoint.parent, checkpoint.parent.parent
    require((folder / METADATA).is_file() and (trial / TRIAL_PARAMS).is_file(), str(checkpoint),
            f"not inside an rl-cs experiment folder (no {METADATA} and <trial>/{TRIAL_PARAMS} above it): the "
            "policy's network is built from the experiment's config",
            "give the checkpoint where `rl-cs train` wrote it: <results>/<name>/<trial>/checkpoint_00000N")
    metadata = _read_json(folder / METADATA)
    require(isinstance(metadata.get("config"), dict), str(folder / METADATA),
            "not an rl-cs experiment record (expected an object with a 'config')")
    trained_on = metadata.get("world", world)
    require(trained_on == world, str(checkpoint), f"a checkpoint of world '{trained_on}', not '{world}'",
            f"pass --world {trained_on}")
    cls = registry.get_world(world).config_class()
    config = from_dict(cls, metadata["config"], f"{folder / METADATA}: config")
    params = _read_json(trial / TRIAL_PARAMS)
    from rl_cs.experiment import search

    if search.is_trial(params):  # a search trial: the experiment's config with the trial's sampled values (JSON)
        config = search.apply(config, params[search.SEARCH], f"{trial / TRIAL_PARAMS}: {search.SEARCH}")
    else:
        env_world = params.get("env_config", {}).get("world") if isinstance(params.get("env_config"), dict) else None
        require(isinstance(env_world, dict), str(trial / TRIAL_PARAMS), "no env_config.world in the trial's "
                "parameters", "give a checkpoint of a trained (learned-method) trial")
        config = dataclasses.replace(config, world=from_dict(type(config.world), env_world,
                                                             f"{trial / TRIAL_PARAMS}: env_config.world"))
    if hasattr(config, "model"):  # the attention network's sizes (CSC-style experiment configs)
        config.model.validate(f"{folder / METADATA}: config.model")
    config.world.validate(f"{trial / TRIAL_PARAMS}: env_config.world")
    return config


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(str(path), f"cannot read it as JSON ({error})", "give an intact results folder") from None
    require(isinstance(data, dict), str(path), f"expected a JSON object, got {type(data).__name__}",
            "give an intact results folder")
    return data


def export_weights_from_trusted_checkpoint(checkpoint: str | Path) -> Path:
    """Write WEIGHTS_FILE into a checkpoint saved before rl-cs wrote one, through RLlib's own loader. That
    loader UNPICKLES the checkpoint's files and so runs any code in them: use it only on a checkpoint you
    trust like code (one you trained yourself). Returns the file's path."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    checkpoint = Path(checkpoint).resolve()
    module = RLModule.from_checkpoint(checkpoint / "learner_group" / "learner" / "rl_module" / POLICY_MODULE)
    write_weights(module.get_state(), checkpoint / WEIGHTS_FILE)
    return checkpoint / WEIGHTS_FILE


def run_episode(env, actor: Actor, seed: int) -> dict[str, float]:
    """One seeded episode of any registered world: the actor sees the env's decision view and the
    observations of the agents acting this step; the world's own counters score it."""
    prepare = getattr(actor, "prepare", None)
    if prepare is not None:  # a trained module's world settings (RMO: its eta and matching rule)
        prepare(env)
    obs, _ = env.reset(seed=seed)
    actor.reset(seed)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(actor.act(env.decision_view(), obs))
        done = terminated["__all__"] or truncated["__all__"]
    return env.episode_metrics()


def evaluate(env, actor: Actor, seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics per episode (``env.episode_metrics()``) and the episodes' logs (``env.episode_log()``: the
    CSC assignment log, the sensing world's cells per cycle), each row tagged with its seed."""
    rows, logs = [], []
    for seed in seeds:
        rows.append({"seed": seed, **run_episode(env, actor, seed)})
        logs.extend({**record, "seed": seed} for record in env.episode_log())
    return pd.DataFrame(rows), pd.DataFrame(logs)
