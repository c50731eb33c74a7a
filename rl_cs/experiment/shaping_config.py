"""Typed YAML sections of the learned reward-shaping methods: ``cafe:``, ``ices:``, ``relara:``.

Each setting is defined once. ``cafe:`` nests CAFE's own dataclasses (policies.cafe.config), the same ones
the credit module and the learner rebuild from their config dicts:

    cafe:
      critic: ippo
      phi: {eta: 1.0, redistribution: mix, phi_lr: 1.0e-3, phi_init: [1.0, 0.0], phi_bounds: [0.0, 10.0],
            finetune_after: 5, tolerance: 0.01, patience: 3, newton_damping: 1.0, finetune_buffer: 256, ...}
      implicit: {theta_l_layers: [score_none, score_option], outer: payment, solver: cg, iterations: 10, ...}
      credit: {action_embed_dim: 16, hidden_dim: 64, latent_dim: 16, kl_weight: 0.1, ...}

``ices:`` and ``relara:`` are ICESSettings and ReLaraSettings below, which policies.ices and policies.relara
rebuild from their model_config. Validated at the edge (ExperimentConfig.validate), before Ray starts, each
error naming the file and the YAML path of the field; theta^l's layer names are checked against the policy
network itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.cafe.config import CreditConfig, ImplicitGradConfig, PhiConfig
from rl_cs.errors import closest, require

CRITICS = ("ippo", "mappo")


@dataclass(frozen=True)
class CAFESettings:
    """CAFE and CA-noFE (paper 000 §4.3-4.6). Whether Newton fine-tuning is on is not a field: the method
    decides it (cafe: on, ca-nofe: off; rl_cs.experiment.shaping.cafe_config)."""

    critic: str = "ippo"
    """Base actor-critic: ippo (independent critics) or mappo (centralised critic V(o_i, s), policies.mappo)."""
    phi: PhiConfig = field(default_factory=PhiConfig)
    """phi's Eq. 14 updates and Eq. 19 fine-tuning."""
    implicit: ImplicitGradConfig = field(default_factory=ImplicitGradConfig)
    """The Eq. 14 hypergradient: theta^l and the inverse-HVP solver."""
    credit: CreditConfig = field(default_factory=CreditConfig)
    """The credit VAE (Eq. 4); its observation trunk has the model's sizes."""

    def validate(self, where: str, policy_model_config: dict) -> None:
        from policies.attention import AttentionActorCritic
        from policies.cafe.hypergradient import select_parameters

        require(self.critic in CRITICS, f"{where}.critic", f"unknown critic '{self.critic}'",
                closest(self.critic, CRITICS))
        self.phi.validate(f"{where}.phi")
        self.implicit.validate(f"{where}.implicit")
        self.credit.validate(f"{where}.credit")
        select_parameters(AttentionActorCritic(model_config=policy_model_config), self.implicit.theta_l_layers,
                          where=f"{where}.implicit.theta_l_layers")


@dataclass(frozen=True)
class ICESSettings:
    """ICES baseline (policies.ices): intrinsic reward weight and CVAE sizes. YAML: ``ices``."""

    beta: float = 1.0
    """Weight of the intrinsic reward 1 - exp(-KL) (in [0, 1)) added to the payment reward during training."""
    hidden_dim: int = 64
    latent_dim: int = 16
    action_embed_dim: int = 4
    """ICES: action embedding size 4."""
    mask_prob: float = 0.25
    """Probability of masking the own action while training the CVAE (learns the local prior)."""

    def validate(self, where: str) -> None:
        require(self.beta >= 0, f"{where}.beta", f"must be >= 0, got {self.beta}")
        for name in ("hidden_dim", "latent_dim", "action_embed_dim"):
            require(getattr(self, name) >= 1, f"{where}.{name}", "must be >= 1")
        require(0 < self.mask_prob < 1, f"{where}.mask_prob", "must be in (0, 1)")


@dataclass(frozen=True)
class ReLaraSettings:
    """ReLara baseline (policies.relara): the reward agent. YAML: ``relara``."""

    beta: float = 0.2
    """Weight of the proposed reward r_P in r_E + beta * r_P (ReLara default 0.2)."""
    hidden_dim: int = 64
    noise: float = 0.1
    """Std of the Gaussian exploration noise on r_P (clipped to [-1, 1])."""

    def validate(self, where: str) -> None:
        require(self.beta >= 0, f"{where}.beta", f"must be >= 0, got {self.beta}")
        require(self.hidden_dim >= 1, f"{where}.hidden_dim", "must be >= 1")
        require(self.noise >= 0, f"{where}.noise", "must be >= 0")
