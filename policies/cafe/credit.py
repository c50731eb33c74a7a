"""CAFE's credit model: a VAE whose Bayesian surprise measures each agent's contribution (§4.3, Eq. 1-4), and
the redistributed reward r(phi) built from it (Eq. 5, reinterpreted: see "The redistributed reward" below).

The encoder q(z_rho | o_t, a_t^i, a_{t,o}^{-i}) sees an observation feature vector (any trunk's output,
e.g. the critic's attention embedding, as Fig. 5 suggests), agent i's own action and the actions of
the workers in its observation; the decoder predicts the summed revenue of the tasks completed near the
agent after its decision (the world's ``prev_near_revenue``: within 1.5 km and 10 minutes by default,
envs.csc_config.CSCConfig.credit_radius_m / credit_window_s, standardised over the train batch).
Agent i's credit is how much knowing a_t^i moves the posterior over z_rho (Eq. 3):

    CMI_t^i = KL[ q(z | o_t, a_t^i, a_{t,o}^{-i}) || q(z | o_t, a_{t,o}^{-i}) ].

"Removing" a_t^i means replacing it by a learned no-action token (one extra row of the own-action
embedding, as ICES does with index 0). During VAE training the own action is swapped for the token
with probability `no_action_prob`, so the same encoder also learns the posterior without a_t^i.

The redistributed reward
------------------------
Eq. 5 read literally, r_t^i = phi_1 CMI_t^i + phi_2 on every decision, pays a worker for every decision it
makes. In an event-driven world a worker that chooses tau_0 decides again one interval (30 s) later, while
one that takes a task is away for 10-20 minutes, so the number of rewarded steps depends on the policy and
Eq. 6's return equivalence fails: on the CSC world the tau_0 share rose from 24% to 57% and revenue fell
below a random policy's (issue 9; ../shared/DESIGN.md "Rewards in event-driven worlds").

Our reading pays only out of realised payments. Each completed task's payment rho (Eq. 6's "undivided
reward") is split among the decisions that contributed to it (the decision that sent the worker there;
its reward arrives with its next observation, as the world's own split reward does), and a decision that
contributed to nothing -- every tau_0 decision -- gets exactly 0. Two forms (PhiConfig.redistribution):

  "mix"      r_t^i = phi_1 * c_t^i + phi_2 * s_t^i,
             c_t^i = rho * v_i / sum_j v_j, v_i = max(CMI_t^i, eps) x work_i   (the CMI split: Eq. 3's credit),
             s_t^i = the world's split of rho by work done;
             Eq. 5's linear form with CMI_t^i -> c_t^i and the constant 1 -> s_t^i (the credit a contributor
             gets when CMI carries no information). sum_t r = (phi_1 + phi_2) sum_t rho for every trajectory,
             so L_Lambda (Eq. 6) pins phi_1 + phi_2 = eta and the outer objective chooses the mix.
  "weights"  r_t^i = eta * rho * w_t^i / sum_j w_t^j,  w = max(phi_1 CMI + phi_2, eps) (x work_i);
             sums to eta * sum_t rho for every phi: L_Lambda = 0 by construction, phi only sets the split.

The CMI split weighs each contributor by max(CMI, eps) x its work (PhiConfig.cmi_split = "cmi_x_work") or by
max(CMI, eps) alone ("cmi", the issue's literal candidate).

Which, by measurement (tune_configs/cafe_quick.yaml, CA-noFE, 6 iterations, seed 0, mean revenue on a
validation stream of seeds 777-779, never the evaluation stream; Greedy 549 there): mix + cmi_x_work 532,
mix + cmi 495, weights + cmi 483 (one seed: the first, untrained batch's revenue already varied by ~30
between these runs, so only the principle below makes the choice firm).
mix + cmi_x_work is the default: it is also the only reading in which an uninformative CMI gives back the
world's split (a late joiner who worked 2 minutes of a 20-minute task is not paid as much as its partner),
and in which L_Lambda still constrains phi (to phi_1 + phi_2 = eta); under "weights" it is 0 for every phi,
so the Newton step of Eq. 19 would have nothing to fit. On this world most tasks are shared
(contributors_per_task ~2.7 on the test world), so the split matters.

Either way, over an episode: (i) tau_0 rows are never rewarded, so the number and weight of rewarded steps
does not depend on how often a worker waits; (ii) the redistributed rewards sum to eta x the platform
payment (mix: (phi_1 + phi_2) x the payment). Tested in tests/test_cafe_invariants.py.

Simplifications: a task's contributors are those whose decision rows lie in the same train batch and
episode (a task finishing across a batch boundary is split among the contributors in each batch, each
batch keeping what the world paid its rows); CMI is the decision's CMI, not per task; a row carrying
several completions (not seen in the CSC world: a worker takes one task per decision) splits its reward
among them by payment x work.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Contributions:
    """Who contributed to which completed task, in a batch of N decision rows; M contributions, G tasks.

    row    (M,) long   the decision row of the contribution
    group  (M,) long   the completed task (one per (trajectory, task)), 0..G-1
    share  (M,) float  what the world paid that row for it (its split of the payment by work done)
    """

    row: torch.Tensor
    group: torch.Tensor
    share: torch.Tensor
    num_rows: int

    @property
    def num_groups(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0


def contributions(env_reward: torch.Tensor, segments: torch.Tensor, event_task: torch.Tensor,
                  event_weight: torch.Tensor, valid: torch.Tensor) -> Contributions:
    """The Contributions of a batch from the world's facts.

    env_reward    (N,) the world's reward of each row: its split of the payments it contributed to
    segments      (N,) the trajectory (episode) of each row
    event_task    (N, E) tasks completed with the row's contribution (-1: padding), from the world's events
    event_weight  (N, E) payment x work of each such completion (splits a row's reward among several tasks)
    valid         (N,) real decision rows
    A valid row with a reward but no event (a world reward that is not a task payment) is its own group, so
    every payment in the batch is redistributed and none is lost.
    """
    n = len(env_reward)
    present = (event_task >= 0) & valid[:, None]
    weight = torch.where(present, event_weight.to(env_reward.dtype).clamp_min(0), torch.zeros_like(env_reward[:, None]))
    count = present.sum(1, keepdim=True).to(env_reward.dtype)
    row_total = weight.sum(1, keepdim=True)
    fraction = torch.where(row_total > 0, weight / row_total.clamp_min(1e-30), present.to(env_reward.dtype) / count.clamp_min(1))
    rows, slots = present.nonzero(as_tuple=True)
    share = env_reward[rows] * fraction[rows, slots]
    task = event_task[rows, slots]
    orphans = (valid & ~present.any(1) & (env_reward != 0)).nonzero(as_tuple=True)[0]
    rows = torch.cat([rows, orphans])
    task = torch.cat([task, -1 - orphans])  # a unique negative id per orphan row
    share = torch.cat([share, env_reward[orphans]])
    keys = torch.stack([segments[rows].long(), task.long()], 1)
    group = torch.unique(keys, dim=0, return_inverse=True)[1] if len(rows) else rows
    return Contributions(row=rows, group=group.reshape(-1), share=share, num_rows=n)


def split_payments(parts: Contributions, weights: torch.Tensor, by_work: bool = False) -> torch.Tensor:
    """(N,) each row's part of the payments of the tasks it contributed to, each task's pot (the summed
    shares of its contributions) split in proportion to the rows' ``weights`` (N,), which must be > 0, times
    the contribution's world share (its work) if ``by_work``. Rows that contributed to nothing get 0. Sums to
    sum(parts.share) for any weights."""
    out = torch.zeros(parts.num_rows, dtype=weights.dtype, device=weights.device)
    if len(parts.row) == 0:
        return out
    g = parts.num_groups
    w = weights[parts.row]
    if by_work:  # a task paid nothing has no shares to weigh by: its (empty) pot is split by weight alone
        share = parts.share.to(weights.dtype).clamp_min(0)
        paid = torch.zeros(g, dtype=weights.dtype, device=weights.device).index_add(0, parts.group, share)
        w = torch.where(paid[parts.group] > 0, w * share, w)
    pot = torch.zeros(g, dtype=weights.dtype, device=weights.device).index_add(0, parts.group, parts.share.to(weights.dtype))
    total = torch.zeros(g, dtype=weights.dtype, device=weights.device).index_add(0, parts.group, w)
    return out.index_add(0, parts.row, pot[parts.group] * w / total[parts.group])


def redistribute(cmi: torch.Tensor, phi: torch.Tensor, parts: Contributions, eta: float, form: str = "mix",
                 floor: float = 1e-3, by_work: bool = False) -> torch.Tensor:
    """r(phi) (N,) of the module docstring (Eq. 5 as reinterpreted there), differentiable in phi (2,).

    mix:     phi_1 * split_payments(max(CMI, floor)) + phi_2 * (the world's split)
    weights: eta * split_payments(max(phi_1 CMI + phi_2, floor))
    by_work: the CMI weights are multiplied by each contributor's work (PhiConfig.cmi_split = "cmi_x_work").
    """
    check_finite("phi", phi)
    if form == "mix":
        world = torch.zeros(parts.num_rows, dtype=cmi.dtype, device=cmi.device).index_add(
            0, parts.row, parts.share.to(cmi.dtype))
        return phi[0] * split_payments(parts, cmi.clamp_min(floor), by_work) + phi[1] * world
    if form == "weights":
        return eta * split_payments(parts, (phi[0] * cmi + phi[1]).clamp_min(floor), by_work)
    raise ValueError(f"unknown redistribution '{form}'")


def reward_jacobian(cmi: torch.Tensor, phi: torch.Tensor, parts: Contributions, eta: float, form: str = "mix",
                    floor: float = 1e-3, by_work: bool = False) -> torch.Tensor:
    """d r / d phi (N, 2) at phi (forward-mode: two passes). For "mix" it is exactly (c, s), r being linear."""
    return torch.func.jacfwd(lambda p: redistribute(cmi, p, parts, eta, form, floor, by_work))(phi.detach())
