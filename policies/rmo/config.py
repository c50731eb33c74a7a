"""RMO's settings (paper 001, Table 1 and "Implementation Details"): the YAML section ``rmo`` of a DASC
experiment, shared by RMO and REC. Its ``training`` subsection holds the RLlib settings (the shared
TrainingSettings: gamma 0.99, lambda 0.95, epsilon 0.2 = clip_param and mu_theta 1e-3 = lr are Table 1's),
sampling and batch sizes. The world's Table 1 values (L^w, zeta, v_w, kappa, N^w, N^tau, |T|_min, |T|_max) and
eta's initial {alpha, beta} are the world's (``world.range_m``, ..., ``world.alpha``, ``world.beta``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rl_cs.errors import closest, require
from rl_cs.experiment.config import TrainingSettings

OPTIMIZERS = ("sgd", "adam")
SIGNALS = ("meta", "sparse", "shaped")
"""How theta learns (Fig. 5): meta -- Algorithm 1 (RMO); sparse -- theta alone on the sparse reward (plain MAPPO,
the paper's green curve); shaped -- theta alone on the shaped reward of Eq. 3 (the blue curve)."""


@dataclass(frozen=True)
class RMOConfig:
    """Dual-policy meta-gradients (Eq. 4-8), the eta meta-gradient (Eq. 14-19), and the network (Fig. 3)."""

    training: TrainingSettings = field(default_factory=TrainingSettings)
    """RLlib PPO settings of theta's training: Table 1's gamma, lambda, epsilon (clip_param) and mu_theta (lr,
    the SGD rate of theta and theta-hat), entropy bonus, batch sizes in subtask decisions, env runners."""
    training_signal: str = "meta"
    """meta (Algorithm 1: dual policies, meta-gradients, eta), or Fig. 5's ablations: sparse or shaped (theta
    alone, plain MAPPO on that reward; no theta-hat, eta fixed)."""
    xi_0: float = 1.0
    """xi_0 (Table 1): weight of the meta-gradient in theta's update, grad J(theta) + xi grad_theta J(theta-hat)
    (Eq. 8); xi = xi_0 x xi_decay^k after k training iterations, so it approaches 0 as the paper asks."""
    xi_decay: float = 0.99
    """Per-iteration decay factor of xi (the paper gives none; 0.99 halves xi in about 70 iterations)."""
    chi: float = 1e-3
    """chi (Table 1): the soft-update coefficient of Algorithm 1 (line 13), theta <- chi theta^n + (1 - chi) theta
    for each agent n. Composed over the N agent decisions of a minibatch (each theta^n one SGD step from the
    same theta) it moves theta by 1 - (1 - chi)^N of the mean step: the actor gradients are scaled by that."""
    inner_lr: float = 1e-3
    """mu_f of Eq. 7 and 16-19: the SGD learning rate of theta-hat's differentiable step
    f = -(mu_f / 2) grad L-hat (Table 1's mu_theta)."""
    critic_lr: float = 1e-3
    """mu_phi (Table 1): the critic's learning rate (Eq. 20); the critic is not soft-updated."""
    eta_lr: float = 1e-4
    """mu_eta (Table 1): learning rate of the eta meta-gradient step (Eq. 14)."""
    learn_eta: bool = True
    """Update eta = {alpha, beta} by Eq. 14 each minibatch (RMO). REC matches greedily and never learns eta."""
    optimizer: str = "sgd"
    """Optimizer of theta, theta-hat and the critic: sgd (the paper: "We employ the SGD optimizer for training
    all models") or adam."""
    grad_clip: float = 1.0
    """Global gradient-norm clip per optimizer (0: none); the paper's code clips to 1."""
    gat_hidden: int = 16
    """Width per head of the first GATConv layer over the task's DAG (the paper's code: 16)."""
    gat_heads: int = 4
    """Attention heads of the first GATConv layer (the paper's code: 8)."""
    gat_out: int = 16
    """Width of the second (single-head) GATConv layer: the subtask's DAG embedding (the paper's code: 16)."""
    mlp_hidden: int = 128
    """Width of the actor's MLP over [DAG embedding, own features, top-k workers, top-k subtasks] (Fig. 3)."""
    gru_hidden: int = 32
    """Hidden width of each of the critic's two GRUs (workers, subtasks) and of its MLP (Fig. 3)."""

    def validate(self, where: str = "rmo") -> "RMOConfig":
        self.training.validate(f"{where}.training")
        for name in ("xi_0", "xi_decay", "chi", "inner_lr", "critic_lr", "eta_lr", "grad_clip"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and math.isfinite(value), f"{where}.{name}",
                    f"must be a finite number, got {value!r}")
        require(self.xi_0 >= 0, f"{where}.xi_0", f"must be >= 0, got {self.xi_0}",
                "xi scales the meta-gradient (Eq. 8); Table 1: 1")
        require(0 < self.xi_decay <= 1, f"{where}.xi_decay", f"must be in (0, 1], got {self.xi_decay}")
        require(0 < self.chi <= 1, f"{where}.chi", f"must be in (0, 1], got {self.chi}",
                "the soft-update coefficient of Algorithm 1; Table 1: 1e-3 (1: no soft update)")
        for name in ("inner_lr", "critic_lr"):
            require(getattr(self, name) > 0, f"{where}.{name}", f"must be > 0, got {getattr(self, name)}")
        require(self.eta_lr >= 0, f"{where}.eta_lr", f"must be >= 0, got {self.eta_lr}", "Table 1: 1e-4")
        require(self.grad_clip >= 0, f"{where}.grad_clip", f"must be >= 0 (0: none), got {self.grad_clip}")
        require(self.training_signal in SIGNALS, f"{where}.training_signal",
                f"unknown training signal '{self.training_signal}'", closest(str(self.training_signal), SIGNALS))
        require(self.optimizer in OPTIMIZERS, f"{where}.optimizer", f"unknown optimizer '{self.optimizer}'",
                closest(str(self.optimizer), OPTIMIZERS))
        for name in ("gat_hidden", "gat_heads", "gat_out", "mlp_hidden", "gru_hidden"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"{where}.{name}", f"must be an integer >= 1, got {value!r}")
        return self

    def xi(self, iteration: int) -> float:
        """xi after ``iteration`` training iterations (Eq. 8)."""
        return self.xi_0 * self.xi_decay ** iteration

    def soft_update_scale(self, agents: int) -> float:
        """1 - (1 - chi)^N: how far Algorithm 1's per-agent soft updates over N agents move theta, as a share
        of the mean per-agent step."""
        return 1.0 - (1.0 - self.chi) ** max(int(agents), 0)
