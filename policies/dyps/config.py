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
    # --- Table 6 (Group Selection columns; the Resource Allocation columns -- PPO's lr, gamma, clip, lambda,
    # batch size, training steps -- are the experiment's ``training`` section, shared with every baseline so
    # that all methods train alike: rl_cs.experiment.gridworlds_config.GridworldTraining) ---------------
    selector_actor_lr: float = 1e-5
    """Table 6 "Actor learning rate (Group Selection)" (Adam)."""
    selector_critic_lr: float = 1e-5
    """Table 6 "Critic learning rate (Group Selection)" (Adam)."""
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
    history_steps: int = 50
    """The VLSTM reads the last ``history_steps`` steps of an agent's previous episode for h_n at the next
    episode's start (the paper: the "complete trajectory history"; capped so that RWARE's 500-step episodes
    cost 50 LSTM steps, an assumption; LBF's episodes are 50 steps, read whole). Also the window length of
    the VLSTM's training sequences."""
    representation_batch: int = 256
    """(state, action) pairs per CVAE step and agent-steps per VLSTM step (Table 6's batch size, 256)."""
    return_scale: float = 1.0
    """The group selector's one-step reward is R x return_scale, R the episode's reward summed over all agents
    (§3.3; 1: R as is, the LBF / RWARE setting). Not in the paper; a world whose R runs to hundreds sets it so
    that R x return_scale is of the order its critic can reach at Table 6's learning rate."""
    representation_steps: int = 4
    """ELBO steps of the VLSTM and of the CVAE per training iteration, each on a fresh random batch of the
    iteration's trajectories (not in the paper, which updates both once per episode)."""

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
        for name in ("selector_actor_lr", "selector_critic_lr", "representation_lr"):
            value = getattr(self, name)
            require(math.isfinite(value) and 0 < value <= 1, f"{where}.{name}",
                    f"a learning rate must be in (0, 1], got {value}", "Table 6 uses 1e-5 to 1e-3")
        for name in ("cvae_hidden", "cvae_latent", "vlstm_hidden", "vlstm_mlp_hidden", "vlstm_latent",
                     "history_steps", "representation_batch", "representation_steps"):
            require(getattr(self, name) >= 1, f"{where}.{name}", f"must be >= 1, got {getattr(self, name)}")
        require(math.isfinite(self.return_scale) and self.return_scale > 0, f"{where}.return_scale",
                f"must be a finite number > 0, got {self.return_scale}", "1 uses the episode's reward as is")
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
    """DyPSConfig with Table 6's Group Selection learning rates for ``scenario`` (keys of TABLE6)."""
    require(scenario in TABLE6, where, f"no Table 6 column '{scenario}'", closest(scenario, TABLE6))
    selector_lr = TABLE6[scenario][2]
    return dataclasses.replace(DyPSConfig(), selector_actor_lr=selector_lr, selector_critic_lr=selector_lr)


def table6_training(scenario: str, where: str = "scenario") -> dict:
    """Table 6's Resource Allocation columns for ``scenario`` as training settings: PPO's Adam lr (actor =
    critic), gamma, clip 0.2, GAE lambda 0.95, minibatch = Table 6's batch size, and its training env steps."""
    require(scenario in TABLE6, where, f"no Table 6 column '{scenario}'", closest(scenario, TABLE6))
    steps, batch, _, policy_lr, gamma = TABLE6[scenario]
    return {"lr": policy_lr, "gamma": gamma, "clip_param": 0.2, "lambda_": 0.95, "minibatch_size": batch,
            "training_steps": steps}
