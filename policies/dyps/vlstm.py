"""VLSTM (DyPS §3.2.2, Eq. 5-12; Fig. 4): a variational LSTM -- the VRNN of Chung et al. (2015) with an LSTM
cell -- over one agent's trajectory history, whose last hidden state is the agent's role embedding h_n.

How the lost symbols are read (paper text + Fig. 4):

* The trajectory is T_n = {x_0, a_0, x_1, a_1, ..., x_{t-1}, a_{t-1}, x_t} with x_t = (s_t, r_t) the
  "state-reward pair". We take r_t to be the reward received on entering s_t (the reward of a_{t-1};
  r_0 = 0), so the pair predicted at step t is "the next state and reward" after the last action, as
  §3.2.2 says ("the generation model predicts the state-reward pair x_{t+1} = (s_{t+1}, r_{t+1})").
* Eq. 5-6 (prior):       [mu_0t, sigma_0t^2] = phi_prior(h_{t-1}),  z_t ~ N(mu_0t, sigma_0t^2)
* Eq. 7-8 (generation):  [mu_xt, sigma_xt^2] = phi_dec(z_t, h_{t-1}), x_t | z_t ~ N(mu_xt, sigma_xt^2)
  (the paper indexes the generated pair t+1 relative to the hidden state h_{t-1}; here h_{t-1} has read
  everything up to a_{t-1}, and x_t is the pair that follows it: the same thing, one index apart)
* Eq. 9 (recurrence):    h_t = LSTM(h_{t-1}; x_t, a_t, z_t)
* Eq. 10-11 (inference): [mu_zt, sigma_zt^2] = phi_enc(x_t, h_{t-1}), z_t | x_t ~ N(mu_zt, sigma_zt^2)
* Eq. 12 (ELBO):         sum_t [ -KL(q(z_t | x_<=t, a_<t) || p(z_t | x_<t, a_<t)) + E_q log p(x_t | z_<=t, x_<t) ]

Sizes (Appendix A.1): LSTM hidden 64; encoder an MLP with one 64-unit hidden layer; decoder an MLP with two.
Simplifications (marked): the prior network, not described, is an MLP like the encoder; the latent size,
not given, is 16 (the CVAE's); no feature extractors phi_x / phi_z before the LSTM (the paper draws none);
the decoder's Gaussian has a diagonal, learned log-variance clamped to [-8, 8]; the loss is the negative
ELBO averaged over valid steps (not summed), so its scale does not grow with the history length.
The role embedding h_n is the hidden state after the last valid step, computed with z_t = mu_zt (no
sampling), so the group selector sees a deterministic h_n; the agent id is appended by the selector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from policies.sharing.modules import mlp

LOGVAR_RANGE = (-8.0, 8.0)


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)), summed over the last dimension."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


def gaussian_log_likelihood(x, mu, logvar) -> torch.Tensor:
    """log N(x; mu, e^logvar), summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / logvar.exp()).sum(-1)


def _split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu, logvar = params.chunk(2, dim=-1)
    return mu, logvar.clamp(*LOGVAR_RANGE)


@dataclass
class VLSTMOutput:
    role: torch.Tensor
    """(B, H): the hidden state after each sequence's last valid step (h_n)."""
    elbo: torch.Tensor
    """(B,): Eq. 12 summed over each sequence's valid steps."""
    reconstruction: torch.Tensor
    """(B,): the log-likelihood part of the ELBO (summed over valid steps)."""
    kl: torch.Tensor
    """(B,): the KL part of the ELBO (summed over valid steps)."""
    steps: torch.Tensor
    """(B,): valid steps per sequence."""


