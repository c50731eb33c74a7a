"""Experiment config of the ``ridehailing`` world: the shared RLlib-world sections (experiment, training, model,
evaluation, grid, search; rl_cs.experiment.config) around envs.ridehailing_config.RideHailingConfig, read by the one
YAML loader (rl_cs.config). YAMLs: tune_configs/ridehailing_*.yaml.

DyPS and the parameter-sharing baselines run here as on the package gridworlds (one definition:
rl_cs.experiment.gridworlds_config.sharing_world_class): ``model`` is the MLP of every policy module, ``training``
and ``dyps`` default to DyPS Table 6's Ride-Hailing (1) / (2) column where it differs from the LBF / RWARE one
(PPO Adam lr 1e-3 for actor and critic, gamma 0.97, batch size 1024 as PPO's minibatch; group selector Adam lr
1e-4; SePS's pre-sampling a tenth of its 30k steps), and M and SePS's cluster count are checked against the
number of cells before Ray starts. The world's rewards are fares x world.reward_scale (0.01).
"""

from __future__ import annotations

from dataclasses import dataclass

from envs.ridehailing_config import RideHailingConfig
from policies.dyps.config import TABLE6, DyPSConfig
from policies.sharing.seps import SePSConfig
from rl_cs.experiment.gridworlds_config import GridworldTraining, sharing_world_class

_STEPS, _BATCH, _SELECTOR_LR, _POLICY_LR, _GAMMA = TABLE6["ridehailing1"]  # (2)'s column is the same


@dataclass(frozen=True)
class RideHailingTraining(GridworldTraining):
    """PPO and sampling settings; defaults: DyPS Table 6, Ride-Hailing (1) / (2) column."""

    lr: float = _POLICY_LR
    """Table 6 "Actor / Critic learning rate (Resource Allocation)", Ride-Hailing: 1e-3."""
    gamma: float = _GAMMA
    """Table 6 "Discount factor", Ride-Hailing: 0.97."""
    minibatch_size: int = _BATCH
    """Table 6 "Batch size", Ride-Hailing: 1024 (read as PPO's SGD minibatch, agent steps per module)."""
    train_batch_size: int = 1024
    """Env steps per training iteration (not in Table 6): 1024 = 57 of our 18-step episodes, 36,864 cell decisions
    on Ride-Hailing (1); Table 6's 30k training steps are then 30 iterations. RLlib samples in whole rounds of
    (env runners x envs x rollout_fragment_length) env steps: 15 rounds of 4 x 18 = 1,080 with the defaults."""
    rollout_fragment_length: int = 18
    """Env steps per sampling call and env: one episode (18 steps of 10 minutes)."""
    vf_clip_param: float = 1000.0
    """PPO's value-loss clip (not in Table 6): a cell's discounted return is a few units of world.reward_scale x
    CNY (0.01: about 2.5 on the synthetic city, more in its busy cells), beyond RLlib's default clip of 10 on
    the squared error at the start of training, which would leave those cells' critics without a gradient."""


@dataclass(frozen=True)
class RideHailingDyPS(DyPSConfig):
    """DyPS's settings; defaults: Table 6's Ride-Hailing column for the group selector (Adam 1e-4)."""

    selector_actor_lr: float = _SELECTOR_LR
    """Table 6 "Actor learning rate (Group Selection)", Ride-Hailing: 1e-4."""
    selector_critic_lr: float = _SELECTOR_LR
    """Table 6 "Critic learning rate (Group Selection)", Ride-Hailing: 1e-4."""
    return_scale: float = 0.01
    """The selector learns from R x 0.01: R, the episode's summed reward, is the GMV x world.reward_scale (about
    110 on the synthetic city), out of reach of its critic at Adam 1e-4 within Table 6's budget; R x 0.01 is about
    1 (an assumption: the paper does not say how R is scaled)."""


@dataclass(frozen=True)
class RideHailingSePS(SePSConfig):
    """SePS's settings; the pre-sampling phase scaled to Table 6's Ride-Hailing budget."""

    pretraining_steps: int = 3072
    """Env steps of the pre-sampling phase: 3 iterations of 1024, a tenth of Table 6's 30k training steps (110,592
    cell transitions for the VAE); SePSConfig's 5,000 would be a sixth."""


RideHailingExperimentConfig = sharing_world_class(
    "ridehailing", RideHailingConfig, "RideHailingExperimentConfig", module=__name__, training=RideHailingTraining,
    sections={"dyps": RideHailingDyPS, "seps": RideHailingSePS},
    sizing=("world.size", "world.grid_rows", "world.grid_cols"))
