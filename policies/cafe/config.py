"""CAFE's three settings, each defined once: phi (PhiConfig), the Eq. 14 gradient (ImplicitGradConfig) and
the credit VAE (CreditConfig). The YAML ``cafe:`` section (rl_cs.experiment.shaping_config.CAFESettings)
nests them as ``cafe.phi``, ``cafe.implicit`` and ``cafe.credit``; the learner and the credit RLModule
rebuild the same classes from their model/learner config dicts.

Only fields a user chooses live here. What follows from elsewhere is passed separately:
- whether Newton fine-tuning is on follows from the method (cafe: on, ca-nofe: off):
  ``FinetuneSchedule(config, finetune=...)``;
- the credit VAE's input width and action count follow from the world and the model:
  ``CreditModel(config, obs_dim=..., num_actions=...)``.

Validation is ``validate(where)``, not ``__post_init__``: rl_cs.config.from_dict builds these from YAML
before the file name is known, so construction accepts anything and ExperimentConfig.validate reports a bad
field with its file and YAML path (``tune_configs/x.yaml: cafe.phi.phi_lr``). The RLlib side validates again
when it builds (``where`` defaults to the YAML path without the file).

Torch-free, so that loading an experiment YAML does not import torch. The package's __init__ re-exports
nothing, for the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rl_cs.errors import closest, require

SOLVERS = ("cg", "neumann")


@dataclass(frozen=True)
class PhiConfig:
    """How phi is trained (Eq. 14 updates) and fine-tuned (Eq. 19, CAFE only). YAML: ``cafe.phi``."""

    eta: float = 1.0
    """Reward scale eta of Eq. 6: the redistributed return should equal eta times the platform payments."""
    phi_lr: float = 1e-3
    """Adam rate of the Eq. 14 phi updates (1e-3 in §5.1)."""
    phi_init: tuple[float, float] = (1.0, 0.0)
    """Initial (phi_1, phi_2) of Eq. 5."""
    finetune_after: int = 100
    """Eq. 14 updates (one per PPO minibatch) before Newton fine-tuning (Eq. 19) may switch on (CAFE only;
    >= 1: fine-tuning cannot start before any phi training)."""
    tolerance: float = 1e-2
    """phi counts as converged when ||phi_k - phi_{k-1}|| / max(||phi_{k-1}||, 1e-8) < tolerance (Adam moves
    each entry by about phi_lr per update, so this must exceed phi_lr / |phi| to be reachable) ..."""
    patience: int = 5
    """... for this many consecutive Eq. 14 updates (Algorithm 1, line 5)."""
    newton_damping: float = 1e-4
    """Levenberg damping of Eq. 19, relative to the Hessian's mean diagonal; 0 for a pure Newton step."""

    def validate(self, where: str = "cafe.phi") -> None:
        require(self.eta > 0, f"{where}.eta", f"must be > 0, got {self.eta}")
        require(self.phi_lr > 0, f"{where}.phi_lr", f"the update rate of phi must be > 0, got {self.phi_lr}")
        require(isinstance(self.phi_init, (list, tuple)) and len(self.phi_init) == 2
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.phi_init),
                f"{where}.phi_init", f"must be two finite numbers [phi_1, phi_2], got {self.phi_init}")
        require(self.finetune_after >= 1, f"{where}.finetune_after",
                f"fine-tuning cannot be switched on before any phi training (got {self.finetune_after})",
                "set finetune_after >= 1 (CA-noFE never fine-tunes, whatever its value)")
        require(self.tolerance > 0, f"{where}.tolerance", f"must be > 0, got {self.tolerance}")
        require(self.patience >= 1, f"{where}.patience", f"must be >= 1, got {self.patience}")
        require(self.newton_damping >= 0, f"{where}.newton_damping", f"must be >= 0, got {self.newton_damping}")


