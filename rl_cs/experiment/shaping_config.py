"""Typed YAML sections of the learned reward-shaping methods: ``cafe:``, ``ices:``, ``relara:``.

Validated at the edge (ExperimentConfig.validate), before Ray starts: every CAFE field is checked by the
same dataclasses the learner uses (PhiConfig, ImplicitGradConfig, CreditConfig), and theta^l's layer names
against the policy network itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rl_cs.errors import closest, require

CRITICS = ("ippo", "mappo")


@dataclass(frozen=True)
class CreditSettings:
    """The credit VAE (policies.cafe.credit.CreditConfig, Eq. 4); its trunk has the model's sizes."""

    action_embed_dim: int = 16
    hidden_dim: int = 64
    latent_dim: int = 16
    kl_weight: float = 0.1
    """beta on Eq. 4's KL term. 1 is Eq. 4's plain ELBO, but on the CSC world (50 workers, 4 iterations of
    tune_configs/cafe_quick.yaml) it collapsed the posterior (KL to the prior 5e-4) and with it CMI (mean
    0.03 -> 3e-4), leaving r(phi) ~ phi_2 per decision; 0.1 kept the latent in use (KL ~0.5, CMI mean 0.58)."""
    recon_std: float = 1.0
    """In units of the batch-standardised revenue target."""
    no_action_prob: float = 0.25


@dataclass(frozen=True)
class CAFESettings:
    """CAFE and CA-noFE (paper 000 §4.3-4.6): phi (PhiConfig), the Eq. 14 gradient (ImplicitGradConfig), the VAE."""

    critic: str = "ippo"
    """Base actor-critic: ippo (independent critics) or mappo (centralised critic V(o_i, s), policies.mappo)."""
    eta: float = 1.0
    """Eq. 6: redistributed return should equal eta times the platform payments."""
    phi_lr: float = 1e-3
    """Adam rate of the Eq. 14 phi updates (§5.1: 1e-3)."""
    phi_init: list = field(default_factory=lambda: [1.0, 0.0])
    """(phi_1, phi_2) of Eq. 5 at the start."""
    finetune_after: int = 100
    """Eq. 14 updates (one per PPO minibatch) before Newton fine-tuning (Eq. 19) may switch on (CAFE only; >= 1)."""
    tolerance: float = 1e-2
    """phi has converged when its relative change per update stays below this (Adam moves each entry by about
    phi_lr per update, so this must exceed phi_lr / |phi| to be reachable) ..."""
    patience: int = 5
    """... for this many consecutive updates (Algorithm 1, line 5)."""
    newton_damping: float = 1e-4
    """Levenberg damping of the Eq. 19 step."""
    theta_l_layers: list = field(default_factory=lambda: ["score_none", "score_option"])
    """theta^l: the actor's last layers (names in policies.attention.AttentionActorCritic)."""
    solver: str = "cg"
    """Inverse-HVP solver: cg or neumann."""
    solver_iterations: int = 10
    """Hessian-vector products per solve."""
    damping: float = 1e-3
    """lambda in (-H + lambda I)."""
    cg_tolerance: float = 1e-6
    neumann_scale: float = 0.1
    credit: CreditSettings = field(default_factory=CreditSettings)

    def phi(self, finetune: bool):
        from policies.cafe.finetune import PhiConfig

        return PhiConfig(eta=self.eta, phi_lr=self.phi_lr, phi_init=tuple(self.phi_init), finetune=finetune,
                         finetune_after=self.finetune_after, tolerance=self.tolerance, patience=self.patience,
                         newton_damping=self.newton_damping)

    def implicit(self):
        from policies.cafe.hypergradient import ImplicitGradConfig

        return ImplicitGradConfig(theta_l_layers=tuple(self.theta_l_layers), solver=self.solver,
                                  iterations=self.solver_iterations, damping=self.damping,
                                  cg_tolerance=self.cg_tolerance, neumann_scale=self.neumann_scale)

    def validate(self, where: str, policy_model_config: dict) -> None:
        from policies.attention import AttentionActorCritic
        from policies.cafe.credit import CreditConfig
        from policies.cafe.hypergradient import select_parameters

        require(self.critic in CRITICS, f"{where}.critic", f"unknown critic '{self.critic}'",
                closest(self.critic, CRITICS))
        require(isinstance(self.phi_init, (list, tuple)), f"{where}.phi_init", "must be a list [phi_1, phi_2]")
        require(isinstance(self.theta_l_layers, (list, tuple)) and all(isinstance(n, str) for n in self.theta_l_layers),
                f"{where}.theta_l_layers", "must be a list of layer names")
        self.phi(finetune=True)
        self.implicit()
        CreditConfig(obs_dim=1, num_actions=2, **dataclasses.asdict(self.credit))
        select_parameters(AttentionActorCritic(model_config=policy_model_config), self.theta_l_layers,
                          where=f"{where}.theta_l_layers")


@dataclass(frozen=True)
class ICESSettings:
    """ICES baseline (policies.ices): intrinsic reward weight and CVAE sizes."""

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
    """ReLara baseline (policies.relara): the reward agent."""

    beta: float = 0.2
    """Weight of the proposed reward r_P in r_E + beta * r_P (ReLara default 0.2)."""
    hidden_dim: int = 64
    noise: float = 0.1
    """Std of the Gaussian exploration noise on r_P (clipped to [-1, 1])."""

    def validate(self, where: str) -> None:
        require(self.beta >= 0, f"{where}.beta", f"must be >= 0, got {self.beta}")
        require(self.hidden_dim >= 1, f"{where}.hidden_dim", "must be >= 1")
        require(self.noise >= 0, f"{where}.noise", "must be >= 0")
