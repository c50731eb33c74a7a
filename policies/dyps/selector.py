"""The group selection module (DyPS §3.3, Eq. 13; Alg. 1 lines 4-6 and 14): at the start of every episode
each agent n is assigned to one of M groups, and keeps that group (that policy network) to the episode's end.

Eq. 13, as read (the symbols are lost in the paper's text; the authors' algo/cvae_hrl.py ``actor_hrl``
computes ``softmax(elu(id_embedding(n)) @ u)`` with u the CVAE latents):

    P[n, m] = Softmax_m( [I_n, h_n]^T W z_m )

with I_n agent n's identity (one-hot over the N agents: W's id rows are then a learned id embedding), h_n
its VLSTM role embedding (policies.dyps.vlstm), z_m group m's CVAE role (policies.dyps.cvae) and W a
learned (N + H) x Z matrix. The group-selection MDP is one step (§3.3): state (I_n, h_n, z_1..z_M), action
the group, reward the episode's reward summed over all agents. h_n and z_m are the state: the selector's
loss never reaches the VLSTM or the CVAE (they learn from their ELBOs only, Alg. 1 lines 16-17), so they
are detached here.

Ablations (Table 3): without CVAE, logits = MLP([I_n, h_n]) ("decides the group via MLP, which takes in
representations obtained from VLSTM"); without VLSTM, [I_n]^T W z_m ("inner production of agent IDs and
CVAE representations"); without both, MLP(I_n).

The critic (not described in the paper; the authors' ``critic_hrl`` reads the id embedding and the CVAE
latents): V_n = MLP([I_n, h_n, z_1, ..., z_M]) with one 64-unit hidden layer, one value per agent.
Actor and critic have their own learning rates (Table 6), so their parameters are exposed separately.
W starts near zero, so the first assignments are uniformly random (§4.6: "Initially, group assignment is
random").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from policies.sharing.modules import mlp


class GroupSelector(nn.Module):
    """``GroupSelector(num_agents, num_groups, role_dim, latent)``: Eq. 13's actor and a one-step critic."""

    def __init__(self, num_agents: int, num_groups: int, role_dim: int = 64, latent: int = 16,
                 use_vlstm: bool = True, use_cvae: bool = True, hidden: int = 64, init_scale: float = 1e-3):
        super().__init__()
        self.num_agents, self.num_groups, self.role_dim, self.latent = num_agents, num_groups, role_dim, latent
        self.use_vlstm, self.use_cvae = use_vlstm, use_cvae
        self.feature_dim = num_agents + (role_dim if use_vlstm else 0)
        if use_cvae:
            self.W = nn.Parameter(torch.randn(self.feature_dim, latent) * init_scale)   # Eq. 13
        else:
            self.actor_mlp = mlp([self.feature_dim, hidden, num_groups])
            with torch.no_grad():  # near-uniform first assignments, as with W ~ 0
                self.actor_mlp[-1].weight.mul_(init_scale)
                self.actor_mlp[-1].bias.zero_()
        self.critic = mlp([self.feature_dim + (num_groups * latent if use_cvae else 0), hidden, 1])

    # ------------------------------------------------------------------ inputs
    def features(self, roles: torch.Tensor | None = None) -> torch.Tensor:
        """[I_n, h_n] for every agent: (..., N, feature_dim). ``roles``: h_n (..., N, H), detached here;
        without VLSTM only its leading (episode) dimensions are used, and it may be None."""
        identity = torch.eye(self.num_agents)
        if not self.use_vlstm:
            return identity if roles is None else identity.expand(*roles.shape[:-1], self.num_agents)
        require_shape(roles, self.num_agents, self.role_dim, "roles")
        roles = roles.detach()
        return torch.cat([identity.expand(*roles.shape[:-1], self.num_agents).to(roles.dtype), roles], -1)

    def _group_roles(self, group_roles: torch.Tensor | None) -> torch.Tensor:
        require_shape(group_roles, self.num_groups, self.latent, "group_roles")
        return group_roles.detach()

    # ------------------------------------------------------------------ actor
    def logits(self, roles: torch.Tensor | None = None, group_roles: torch.Tensor | None = None) -> torch.Tensor:
        """(..., N, M): [I_n, h_n]^T W z_m (Eq. 13), or the ablations' MLP."""
        u = self.features(roles)
        if not self.use_cvae:
            return self.actor_mlp(u.to(self.critic[0].weight.dtype))
        z = self._group_roles(group_roles)
        return (u.to(self.W.dtype) @ self.W) @ z.to(self.W.dtype).transpose(-1, -2)

    def probabilities(self, roles=None, group_roles=None) -> torch.Tensor:
        """P (..., N, M): each agent's distribution over the M groups (rows sum to 1)."""
        return F.softmax(self.logits(roles, group_roles), -1)

    def assign(self, roles=None, group_roles=None, generator: torch.Generator | None = None,
               deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One group per agent (Alg. 1 line 5): sampled from P (seeded by ``generator``) or its argmax.
        Returns (groups (..., N) int64, P)."""
        with torch.no_grad():
            probs = self.probabilities(roles, group_roles)
            if deterministic:
                return probs.argmax(-1), probs
            flat = probs.reshape(-1, self.num_groups)
            groups = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
        return groups, probs

    def actor_parameters(self) -> list[nn.Parameter]:
        return [self.W] if self.use_cvae else list(self.actor_mlp.parameters())

    # ------------------------------------------------------------------ critic
    def value(self, roles=None, group_roles=None) -> torch.Tensor:
        """V_n (..., N): the critic of the one-step MDP."""
        u = self.features(roles)
        if self.use_cvae:
            z = self._group_roles(group_roles).reshape(-1)
            u = torch.cat([u, z.expand(*u.shape[:-1], z.shape[-1]).to(u.dtype)], -1)
        return self.critic(u.to(self.critic[0].weight.dtype)).squeeze(-1)

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())


def require_shape(tensor: torch.Tensor | None, rows: int, columns: int, name: str) -> None:
    if tensor is None or tensor.shape[-2:] != (rows, columns):
        got = None if tensor is None else tuple(tensor.shape)
        raise ValueError(f"{name}: expected shape (..., {rows}, {columns}), got {got}")


@dataclass
class SelectorLoss:
    total: torch.Tensor
    """actor + critic - entropy_coeff * entropy (actor and critic parameters are disjoint, so one backward
    serves both optimizers)."""
    actor: torch.Tensor
    critic: torch.Tensor
    entropy: torch.Tensor
    advantage: torch.Tensor
    """(..., N): R - V_n, detached."""


def one_step_actor_critic_loss(logits: torch.Tensor, groups: torch.Tensor, episode_return: torch.Tensor,
                               values: torch.Tensor, entropy_coeff: float = 0.0) -> SelectorLoss:
    """The group selector's one-step actor-critic (§3.3; Alg. 1 line 14) on the transition (state, groups,
    reward). ``logits`` (..., N, M) from the episode's start, ``groups`` (..., N) the chosen groups,
    ``episode_return`` (...) the episode's reward summed over all agents (or (..., N) per agent), ``values``
    (..., N) the critic's V_n. Actor: -mean_n log P[n, g_n] (R - V_n) with the advantage detached (a
    policy-gradient step; the episode ends after the one action, so the TD target is R itself). Critic:
    mean_n (R - V_n)^2 / 2."""
    returns = episode_return.to(values.dtype)
    if returns.dim() < values.dim():
        returns = returns.unsqueeze(-1).expand_as(values)
    log_probs = F.log_softmax(logits, -1)
    chosen = log_probs.gather(-1, groups.long().unsqueeze(-1)).squeeze(-1)
    advantage = (returns - values).detach()
    actor = -(chosen * advantage.to(chosen.dtype)).mean()
    critic = 0.5 * ((returns - values) ** 2).mean()
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    return SelectorLoss(total=actor + critic - entropy_coeff * entropy, actor=actor, critic=critic,
                        entropy=entropy, advantage=advantage)