@dataclass(frozen=True)
class ImplicitGradConfig:
    """Settings of the Eq. 14 hypergradient. YAML: ``cafe.implicit``."""

    theta_l_layers: tuple[str, ...] = ("score_none", "score_option")
    """theta^l: names (module or parameter name prefixes) of the actor's last layers; the default names
    those of policies.attention.AttentionActorCritic (checked against the network by CAFESettings.validate)."""
    solver: str = "cg"
    """Inverse-Hessian-vector product solver: "cg" (conjugate gradient) or "neumann" (Neumann series)."""
    iterations: int = 10
    """Hessian-vector products per solve."""
    damping: float = 1e-3
    """lambda in (-H + lambda I): regularises a singular or indefinite Hessian."""
    cg_tolerance: float = 1e-6
    """CG stops when the residual norm falls below this fraction of the right-hand side's norm."""
    neumann_scale: float = 0.1
    """alpha in (A)^-1 b ~ alpha sum_k (I - alpha A)^k b; needs alpha < 2 / largest eigenvalue of A."""

    def validate(self, where: str = "cafe.implicit") -> None:
        require(isinstance(self.theta_l_layers, (list, tuple))
                and all(isinstance(n, str) for n in self.theta_l_layers),
                f"{where}.theta_l_layers", f"must be a list of layer names, got {self.theta_l_layers!r}")
        require(len(self.theta_l_layers) > 0, f"{where}.theta_l_layers", "is empty",
                "name at least one of the actor's last layers")
        require(self.solver in SOLVERS, f"{where}.solver", f"unknown solver '{self.solver}'",
                closest(self.solver, SOLVERS))
        require(self.iterations >= 1, f"{where}.iterations", f"must be >= 1, got {self.iterations}")
        require(self.damping >= 0, f"{where}.damping", f"must be >= 0, got {self.damping}")
        require(self.cg_tolerance > 0, f"{where}.cg_tolerance", f"must be > 0, got {self.cg_tolerance}")
        require(self.neumann_scale > 0, f"{where}.neumann_scale", f"must be > 0, got {self.neumann_scale}")


@dataclass(frozen=True)
class CreditConfig:
    """Sizes and loss weights of the credit VAE (Eq. 4). YAML: ``cafe.credit``. Its input width (the
    observation trunk's output) and action count are not chosen here: CreditModel receives them."""

    action_embed_dim: int = 16
    """Width of the own-action and neighbour-action embeddings."""
    hidden_dim: int = 64
    """Width of the encoder and decoder MLPs."""
    latent_dim: int = 16
    """Width of z_rho."""
    kl_weight: float = 0.1
    """beta in loss = -log p(y|z) + beta * KL[q || N(0, I)]. 1 is Eq. 4's plain ELBO, but on the CSC world
    (50 workers, 4 iterations of tune_configs/cafe_quick.yaml) it collapsed the posterior (KL to the prior
    5e-4) and with it CMI (mean 0.03 -> 3e-4), leaving r(phi) ~ phi_2 per decision; 0.1 kept the latent in
    use (KL ~0.5, CMI mean 0.58)."""
    recon_std: float = 1.0
    """Standard deviation sigma of the Gaussian likelihood p(sum rho | z), in units of the batch-standardised
    revenue target."""
    no_action_prob: float = 0.25
    """Probability of replacing a_t^i by the no-action token during training, so that the token
    learns q(z | o_t, a_{t,o}^{-i}) (the second term of Eq. 3)."""

    def validate(self, where: str = "cafe.credit") -> None:
        for name in ("action_embed_dim", "hidden_dim", "latent_dim"):
            require(getattr(self, name) >= 1, f"{where}.{name}", f"must be >= 1, got {getattr(self, name)}")
        require(self.kl_weight >= 0, f"{where}.kl_weight", f"must be >= 0, got {self.kl_weight}")
        require(self.recon_std > 0, f"{where}.recon_std", f"must be > 0, got {self.recon_std}")
        require(0 <= self.no_action_prob < 1, f"{where}.no_action_prob",
                f"must be in [0, 1), got {self.no_action_prob}")
