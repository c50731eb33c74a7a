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
OUTERS = ("payment", "inner")


REDISTRIBUTIONS = ("mix", "weights")
CMI_SPLITS = ("cmi", "cmi_x_work")


@dataclass(frozen=True)
class PhiConfig:
    """How phi is trained (Eq. 14 updates) and fine-tuned (Eq. 19, CAFE only). YAML: ``cafe.phi``.

    The reward phi parametrises is paid only out of realised payments (policies.cafe.credit module docstring),
    so that no reward can be collected by choosing tau_0 more often."""

    eta: float = 1.0
    """Reward scale eta of Eq. 6: the redistributed return should equal eta times the platform payments."""
    redistribution: str = "mix"
    """How r(phi) of Eq. 5 splits each completed task's payment among its contributors:
    "mix": r = phi_1 * (payment split in proportion to CMI) + phi_2 * (the world's split by work done), so
    L_Lambda (Eq. 6) pins phi_1 + phi_2 = eta and the outer objective chooses the mix;
    "weights": r = eta * (payment split in proportion to max(phi_1 CMI + phi_2, weight_floor)), which sums to
    eta times the payments for every phi (L_Lambda = 0 by construction)."""
    cmi_split: str = "cmi_x_work"
    """What the CMI split weighs each contributor by: "cmi_x_work" (max(CMI, eps) x its work, so a CMI that
    carries no information gives back the world's split by work) or "cmi" (max(CMI, eps) alone: equal CMI,
    equal share, however little the contributor worked). Chosen by measurement: policies.cafe.credit."""
    weight_floor: float = 1e-3
    """eps of the "weights" split (and of the CMI split of "mix"): a contributor's weight is at least this,
    so a task whose contributors all have CMI ~ 0 is split evenly rather than by 0/0."""
    phi_lr: float = 1e-3
    """Adam rate of the Eq. 14 phi updates (1e-3 in §5.1)."""
    phi_init: tuple[float, float] = (1.0, 0.0)
    """Initial (phi_1, phi_2) of Eq. 5."""
    phi_bounds: tuple[float, float] = (0.0, 10.0)
    """[low, high] for each entry of phi: after every update (Eq. 14 or Eq. 19) phi is clipped into this box
    (projected ascent). Non-negative by default: a negative phi would pay a contributor for a smaller CMI
    or for less work."""
    finetune_after: int = 5
    """Training iterations (train batches) of CA-noFE before Newton fine-tuning (Eq. 19) may start (CAFE only;
    >= 1). Algorithm 1, line 5 and §5.2: fine-tuning starts once CA-noFE training has stabilised."""
    tolerance: float = 0.01
    """The training revenue (payments per env step of each train batch) has plateaued when it has not beaten
    its best so far by more than this fraction ..."""
    patience: int = 3
    """... for this many consecutive training iterations (Algorithm 1, line 5; >= 1)."""
    newton_damping: float = 1.0
    """kappa of the pull-back (kappa / 2) ||phi - phi_hat||^2 added to L_Lambda in Eq. 15-19, so the Newton
    step solves (H + kappa I) step = g; phi_hat is the phi the Eq. 14 updates reached (the pre-fine-tuning
    phi). L_Lambda is normalised (policies.cafe.regulariser), so kappa is on the same scale as its Hessian;
    0 is the plain Newton step of Eq. 19."""
    finetune_buffer: int = 256
    """Trajectories (episode chunks) in the rolling buffer that the Newton step fits phi on (Eq. 15-19 "over
    multi-trajectory"): the newest batches' trajectories replace the oldest."""

    def validate(self, where: str = "cafe.phi") -> None:
        require(self.eta > 0, f"{where}.eta", f"must be > 0, got {self.eta}")
        require(self.redistribution in REDISTRIBUTIONS, f"{where}.redistribution",
                f"unknown redistribution '{self.redistribution}'", closest(str(self.redistribution), REDISTRIBUTIONS))
        require(self.cmi_split in CMI_SPLITS, f"{where}.cmi_split", f"unknown cmi_split '{self.cmi_split}'",
                closest(str(self.cmi_split), CMI_SPLITS))
        require(self.weight_floor > 0, f"{where}.weight_floor", f"must be > 0, got {self.weight_floor}")
        require(self.phi_lr > 0, f"{where}.phi_lr", f"the update rate of phi must be > 0, got {self.phi_lr}")
        require(_two_finite(self.phi_init), f"{where}.phi_init",
                f"must be two finite numbers [phi_1, phi_2], got {self.phi_init}")
        require(_two_finite(self.phi_bounds), f"{where}.phi_bounds",
                f"must be two finite numbers [low, high], got {self.phi_bounds}")
        low, high = self.phi_bounds
        require(low < high, f"{where}.phi_bounds", f"inverted or empty: low {low} must be < high {high}",
                "write [low, high], e.g. [0.0, 10.0]")
        require(all(low <= v <= high for v in self.phi_init), f"{where}.phi_init",
                f"{list(self.phi_init)} lies outside phi_bounds [{low}, {high}]")
        require(self.finetune_after >= 1, f"{where}.finetune_after",
                f"fine-tuning cannot be switched on before any training iteration (got {self.finetune_after})",
                "set finetune_after >= 1 (CA-noFE never fine-tunes, whatever its value)")
        require(self.tolerance > 0, f"{where}.tolerance", f"must be > 0, got {self.tolerance}")
        require(self.patience >= 1, f"{where}.patience", f"the plateau patience must be >= 1 iteration, "
                f"got {self.patience}")
        require(self.newton_damping >= 0, f"{where}.newton_damping",
                f"the fine-tuning damping (pull-back) must be >= 0, got {self.newton_damping}")
        require(self.finetune_buffer >= 1, f"{where}.finetune_buffer", f"must be >= 1, got {self.finetune_buffer}")


