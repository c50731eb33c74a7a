"""Experiment config of the ``vaccine`` world: the shared RLlib-world sections (experiment, training, model,
evaluation, grid, search; rl_cs.experiment.config) around envs.vaccine_config.VaccineConfig, read by the one YAML
loader (rl_cs.config). YAMLs: tune_configs/vaccine_*.yaml.

DyPS and the parameter-sharing baselines run here as on the package gridworlds (one definition:
rl_cs.experiment.gridworlds_config.sharing_world_class): ``model`` is the MLP of every policy module, ``training``
defaults to DyPS Table 6's Medical column (PPO Adam lr 1e-4 for actor and critic, gamma 0.99, batch size 512 as
PPO's minibatch; its group selector lr, 1e-5, is DyPSConfig's default), and M and SePS's cluster count are
checked against the number of cells before Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from envs.vaccine_config import VaccineConfig
from policies.dyps.config import TABLE6, DyPSConfig
from rl_cs.experiment.gridworlds_config import GridworldTraining, sharing_world_class

_STEPS, _BATCH, _SELECTOR_LR, _POLICY_LR, _GAMMA = TABLE6["medical"]


@dataclass(frozen=True)
class VaccineTraining(GridworldTraining):
    """PPO and sampling settings; defaults: DyPS Table 6, Medical column."""

    lr: float = _POLICY_LR
    """Table 6 "Actor / Critic learning rate (Resource Allocation)", Medical: 1e-4."""
    gamma: float = _GAMMA
    """Table 6 "Discount factor", Medical: 0.99."""
    minibatch_size: int = _BATCH
    """Table 6 "Batch size", Medical: 512 (read as PPO's SGD minibatch, agent steps per module)."""
    train_batch_size: int = 960
    """Env steps (days) per training iteration (not in Table 6): eight 120-day episodes; Table 6's 0.1M training
    steps are then 104 iterations."""
    rollout_fragment_length: int = 120
    """Env steps per sampling call and env: one episode (120 days)."""
    vf_clip_param: float = 1000.0
    """PPO's value-loss clip (not in Table 6): a cell's discounted return reaches about 10 (infections averted
    per thousand, shared), beyond RLlib's default clip of 10 on the squared error, which would leave the critics
    without a gradient at the start of training."""


@dataclass(frozen=True)
class VaccineDyPS(DyPSConfig):
    """DyPS's settings; Table 6's Medical column is DyPSConfig's (group selector Adam 1e-5)."""

    return_scale: float = 0.002
    """The selector learns from R x 0.002: R, the episode's summed reward (infections averted per thousand,
    about 440 for the rule-based allocations), out of reach of its critic at Adam 1e-5; R x 0.002 is about 1
    (an assumption: the paper does not say how R is scaled)."""


VaccineExperimentConfig = sharing_world_class(
    "vaccine", VaccineConfig, "VaccineExperimentConfig", module=__name__, training=VaccineTraining,
    sections={"dyps": VaccineDyPS}, sizing=("world.grid_rows", "world.grid_cols"))
