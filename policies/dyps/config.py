"""DyPS settings: Table 6 of the paper (per scenario) as defaults, Appendix A.1's network sizes, and the
choices the paper leaves open (each marked). A YAML section ``dyps`` mirrors ``DyPSConfig``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from rl_cs.errors import closest, require

GROUP_POLICIES = ("ippo", "mappo")
"""How the M group policies are trained (Table 4: DyPS+IPPO, the paper's default, and DyPS+MAPPO)."""


@dataclass(frozen=True)
class DyPSConfig:
    """DyPS's own settings. Defaults: Table 6's LBF / RWARE columns (identical), Appendix A.1's sizes."""

    num_groups: int = 4
    """M, the number of groups (policy networks, "roles"); 1 <= M <= number of agents. The paper's best on
    Ride-Hailing (2) is 4 (Fig. 6a); it gives none for LBF/RWARE, so 4 here too (an assumption)."""
    group_policy: str = "ippo"
    """ippo (Table 2's DyPS) or mappo (Table 4), see GROUP_POLICIES."""
    use_vlstm: bool = True
    """False: the "w/o VLSTM" ablation (Table 3): groups from agent ids and CVAE roles only."""
    use_cvae: bool = True
    """False: the "w/o CVAE" ablation (Table 3): groups by an MLP on [I_n, h_n]; both False: "w/o Repr."."""
    # --- Table 6 ---------------------------------------------------------------------------------------
    training_steps: int = 1_000_000
    """Table 6 "Training steps" (env steps)."""
    batch_size: int = 256
    """Table 6 "Batch size"."""
    selector_actor_lr: float = 1e-5
    """Table 6 "Actor learning rate (Group Selection)" (Adam)."""
    selector_critic_lr: float = 1e-5
    """Table 6 "Critic learning rate (Group Selection)" (Adam)."""
    policy_actor_lr: float = 5e-4
    """Table 6 "Actor learning rate (Resource Allocation)" (Adam), the group policies."""
    policy_critic_lr: float = 5e-4
    """Table 6 "Critic learning rate (Resource Allocation)" (Adam)."""
    gamma: float = 0.99
    """Table 6 "Discount factor"."""
    clip_param: float = 0.2
    """Table 6 "Clip threshold (PPO)"."""
    lambda_: float = 0.95
    """Table 6 "Lambda factor (PPO)" (GAE)."""
    # --- Appendix A.1 ----------------------------------------------------------------------------------
    cvae_hidden: int = 64
    """CVAE encoder: one hidden layer of this width; decoder: two (A.1)."""
    cvae_latent: int = 16
    """Dimension of z_m (A.1)."""
    vlstm_hidden: int = 64
    """LSTM hidden size of the VLSTM, i.e. the size of h_n (A.1)."""
    vlstm_mlp_hidden: int = 64
    """VLSTM encoder/prior: one hidden layer; decoder: two (A.1)."""
    vlstm_latent: int = 16
    """Dimension of the VLSTM's z_t: not given in the paper; the CVAE's 16 (an assumption)."""
    # --- open choices ----------------------------------------------------------------------------------
    cvae_kl_weight: float = 1e-4
    """Weight of the KL term of Eq. 4. Eq. 4 has weight 1; the authors' code (algo/cvae_hrl.py final_loss)
    uses 1e-4, which keeps the M group latents apart (with weight 1 they collapse onto the prior)."""
    vlstm_kl_weight: float = 1.0
    """Weight of the KL term of Eq. 12 (1: the ELBO as written)."""
    representation_lr: float = 1e-3
    """Adam learning rate of the VLSTM and the CVAE: not in Table 6; the authors' code uses 1e-3 (CVAE)."""
    selector_entropy_coeff: float = 0.0
    """Entropy bonus of the group selector: none in §3.3 (the authors' code computes it but does not use it)."""
    history_episodes: int = 1
    """Past episodes of an agent's trajectory that the VLSTM reads for h_n at the next episode's start."""

    def validate(self, where: str = "dyps", num_agents: int | None = None) -> "DyPSConfig":
        """Every field's range; with ``num_agents``, also M <= the number of agents."""
        require(self.num_groups >= 1, f"{where}.num_groups", f"M must be >= 1, got {self.num_groups}",
                "DyPS shares parameters within M >= 1 groups (M = 1 is plain parameter sharing)")
        if num_agents is not None:
            require(self.num_groups <= num_agents, f"{where}.num_groups",
                    f"M = {self.num_groups} groups is more than the {num_agents} agents of this world",
                    f"use 1 <= M <= {num_agents}")
        require(self.group_policy in GROUP_POLICIES, f"{where}.group_policy",
                f"unknown group policy '{self.group_policy}'", closest(str(self.group_policy), GROUP_POLICIES))
        for name in ("selector_actor_lr", "selector_critic_lr", "policy_actor_lr", "policy_critic_lr",
                     "representation_lr"):
            value = getattr(self, name)
            require(math.isfinite(value) and 0 < value <= 1, f"{where}.{name}",
                    f"a learning rate must be in (0, 1], got {value}", "Table 6 uses 1e-5 to 1e-3")
        require(0 < self.gamma <= 1, f"{where}.gamma", f"must be in (0, 1], got {self.gamma}")
        require(0 < self.clip_param <= 1, f"{where}.clip_param", f"must be in (0, 1], got {self.clip_param}")
        require(0 <= self.lambda_ <= 1, f"{where}.lambda_", f"must be in [0, 1], got {self.lambda_}")
        for name in ("training_steps", "batch_size", "cvae_hidden", "cvae_latent", "vlstm_hidden",
                     "vlstm_mlp_hidden", "vlstm_latent", "history_episodes"):
            require(getattr(self, name) >= 1, f"{where}.{name}", f"must be >= 1, got {getattr(self, name)}")
        for name in ("cvae_kl_weight", "vlstm_kl_weight", "selector_entropy_coeff"):
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, f"{where}.{name}",
                    f"must be a finite number >= 0, got {value}")
        return self


TABLE6 = {
    # scenario: (training_steps, batch_size, selector lr (actor = critic), policy lr (actor = critic), gamma)
    "lbf1": (1_000_000, 256, 1e-5, 5e-4, 0.99),
    "lbf2": (1_000_000, 256, 1e-5, 5e-4, 0.99),
    "rware1": (1_000_000, 256, 1e-5, 5e-4, 0.99),
    "rware2": (1_000_000, 256, 1e-5, 5e-4, 0.99),
    "ridehailing1": (30_000, 1024, 1e-4, 1e-3, 0.97),
    "ridehailing2": (30_000, 1024, 1e-4, 1e-3, 0.97),
    "medical": (100_000, 512, 1e-5, 1e-4, 0.99),
}
"""DyPS Table 6 per scenario (Adam everywhere; clip 0.2 and GAE lambda 0.95 in every column)."""


def table6(scenario: str, where: str = "scenario") -> DyPSConfig:
    """DyPSConfig with Table 6's column for ``scenario`` (keys of TABLE6)."""
    require(scenario in TABLE6, where, f"no Table 6 column '{scenario}'", closest(scenario, TABLE6))
    steps, batch, selector_lr, policy_lr, gamma = TABLE6[scenario]
    return dataclasses.replace(DyPSConfig(), training_steps=steps, batch_size=batch, selector_actor_lr=selector_lr,
                               selector_critic_lr=selector_lr, policy_actor_lr=policy_lr,
                               policy_critic_lr=policy_lr, gamma=gamma)
