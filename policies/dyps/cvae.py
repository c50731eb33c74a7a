"""CVAE for group roles (DyPS §3.2.1, Eq. 4; Fig. 3): encodes the behaviour of each group's policy network
m into a latent role z_m, learned from the (state, action) pairs that network produced.

How the lost symbols are read (paper text, Fig. 3 and the authors' algo/cvae.py):

* encoder q(z_m | I(m)): the input is the identification of policy network m only (the authors' code: an
  embedding of the group index, ReLU, a linear layer to (mu, log sigma^2));
* decoder p(a | s, z_m): the state s "bypasses the encoder and can only be received by the decoder", so z_m
  can hold only what is particular to the policy itself;
* prior p(z_m) = N(0, I);
* Eq. 4:  ELBO_m = E_{q(z_m | m)} log p(a | s, z_m) - KL(q(z_m | m) || p(z_m)).

Sizes (Appendix A.1): encoder one 64-unit hidden layer, decoder two, latent 16. The action likelihood is a
categorical over the world's discrete actions (the authors regress the policy's action probabilities with
an MSE/BCE criterion; pass probabilities as soft targets to do the same in cross-entropy form). The KL
term is weighted (``kl_weight``; Eq. 4 has 1, the authors' code 1e-4; see DyPSConfig.cvae_kl_weight).
The group role handed to the selector is the encoder mean mu(m) (the authors' ``encode`` returns mu).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from policies.dyps.vlstm import _split
from policies.sharing.modules import mlp


class GroupCVAE(nn.Module):
    """``GroupCVAE(num_groups, state_dim, num_actions)``."""

    def __init__(self, num_groups: int, state_dim: int, num_actions: int, hidden: int = 64, latent: int = 16):
        super().__init__()
        self.num_groups, self.state_dim, self.num_actions, self.latent = num_groups, state_dim, num_actions, latent
        self.encoder = nn.Sequential(nn.Embedding(num_groups, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = mlp([latent + state_dim, hidden, hidden, num_actions])

    def posterior(self, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | m): (mu, log sigma^2) for integer group ids ``groups`` (...,)."""
        return _split(self.encoder(groups.long()))

    def roles(self) -> torch.Tensor:
        """z_m for every group, (M, latent): the posterior means, detached (inputs of the selector)."""
        with torch.no_grad():
            return self.posterior(torch.arange(self.num_groups))[0]

    def elbo(self, groups: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
             kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per sample (B,): ELBO (KL weighted), log p(a | s, z) for one reparameterised z ~ q(z | m), and KL.
        ``actions``: integer actions (B,) or action probabilities (B, A) (soft targets)."""
        mu, logvar = self.posterior(groups)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decoder(torch.cat([z, states], -1))
        log_probs = F.log_softmax(logits, -1)
        if actions.dtype.is_floating_point and actions.dim() == states.dim():
            reconstruction = (actions * log_probs).sum(-1)
        else:
            reconstruction = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        kl = 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(-1)
        return reconstruction - kl_weight * kl, reconstruction, kl

    def loss(self, groups: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
             kl_weight: float = 1.0) -> torch.Tensor:
        """-ELBO of Eq. 4 (KL weighted by ``kl_weight``), averaged over the batch."""
        return -self.elbo(groups, states, actions, kl_weight)[0].mean()

    @torch.no_grad()
    def action_probs(self, groups: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """p(a | s, z = mu(m)): what the CVAE believes group m's policy does in ``states``."""
        return F.softmax(self.decoder(torch.cat([self.posterior(groups)[0], states], -1)), -1)
