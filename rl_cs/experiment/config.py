"""Experiment YAML -> typed, validated config, before any Ray object is built.

A YAML file mirrors ``ExperimentConfig`` one to one: top-level sections ``experiment``, ``world``,
``training``, ``model``, ``evaluation``, the reward-shaping methods' ``cafe``, ``ices``, ``relara``
(rl_cs.experiment.shaping_config) and an optional ``grid`` of dotted world fields to sweep.
Unknown keys fail with the file, the field and the nearest valid name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envs.csc_config import CSCConfig
from envs.csc_observation import ObsLayout
from rl_cs.config import from_dict
from rl_cs.errors import InputError, closest, require
from rl_cs.experiment.shaping_config import CAFESettings, ICESSettings, ReLaraSettings

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
    max_concurrent_trials: int = 0
    """Trials running at once (0: as many as the cluster's CPUs allow)."""
    methods: list = field(default_factory=list)
    """Methods run by `rl-cs train all` with this file (e.g. [greedy, ippo])."""

    def validate(self, where: str) -> None:
        require(self.iterations >= 1, f"{where}.iterations", "must be >= 1")
        require(self.seeds >= 1, f"{where}.seeds", "must be >= 1")
        require(self.checkpoint_every >= 1, f"{where}.checkpoint_every", "must be >= 1")
        require(self.max_concurrent_trials >= 0, f"{where}.max_concurrent_trials", "must be >= 0")


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
        require(self.lr > 0, f"{where}.lr", "must be > 0")
        require(0 < self.gamma <= 1, f"{where}.gamma", "must be in (0, 1]")
        require(0 <= self.lambda_ <= 1, f"{where}.lambda_", "must be in [0, 1]")
        require(self.train_batch_size > 0 and self.minibatch_size > 0, f"{where}.train_batch_size/minibatch_size",
                "must be > 0")
        require(self.minibatch_size <= self.train_batch_size, f"{where}.minibatch_size",
                "must not exceed train_batch_size")
        require(self.num_epochs >= 1, f"{where}.num_epochs", "must be >= 1")
        require(self.num_env_runners >= 0 and self.num_learners >= 0, f"{where}.num_env_runners/num_learners",
                "must be >= 0")
        require(self.num_envs_per_env_runner >= 1, f"{where}.num_envs_per_env_runner", "must be >= 1")
        require(self.rollout_fragment_length >= 0, f"{where}.rollout_fragment_length", "must be >= 0 (0: auto)")
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


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: RunSettings = field(default_factory=RunSettings)
    world: CSCConfig = field(default_factory=CSCConfig)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    cafe: CAFESettings = field(default_factory=CAFESettings)
    ices: ICESSettings = field(default_factory=ICESSettings)
    relara: ReLaraSettings = field(default_factory=ReLaraSettings)
    grid: dict = field(default_factory=dict)
    """Dotted world fields to sweep, e.g. {world.num_tasks: [50, 100]}; one trial per combination and seed."""

    def validate(self, where: str) -> "ExperimentConfig":
        self.experiment.validate(f"{where}: experiment")
        self.world.validate(f"{where}: world")
        self.training.validate(f"{where}: training")
        self.model.validate(f"{where}: model")
        self.evaluation.validate(f"{where}: evaluation")
        self.cafe.validate(f"{where}: cafe", self.policy_model_config())
        self.ices.validate(f"{where}: ices")
        self.relara.validate(f"{where}: relara")
        for key, values in self.grid.items():
            require(isinstance(values, list) and values, f"{where}: grid.{key}", "must be a non-empty list")
            for value in values:  # every grid point must itself be a valid world
                with_override(self, key, value, f"{where}: grid").world.validate(f"{where}: grid.{key}={value}")
        return self

    def policy_model_config(self) -> dict:
        """model_config of the attention actor-critic (policies.attention) for this world and model."""
        w = self.world
        layout = ObsLayout(w.num_optional_tasks, w.num_near_tasks, w.num_near_workers, w.num_idle_workers)
        return {"layout": layout.to_dict(), **vars(self.model)}


def with_override(config: ExperimentConfig, dotted: str, value: Any, where: str) -> ExperimentConfig:
    """A copy of ``config`` with one dotted field replaced (``world.rules.deadline_minutes``)."""
    head, _, rest = dotted.partition(".")
    return _replace(config, head, rest, value, where)


def _replace(obj: Any, head: str, rest: str, value: Any, where: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    if head not in names:
        raise InputError(f"{where}.{head}", "unknown field", closest(head, names))
    current = getattr(obj, head)
    if rest:
        require(dataclasses.is_dataclass(current), f"{where}.{head}", f"has no field '{rest}'")
        nested = _replace(current, *rest.partition(".")[::2], value, f"{where}.{head}")
        return dataclasses.replace(obj, **{head: nested})
    return from_dict(type(obj), {**_shallow(obj), head: value}, where)


def _shallow(obj: Any) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def parse_value(text: str) -> Any:
    """A --set value as YAML (numbers, booleans, lists) so `--set world.num_workers=50` gives an int."""
    return yaml.safe_load(text)


def load_experiment(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read, override (``--set key=value``) and validate an experiment YAML; errors name the file."""
    path = Path(path) if path else QUICK_CONFIG
    require(path.is_file(), str(path), "config file not found", "give an existing YAML, e.g. tune_configs/csc_quick.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(str(path), f"not valid YAML: {error}") from None
    where = str(path)
    config = from_dict(ExperimentConfig, data, where)
    for item in overrides:
        key, sep, text = item.partition("=")
        require(bool(sep), f"--set {item}", "expected KEY=VALUE", "e.g. --set world.num_workers=50")
        config = with_override(config, key.strip(), parse_value(text), "--set")
    return config.validate(where)
