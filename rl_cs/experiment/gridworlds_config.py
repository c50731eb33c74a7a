"""Experiment configs of the ``lbf`` and ``rware`` worlds: the shared RLlib-world sections (experiment,
training, model, evaluation, grid; rl_cs.experiment.config) around each world's own config, read by the one
YAML loader (rl_cs.config). YAMLs: tune_configs/lbf_*.yaml, tune_configs/rware_*.yaml.

Two sections differ from CSC's: ``training`` defaults to DyPS Table 6's Resource Allocation column for LBF
and RWARE (identical: Adam lr 5e-4 for actor and critic, gamma 0.99, PPO clip 0.2, GAE lambda 0.95, batch
size 256 as PPO's minibatch), and ``model`` is the MLP of every policy module (policies.sharing.modules),
not CSC's attention network. Every method (DyPS and each baseline) trains its policies with these same
settings. Method sections (``dyps``, ``seps``) come from the registry; M and SePS's cluster count are
checked against the world's number of agents here, before Ray starts.

``sharing_world_class`` builds these classes; the cell worlds (rl_cs.experiment.ridehailing_config,
vaccine_config) use it too, with their own Table 6 column as subclasses of GridworldTraining and DyPSConfig.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from envs.lbf_config import LBFConfig
from envs.rware_config import RWAREConfig
from rl_cs.config import load_config
from rl_cs.errors import require
from rl_cs.experiment.config import TrainingSettings, experiment_config_class

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GridworldTraining(TrainingSettings):
    """PPO and sampling settings; defaults: DyPS Table 6, LBF / RWARE columns (Resource Allocation)."""

    lr: float = 5e-4
    """Table 6 "Actor / Critic learning rate (Resource Allocation)": 5e-4 (one Adam per policy module)."""
    gamma: float = 0.99
    """Table 6 "Discount factor"."""
    lambda_: float = 0.95
    """Table 6 "Lambda factor (PPO)" (GAE)."""
    clip_param: float = 0.2
    """Table 6 "Clip threshold (PPO)"."""
    minibatch_size: int = 256
    """Table 6 "Batch size" (read as PPO's SGD minibatch)."""
    train_batch_size: int = 2000
    """Env steps per training iteration (not in Table 6; 1M training steps = 500 iterations of 2,000)."""
    num_epochs: int = 4
    """Passes over each train batch (not in Table 6)."""
    entropy_coeff: float = 0.01
    """Entropy bonus (not in Table 6; SePS's 0.01)."""
    num_envs_per_env_runner: int = 4
    """Vectorised worlds per env runner."""
    rollout_fragment_length: int = 50
    """Env steps per sampling call and env (LBF's episode length)."""
    vf_clip_param: float = 10.0
    """PPO's value loss is min((V - target)^2, vf_clip_param), so a target further than its square root from V
    gives no gradient (not in Table 6; RLlib's default 10 here; the cell worlds, whose returns are larger,
    raise it)."""

    def validate(self, where: str) -> None:
        super().validate(where)
        require(math.isfinite(self.vf_clip_param) and self.vf_clip_param > 0, f"{where}.vf_clip_param",
                f"must be a finite number > 0, got {self.vf_clip_param}", "RLlib's default is 10")


@dataclass(frozen=True)
class GridworldModel:
    """The MLP actor-critic of every policy module (policies.sharing.modules.MLPActorCritic)."""

    hidden: list = field(default_factory=lambda: [64, 64])
    """Hidden widths of the actor and of the critic (separate networks, ReLU); SePS uses [64, 64]."""

    def validate(self, where: str) -> None:
        require(isinstance(self.hidden, list) and 1 <= len(self.hidden) <= 4
                and all(isinstance(h, int) and 1 <= h <= 1024 for h in self.hidden), f"{where}.hidden",
                f"must be 1 to 4 widths in [1, 1024], got {self.hidden!r}", "e.g. [64, 64]")


def sharing_world_class(world: str, config: type, name: str, module: str = __name__,
                        training: type = GridworldTraining, sections: dict | None = None,
                        sizing: tuple[str, ...] = ("world.size",)) -> type:
    """experiment_config_class's class for a world DyPS and the sharing baselines run on, with the gridworld
    ``training`` (or its per-world subclass: another Table 6 column) and ``model`` sections, ``sections``
    (name -> settings class: a method section with per-world defaults, e.g. another Table 6 column of
    ``dyps``) and a validate() that also checks the method sections against the world's number of agents
    (``world.num_agents``) and refuses a grid over the world fields that set it (``sizing``). ``module``: the
    module the class is bound in at top level (pickled by reference from there: Ray ships configs to trials)."""

    def here(cls: type) -> type:
        cls.__module__ = module
        return cls

    base = here(experiment_config_class(world, config, f"_{name}Base"))

    def validate(self, where: str):
        base.validate(self, where)
        agents = self.world.num_agents
        if hasattr(self, "dyps"):
            self.dyps.validate(f"{where}: dyps", agents)
        if hasattr(self, "seps"):
            self.seps.validate(f"{where}: seps", agents)
        for key in sizing:
            require(key not in self.grid, f"{where}: grid.{key}",
                    f"{key} sets the number of agents, hence the policy modules: one value per experiment",
                    f"run one experiment per {key}")
        return self

    annotations = {"training": training, "model": GridworldModel, **(sections or {})}
    namespace = {"__annotations__": annotations, "validate": validate, "__doc__": base.__doc__,
                 **{key: field(default_factory=cls) for key, cls in annotations.items()}}
    return here(dataclass(frozen=True)(type(name, (base,), namespace)))


LBFExperimentConfig = sharing_world_class("lbf", LBFConfig, "LBFExperimentConfig")
RWAREExperimentConfig = sharing_world_class("rware", RWAREConfig, "RWAREExperimentConfig")

CONFIGS = {"lbf": LBFExperimentConfig, "rware": RWAREExperimentConfig}
QUICK = {"lbf": REPOSITORY / "tune_configs" / "lbf_quick.yaml",
         "rware": REPOSITORY / "tune_configs" / "rware_quick.yaml"}


def load_experiment(world: str, path: str | Path | None, overrides: list[str] = ()):
    """Read, override (``--set key=value``) and validate a world's experiment YAML (default: its quick one)."""
    return load_config(CONFIGS[world], path, overrides, default=QUICK[world])
