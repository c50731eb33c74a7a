"""CAFE's credit model: a VAE whose Bayesian surprise measures each agent's contribution (§4.3, Eq. 1-5).

The encoder q(z_rho | o_t, a_t^i, a_{t,o}^{-i}) sees an observation feature vector (any trunk's output,
e.g. the critic's attention embedding, as Fig. 5 suggests), agent i's own action and the actions of
the workers in its observation; the decoder predicts the summed revenue of the tasks near the agent.
Agent i's credit is how much knowing a_t^i moves the posterior over z_rho (Eq. 3):

    CMI_t^i = KL[ q(z | o_t, a_t^i, a_{t,o}^{-i}) || q(z | o_t, a_{t,o}^{-i}) ].

"Removing" a_t^i means replacing it by a learned no-action token (one extra row of the own-action
embedding, as ICES does with index 0). During VAE training the own action is swapped for the token
with probability `no_action_prob`, so the same encoder also learns the posterior without a_t^i.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from policies.cafe.config import CreditConfig
from policies.cafe.finite import check_finite

LOGVAR_LIMIT = 8.0  # keeps exp(logvar) finite, so KL and CMI stay finite for any encoder weights


class VAELoss(NamedTuple):
    """The negative ELBO of Eq. 4 and its two parts (batch means), for logging."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def gaussian_kl(mu_p: torch.Tensor, logvar_p: torch.Tensor,
                mu_q: torch.Tensor, logvar_q: torch.Tensor) -> torch.Tensor:
    """Closed-form KL[N(mu_p, diag e^logvar_p) || N(mu_q, diag e^logvar_q)], summed over the last dim.

    Used for Eq. 3 (posterior with vs without a_t^i) and for Eq. 4's KL to the N(0, I) prior.
    """
    var_ratio = torch.exp(logvar_p - logvar_q)
    mean_term = (mu_p - mu_q).pow(2) * torch.exp(-logvar_q)
    return 0.5 * (var_ratio + mean_term - 1.0 - (logvar_p - logvar_q)).sum(-1)


class CreditModel(nn.Module):
    """Encoder q(z_rho | o_t, a_t^i, a_{t,o}^{-i}) and decoder p(sum rho | z_rho) of §4.3.

    Inputs, batched over B (agent, time) samples:
      obs               (B, obs_dim) float   observation features o_t
      action            (B,) long            a_t^i in [0, num_actions], num_actions = no-action token
      neighbour_actions (B, K) long          actions of the K workers in the observation (padding: any value)
      neighbour_mask    (B, K) bool          True where a neighbour is present
    Neighbour actions are embedded and summed over present neighbours (a permutation-invariant set).

    obs_dim (width of o_t) and num_actions (size of the discrete action space, tau_0 .. tau_x; index
    num_actions is the no-action token) follow from the observation trunk and the world, so they are
    arguments here rather than CreditConfig fields.
    """

    def __init__(self, config: CreditConfig, obs_dim: int, num_actions: int):
        super().__init__()
        config.validate()
        if obs_dim < 1 or num_actions < 1:
            raise ValueError(f"CreditModel needs obs_dim >= 1 and num_actions >= 1, got {obs_dim}, {num_actions}")
        self.config = config
        self.no_action = num_actions
        self.own_action = nn.Embedding(num_actions + 1, config.action_embed_dim)
        self.neighbour_action = nn.Embedding(num_actions, config.action_embed_dim)
        self.encoder = nn.Sequential(
            nn.Linear(obs_dim + 2 * config.action_embed_dim, config.hidden_dim), nn.ReLU(),
            nn.Linear(config.hidden_dim, config.hidden_dim), nn.ReLU(),
            nn.Linear(config.hidden_dim, 2 * config.latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_dim), nn.ReLU(),
            nn.Linear(config.hidden_dim, 1),
        )

    def encode(self, obs: torch.Tensor, action: torch.Tensor, neighbour_actions: torch.Tensor,
               neighbour_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z_rho | o_t, a_t^i, a_{t,o}^{-i}), each (B, latent_dim)."""
        mask = neighbour_mask.unsqueeze(-1).to(obs.dtype)
        neighbours = (self.neighbour_action(neighbour_actions.clamp(0, self.no_action - 1)) * mask).sum(1)
        h = self.encoder(torch.cat([obs, self.own_action(action), neighbours], dim=-1))
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean of p(sum rho | z_rho): the predicted summed revenue of nearby tasks, shape (B,)."""
        return self.decoder(z).squeeze(-1)

    def loss(self, obs: torch.Tensor, action: torch.Tensor, neighbour_actions: torch.Tensor,
             neighbour_mask: torch.Tensor, revenue: torch.Tensor) -> VAELoss:
        """Negative ELBO of Eq. 4: (y - y_hat)^2 / (2 sigma^2) + beta * KL[q(z|.) || N(0, I)].

        With beta = kl_weight = 1 this is -J of Eq. 4 up to a constant (Gaussian log-likelihood with
        std recon_std, one reparameterised sample of z). Own actions are replaced by the no-action
        token with probability no_action_prob, which trains the second posterior of Eq. 3.
        """
        dropped = torch.rand(action.shape, device=action.device) < self.config.no_action_prob
        action = torch.where(dropped, torch.full_like(action, self.no_action), action)
        mu, logvar = self.encode(obs, action, neighbour_actions, neighbour_mask)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        reconstruction = 0.5 * ((self.decode(z) - revenue) / self.config.recon_std).pow(2).mean()
        kl = gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar)).mean()
        return VAELoss(reconstruction + self.config.kl_weight * kl, reconstruction, kl)

    def cmi(self, obs: torch.Tensor, action: torch.Tensor, neighbour_actions: torch.Tensor,
            neighbour_mask: torch.Tensor) -> torch.Tensor:
        """CMI_t^i of Eq. 3 for every sample, shape (B,): KL between the posterior with a_t^i and
        with a_t^i replaced by the no-action token. Both posteriors come from one batched encoder pass.

        Wrap in torch.no_grad() when the CMI is only used as a reward.
        """
        without = torch.full_like(action, self.no_action)
        mu, logvar = self.encode(obs.repeat(2, 1), torch.cat([action, without]),
                                 neighbour_actions.repeat(2, 1), neighbour_mask.repeat(2, 1))
        (mu_with, mu_without), (logvar_with, logvar_without) = mu.chunk(2), logvar.chunk(2)
        return check_finite("CMI", gaussian_kl(mu_with, logvar_with, mu_without, logvar_without))


def redistribute(cmi: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Redistributed reward of Eq. 5: r^i(phi) = phi_1 * CMI_t^i + phi_2, differentiable in phi (2,)."""
    check_finite("phi", phi)
    return phi[0] * cmi + phi[1]
