"""DyPS's representation and selection modules for one world, built from a DyPSConfig (Alg. 1 line 1), and
the episode-start step (Alg. 1 lines 4-6): role embeddings h_n from each agent's last trajectory, group
roles z_m from the CVAE, a group per agent from Eq. 13. The group policies themselves are RLlib modules
(the wiring step); nothing here knows RLlib."""

from __future__ import annotations

import torch
from torch import nn

from policies.dyps.config import DyPSConfig
from policies.dyps.cvae import GroupCVAE
from policies.dyps.selector import GroupSelector
from policies.dyps.vlstm import VLSTM


class DyPSModules(nn.Module):
    """VLSTM (unless ablated), CVAE (unless ablated) and the group selector, sized by ``config`` for a world
    of ``num_agents`` agents with ``state_dim``-float observations and ``num_actions`` discrete actions."""

    def __init__(self, config: DyPSConfig, num_agents: int, state_dim: int, num_actions: int):
        super().__init__()
        config.validate("dyps", num_agents)
        self.config, self.num_agents, self.num_actions = config, num_agents, num_actions
        self.vlstm = VLSTM(state_dim + 1, num_actions, config.vlstm_hidden, config.vlstm_mlp_hidden,
                           config.vlstm_latent) if config.use_vlstm else None
        self.cvae = GroupCVAE(config.num_groups, state_dim, num_actions, config.cvae_hidden,
                              config.cvae_latent) if config.use_cvae else None
        self.selector = GroupSelector(num_agents, config.num_groups, config.vlstm_hidden, config.cvae_latent,
                                      config.use_vlstm, config.use_cvae)

    def state(self, x: torch.Tensor | None = None, a: torch.Tensor | None = None,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The selector's state (Alg. 1 line 4): h_n (N, H) from the agents' histories (x, a: (N, L, .),
        see vlstm.trajectory_pairs) and z_m (M, Z); None for an ablated part. Without a history yet (the
        first episode) h_n is the LSTM's initial state, zeros."""
        roles = None
        if self.vlstm is not None:
            roles = self.vlstm.role(x, a, mask) if x is not None else torch.zeros(self.num_agents, self.vlstm.hidden)
        return roles, (self.cvae.roles() if self.cvae is not None else None)

    def select(self, x=None, a=None, mask=None, generator: torch.Generator | None = None,
               deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Alg. 1 lines 4-5: (groups (N,), P (N, M)) for the next episode."""
        roles, group_roles = self.state(x, a, mask)
        return self.selector.assign(roles, group_roles, generator, deterministic)