def trajectory_pairs(states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, num_actions: int,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The VLSTM's inputs from one episode per row: ``states`` (B, T+1, S) s_0..s_T, ``actions`` (B, T)
    integer a_0..a_{T-1}, ``rewards`` (B, T) r of each action. Returns x (B, T+1, S+1) with x_t = (s_t,
    reward received on entering s_t; 0 at t = 0) and a (B, T+1, A) one-hot a_t (zeros after the last action)."""
    batch, length = states.shape[0], states.shape[1]
    entering = torch.cat([torch.zeros(batch, 1, dtype=states.dtype), rewards.to(states.dtype)], dim=1)
    x = torch.cat([states, entering.unsqueeze(-1)], dim=-1)
    a = torch.zeros(batch, length, num_actions, dtype=states.dtype)
    a[:, :-1] = F.one_hot(actions.long(), num_actions).to(states.dtype)
    return x, a


class VLSTM(nn.Module):
    """``VLSTM(pair_dim, action_dim)``: x_t of size ``pair_dim`` (state + reward), a_t of ``action_dim``."""

    def __init__(self, pair_dim: int, action_dim: int, hidden: int = 64, mlp_hidden: int = 64, latent: int = 16):
        super().__init__()
        self.pair_dim, self.action_dim, self.hidden, self.latent = pair_dim, action_dim, hidden, latent
        self.prior = mlp([hidden, mlp_hidden, 2 * latent])                              # Eq. 5
        self.decoder = mlp([latent + hidden, mlp_hidden, mlp_hidden, 2 * pair_dim])     # Eq. 7
        self.encoder = mlp([pair_dim + hidden, mlp_hidden, 2 * latent])                 # Eq. 10
        self.cell = nn.LSTMCell(pair_dim + action_dim + latent, hidden)                 # Eq. 9

    def forward(self, x: torch.Tensor, a: torch.Tensor, mask: torch.Tensor | None = None,
                sample: bool = True, kl_weight: float = 1.0) -> VLSTMOutput:
        """Run over x (B, L, pair_dim) and a (B, L, action_dim); ``mask`` (B, L) marks valid steps (a valid
        prefix per row; default all). ``sample``: z_t drawn from q (training, reparameterised) or its mean."""
        batch, length, _ = x.shape
        mask = torch.ones(batch, length, dtype=torch.bool) if mask is None else mask.bool()
        h = x.new_zeros(batch, self.hidden)
        c = x.new_zeros(batch, self.hidden)
        reconstruction = x.new_zeros(batch)
        kl = x.new_zeros(batch)
        for t in range(length):
            x_t, a_t, valid = x[:, t], a[:, t], mask[:, t]
            mu_0, logvar_0 = _split(self.prior(h))                                    # Eq. 5
            mu_z, logvar_z = _split(self.encoder(torch.cat([x_t, h], -1)))            # Eq. 10
            z = mu_z + torch.randn_like(mu_z) * (0.5 * logvar_z).exp() if sample else mu_z   # Eq. 11
            mu_x, logvar_x = _split(self.decoder(torch.cat([z, h], -1)))              # Eq. 7
            reconstruction = reconstruction + torch.where(valid, gaussian_log_likelihood(x_t, mu_x, logvar_x), 0)
            kl = kl + torch.where(valid, gaussian_kl(mu_z, logvar_z, mu_0, logvar_0), 0)
            h_new, c_new = self.cell(torch.cat([x_t, a_t, z], -1), (h, c))           # Eq. 9
            h = torch.where(valid.unsqueeze(-1), h_new, h)
            c = torch.where(valid.unsqueeze(-1), c_new, c)
        return VLSTMOutput(role=h, elbo=reconstruction - kl_weight * kl, reconstruction=reconstruction, kl=kl,
                           steps=mask.sum(1))

    def loss(self, x: torch.Tensor, a: torch.Tensor, mask: torch.Tensor | None = None,
             kl_weight: float = 1.0) -> torch.Tensor:
        """-ELBO (Eq. 12, KL weighted by ``kl_weight``) per valid step, averaged over the batch."""
        out = self(x, a, mask, sample=True, kl_weight=kl_weight)
        return -(out.elbo.sum() / out.steps.sum().clamp(min=1))

    @torch.no_grad()
    def role(self, x: torch.Tensor, a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """h_n (B, hidden): the hidden state after each history's last valid step, z_t = its posterior mean."""
        return self(x, a, mask, sample=False).role
