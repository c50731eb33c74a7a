"""Experiment YAML -> typed, validated config, before any Ray object is built.

A YAML file mirrors ``ExperimentConfig`` one to one: top-level sections ``experiment``, ``world``,
``training``, ``model``, ``evaluation``, one section per method config registered for the world
(rl_cs.methods: ``cafe``, ``ices``, ``relara``), an optional ``grid`` of dotted world fields to sweep and an
optional ``search`` (a hyperparameter search over any fields: rl_cs.experiment.search).
Loading is rl_cs.config's, shared by every world: unknown keys fail with the file, the field and the
nearest valid name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from envs.csc_config import CSCConfig
from envs.csc_observation import ObsLayout
from rl_cs.config import load_config, with_override
from rl_cs.errors import require
from rl_cs.experiment import search
from rl_cs.registry import resolve, sections_for

FIXED_SECTIONS = ("experiment", "evaluation", "grid", "search")
"""Sections a search cannot sample: how the experiment runs and how every trial is scored stay the same."""

QUICK_CONFIG = Path(__file__).resolve().parents[2] / "tune_configs" / "csc_quick.yaml"


@dataclass(frozen=True)
class RunSettings:
    """How long and how often: the Tune side of an experiment."""

    name: str = ""
    """Experiment name (folder under the results dir); default <method>-<world>."""
    iterations: int = 5
    """Training iterations per trial (heuristics: evaluation rounds)."""
    seeds: int = 1
    """Trials per grid point, one per seed (0..seeds-1)."""
    checkpoint_every: int = 1
    """Checkpoint frequency in iterations (the last iteration is always checkpointed)."""
    max_failures: int = 2
    """Times Tune retries a failed trial (its actor died, or an iteration sampled nothing because every env
    runner was lost) before the run fails; -1: without limit, 0: never. A learned trial restarts from its
    last checkpoint, so with checkpoint_every > 1 the iterations after that checkpoint are trained again
    (and appear twice in progress.csv); a heuristic trial has no checkpoint and starts over."""
    max_concurrent_trials: int = 0
    """Trials running at once (0: as many as the cluster's CPUs allow)."""
    methods: list = field(default_factory=list)
    """Methods run by `rl-cs train all` with this file (e.g. [greedy, ippo])."""

    def validate(self, where: str) -> None:
        require(self.iterations >= 1, f"{where}.iterations", "must be >= 1")
        require(self.seeds >= 1, f"{where}.seeds", "must be >= 1")
        require(self.checkpoint_every >= 1, f"{where}.checkpoint_every", "must be >= 1")
        require(self.max_failures >= -1, f"{where}.max_failures", "must be >= -1 (-1: retry without limit)")
        require(self.max_concurrent_trials >= 0, f"{where}.max_concurrent_trials", "must be >= 0")
        for method in self.methods:
            require(isinstance(method, str) and method != "", f"{where}.methods", f"{method!r} is not a method name",
                    "list method names, e.g. [greedy, ippo]")


@dataclass(frozen=True)
class TrainingSettings:
    """PPO and sampling settings (RLlib new API stack)."""

    lr: float = 1e-3
    """Adam learning rate (CAFE §5.1: 1e-3)."""
    gamma: float = 0.99
    """Discount factor per decision."""
    lambda_: float = 0.95
    """GAE lambda."""
    clip_param: float = 0.2
    """PPO clip range epsilon (§4.6)."""
    entropy_coeff: float = 0.01
    """Entropy bonus."""
    vf_loss_coeff: float = 0.5
    """Weight of the critic loss."""
    train_batch_size: int = 4000
    """Worker decisions per training iteration (per learner)."""
    minibatch_size: int = 512
    """SGD minibatch size."""
    num_epochs: int = 4
    """Passes over each train batch."""
    num_env_runners: int = 0
    """Remote sampling actors (0: sample in the trial's own process)."""
    num_envs_per_env_runner: int = 1
    """Vectorised worlds per env runner."""
    rollout_fragment_length: int = 0
    """Env steps per sampling call and env (0: RLlib's 'auto', train batch / envs); short fragments keep
    RLlib's sampling fast."""
    num_learners: int = 0
    """Remote learners (0: learn in the trial's process)."""
    num_gpus_per_learner: float = 0.0
    """GPUs per learner (1 on a GPU cluster)."""
    torch_threads: int = 1
    """Torch intra-op threads in each Ray process; 1 avoids oversubscribing cores (measured: the attention
    module's forward took 2.4 ms with 1 thread and 44 ms with 2 on a busy 2-core machine)."""

    def validate(self, where: str) -> None:
        """Every field's range, RLlib's own limits included, so a bad value never reaches Ray."""
        import math

        for name in ("lr", "gamma", "lambda_", "clip_param", "entropy_coeff", "vf_loss_coeff", "num_gpus_per_learner"):
            value = getattr(self, name)
            require(math.isfinite(value), f"{where}.{name}", f"must be a finite number, got {value!r}")
        require(0 < self.lr <= 1, f"{where}.lr", f"must be in (0, 1], got {self.lr}",
                "Adam's step size; CAFE uses 1e-3")
        require(0 < self.gamma <= 1, f"{where}.gamma", f"must be in (0, 1], got {self.gamma}")
        require(0 <= self.lambda_ <= 1, f"{where}.lambda_", f"must be in [0, 1], got {self.lambda_}")
        require(0 < self.clip_param <= 1, f"{where}.clip_param", f"must be in (0, 1], got {self.clip_param}",
                "PPO clips the probability ratio to [1 - clip_param, 1 + clip_param]; typical: 0.1 to 0.3")
        require(self.entropy_coeff >= 0, f"{where}.entropy_coeff", f"must be >= 0, got {self.entropy_coeff}",
                "RLlib's PPO refuses a negative entropy bonus; 0 turns it off")
        require(self.vf_loss_coeff >= 0, f"{where}.vf_loss_coeff", f"must be >= 0, got {self.vf_loss_coeff}",
                "a negative weight would train the critic away from the returns")
        require(self.train_batch_size > 0 and self.minibatch_size > 0, f"{where}.train_batch_size/minibatch_size",
                "must be > 0")
        require(self.minibatch_size <= self.train_batch_size, f"{where}.minibatch_size",
                "must not exceed train_batch_size")
        require(self.num_epochs >= 1, f"{where}.num_epochs", "must be >= 1")
        require(self.num_env_runners >= 0 and self.num_learners >= 0, f"{where}.num_env_runners/num_learners",
                "must be >= 0")
        require(self.num_envs_per_env_runner >= 1, f"{where}.num_envs_per_env_runner", "must be >= 1")
        require(self.rollout_fragment_length >= 0, f"{where}.rollout_fragment_length", "must be >= 0 (0: auto)")
        if self.rollout_fragment_length:  # RLlib's rule (AlgorithmConfig.validate_train_batch_size_vs_rollout_fragment_length)
            step = max(self.num_env_runners, 1) * self.num_envs_per_env_runner * self.rollout_fragment_length
            total = self.train_batch_size * max(self.num_learners, 1)
            reached = -(-total // step) * step  # whole sampling rounds until the batch is full
            require(reached - total <= 0.1 * total, f"{where}.rollout_fragment_length",
                    f"{self.rollout_fragment_length} env steps x {max(self.num_env_runners, 1)} runner(s) x "
                    f"{self.num_envs_per_env_runner} env(s) per round fills a batch of {reached}, more than 10% over "
                    f"train_batch_size {total} (RLlib refuses this)",
                    f"use 0 (auto) or {max(total // (step // self.rollout_fragment_length), 1)}")
        require(self.num_gpus_per_learner >= 0, f"{where}.num_gpus_per_learner", "must be >= 0")
        require(self.torch_threads >= 1, f"{where}.torch_threads", "must be >= 1")


@dataclass(frozen=True)
class ModelSettings:
    """Size of the attention actor-critic (policies.attention)."""

    embed_dim: int = 64
    """Width of row embeddings and attention."""
    num_heads: int = 4
    """Attention heads (must divide embed_dim)."""
    hidden_dim: int = 128
    """Width of the merging MLP."""

    def validate(self, where: str) -> None:
        require(self.embed_dim > 0 and self.hidden_dim > 0, f"{where}.embed_dim/hidden_dim", "must be > 0")
        require(self.num_heads > 0 and self.embed_dim % self.num_heads == 0, f"{where}.num_heads",
                f"must divide embed_dim ({self.embed_dim})")


@dataclass(frozen=True)
class EvaluationSettings:
    """The held-out task stream every method is compared on."""

    episodes: int = 1
    """Evaluation episodes (seeds seed, seed+1, ...)."""
    seed: int = 12345
    """Seed of the first evaluation episode."""
    deterministic: bool = False
    """Trained policies take their argmax action instead of sampling their (seeded) softmax."""

    def validate(self, where: str) -> None:
        require(self.episodes >= 1, f"{where}.episodes", "must be >= 1")
        require(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}",
                "seeds of the held-out episodes are seed, seed+1, ...; numpy takes no negative seed")


def experiment_config_class(world: str, world_config: type, name: str) -> type:
    """The experiment dataclass of an RLlib world: the shared sections (experiment, training, model,
    evaluation, grid, search), the world's own config as ``world``, and one top-level section per method config
    registered for that world (``cafe``, ``ices``, ... from rl_cs.methods): a method's settings are defined
    once, by the method, and a YAML mirrors this class one to one."""
    sections = [(section, resolve(reference), field(default_factory=resolve(reference)))
                for section, reference in sections_for(world).items()]
    fields = [
        ("experiment", RunSettings, field(default_factory=RunSettings)),
        ("world", world_config, field(default_factory=world_config)),
        ("training", TrainingSettings, field(default_factory=TrainingSettings)),
        ("model", ModelSettings, field(default_factory=ModelSettings)),
        ("evaluation", EvaluationSettings, field(default_factory=EvaluationSettings)),
        *sections,
        ("grid", dict, field(default_factory=dict)),
        ("search", search.SearchSettings, field(default_factory=search.SearchSettings)),
    ]
    cls = dataclasses.make_dataclass(name, fields, frozen=True, namespace={
        "world_name": world, "__doc__": f"One `rl-cs train` experiment on the {world} world (a YAML in tune_configs/).",
        "validate": _validate, "policy_model_config": _policy_model_config, "method_sections": tuple(
            name for name, _, _ in sections)})
    cls.__module__ = __name__  # pickled by reference (Ray ships configs to trials): define it at module level
    return cls


def _validate(self, where: str):
    self.experiment.validate(f"{where}: experiment")
    self.world.validate(f"{where}: world")
    self.training.validate(f"{where}: training")
    self.model.validate(f"{where}: model")
    self.evaluation.validate(f"{where}: evaluation")
    for section in self.method_sections:
        settings = getattr(self, section)
        if section == "cafe":  # theta^l's layer names are checked against the policy network itself
            settings.validate(f"{where}: {section}", self.policy_model_config())
        else:
            settings.validate(f"{where}: {section}")
    for key, values in self.grid.items():
        require(isinstance(values, list) and values, f"{where}: grid.{key}", "must be a non-empty list",
                f"e.g. grid: {{{key}: [a, b]}}")
        require(key.startswith("world."), f"{where}: grid.{key}", "only world fields can be swept",
                "e.g. world.num_tasks")
        for value in values:  # every grid point must itself be a valid world
            with_override(self, key, value, f"{where}: grid").world.validate(f"{where}: grid.{key}={value}")
    search.check(self, where, search.Target.of_world(self.world_name), FIXED_SECTIONS)
    search.check_run(self, where)
    return self


def _policy_model_config(self) -> dict:
    """model_config of the attention actor-critic (policies.attention) for this world and model."""
    w = self.world
    layout = ObsLayout(w.num_optional_tasks, w.num_near_tasks, w.num_near_workers, w.num_idle_workers)
    return {"layout": layout.to_dict(), **vars(self.model)}


ExperimentConfig = experiment_config_class("csc", CSCConfig, "ExperimentConfig")


def load_experiment(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read, override (``--set key=value``) and validate a CSC experiment YAML (default: the quick config)."""
    return load_config(ExperimentConfig, path, overrides, default=QUICK_CONFIG)