def _two_finite(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


@dataclass(frozen=True)
class ImplicitGradConfig:
    """Settings of the Eq. 14 hypergradient. YAML: ``cafe.implicit``."""

    theta_l_layers: tuple[str, ...] = ("score_none", "score_option")
    """theta^l: names (module or parameter name prefixes) of the actor's last layers; the default names
    those of policies.attention.AttentionActorCritic (checked against the network by CAFESettings.validate)."""
    outer: str = "payment"
    """J_out in the first two terms of Eq. 14. "payment": PPO's clipped surrogate on the advantages of the
    platform payments (eta rho, the true objective), so phi is judged by how the policy it induces earns;
    "inner": J_out = J, Eq. 14 literally (its implicit term vanishes at an inner optimum, Eq. 9)."""
    solver: str = "cg"
    """Inverse-Hessian-vector product solver: "cg" (conjugate gradient) or "neumann" (Neumann series)."""
    iterations: int = 10
    """Hessian-vector products per solve."""
    damping: float = 1e-3
    """lambda in (-H + lambda I): regularises a singular or indefinite Hessian. The first solve starts here and
    it is the floor of the adaptive damping (damping_decay)."""
    cg_tolerance: float = 1e-6
    """CG stops when the residual norm falls below this fraction of the right-hand side's norm."""
    neumann_scale: float = 0.1
    """alpha in (A)^-1 b ~ alpha sum_k (I - alpha A)^k b; needs alpha < 2 / largest eigenvalue of A."""
    damping_increases: int = 8
    """CG meeting non-positive curvature (-H not positive definite: J not locally concave in theta^l) raises
    the damping past that curvature and starts again, at most this many times; then the last iterate is used.
    Each solve logs the damping it ended with and how often it was raised (never a silent zero)."""
    damping_decay: float = 0.75
    """The damping is carried across solves (Levenberg-Marquardt style, our choice; the paper does not specify
    the solver's damping): each solve starts at the damping the previous one ended with, times this factor
    when the previous one needed no increase, never below ``damping``. 1 keeps a raised damping for good;
    smaller follows a Hessian that becomes concave faster but restarts more solves."""

    def validate(self, where: str = "cafe.implicit") -> None:
        require(isinstance(self.theta_l_layers, (list, tuple))
                and all(isinstance(n, str) for n in self.theta_l_layers),
                f"{where}.theta_l_layers", f"must be a list of layer names, got {self.theta_l_layers!r}")
        require(len(self.theta_l_layers) > 0, f"{where}.theta_l_layers", "is empty",
                "name at least one of the actor's last layers")
        require(self.outer in OUTERS, f"{where}.outer", f"unknown outer objective '{self.outer}'",
                closest(str(self.outer), OUTERS))
        require(self.solver in SOLVERS, f"{where}.solver", f"unknown solver '{self.solver}'",
                closest(self.solver, SOLVERS))
        require(self.iterations >= 1, f"{where}.iterations", f"must be >= 1, got {self.iterations}")
        require(self.damping >= 0, f"{where}.damping", f"must be >= 0, got {self.damping}")
        require(self.cg_tolerance > 0, f"{where}.cg_tolerance", f"must be > 0, got {self.cg_tolerance}")
        require(self.neumann_scale > 0, f"{where}.neumann_scale", f"must be > 0, got {self.neumann_scale}")
        require(self.damping_increases >= 0, f"{where}.damping_increases",
                f"must be >= 0, got {self.damping_increases}")
        require(0 < self.damping_decay <= 1, f"{where}.damping_decay",
                f"must be in (0, 1], got {self.damping_decay}")


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
