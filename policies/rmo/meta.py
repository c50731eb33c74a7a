"""RMO's meta-gradients (paper 001, "Collaborative Policy Optimization" and "Utility Combination Parameter
Optimization"), as pure functions of tensors so that tests can check them against finite differences.

Notation (losses are minimised; J = -L is the objective the paper maximises):

- Eq. 4: J(theta) = E[min(psi A, clip(psi, 1 - eps, 1 + eps) A)], psi = pi_theta / pi_theta_old, A the
  sparse-reward advantages (MAPPO's clipped surrogate).
- Eq. 5: theta-hat's objective J(theta-hat) has the same form on the shaped-reward advantages A-hat with
  psi-hat = pi_theta-hat / pi_theta: theta constrains theta-hat, and J(theta-hat) depends on theta.
- Eq. 6-7: theta-hat's SGD step f(omega, theta-hat, theta) = -(mu_f / 2) grad_theta-hat L-hat (the paper's
  f, with its factor 1/2) depends on theta through psi-hat. The meta-gradient of theta is the chain rule
  through that step, with the outer gradient grad_theta-hat J(theta-hat) at theta-hat (Eq. 6 as written):
      meta = (d f / d theta)^T g = -(mu_f / 2) (d^2 L-hat / d theta d theta-hat) g,   g = grad_theta-hat L-hat,
  a Hessian-vector product: -(mu_f / 2) grad_theta (grad_theta-hat L-hat . stopgrad(g)), by double backward.
- Eq. 8: theta's update direction grad L(theta) + xi meta (policies.rmo.learner).
- Eq. 14-19: Delta eta = -mu_eta g . grad_eta f, grad_eta f = (df/du)(du/deta) with df/du replaced by df/dr
  = -(mu_f / 2) d/dtheta-hat (dJ/dA . dA/dr), dA/dr = 1 (Eq. 18). Contracted with g, each matched row t gives
  c_t = g . d(grad_theta-hat L-hat)/dA-hat_t = d/dA-hat_t (grad L-hat . stopgrad(g)) -- the same double
  backward, differentiated by the advantages -- and
      Delta eta = -mu_eta (-(mu_f / 2)) sum_t c_t du_t/deta = (mu_eta mu_f / 2) sum_t c_t du_t/deta,
  with du/dalpha = beta u_skill + (1 - beta) u_dist - u_time and du/dbeta = alpha (u_skill - u_dist) (Eq. 12-13),
  then alpha and beta clipped to [0, 1]. Since g . f = -(mu_f / 2) |g|^2, eta climbs the first-order gain of
  theta-hat's step, |g|^2 (mu_f / 2), through the utilities of the pairs the matching made; c_t (the sign of
  a row's shaped advantage, for a lone row) says whether a higher reward there would have helped.
The sign of L vs J does not matter for c_t or meta: both are quadratic in g.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


MAX_LOG_RATIO = 20.0
"""Numerical guard: log psi is clamped to +-20 (psi up to 5e8) before exp. Eq. 5's psi-hat compares two different
policies, and where theta gives the taken action almost no probability, an unclamped psi-hat overflows float32
(seen in training: a NaN eta); within the bound nothing changes."""


def clipped_surrogate(log_ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """Eq. 4 / Eq. 5: mean over rows of min(psi A, clip(psi, 1 - eps, 1 + eps) A), psi = exp(log_ratio)."""
    ratio = torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    return torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages).mean()


@dataclass
class MetaTerms:
    loss_hat: torch.Tensor
    """L-hat = -J(theta-hat) (Eq. 5), detached."""
    grad_hat: list
    """g = grad_theta-hat L-hat, one tensor per theta-hat parameter, detached: theta-hat's own gradient."""
    meta: list
    """The meta-gradient of theta (Eq. 6-7), one tensor per theta parameter, detached."""
    advantage_weights: torch.Tensor
    """c_t = d/dA-hat_t (grad_theta-hat L-hat . g) per row (Eq. 16-18 contracted with g), detached."""


def meta_terms(logp_theta: torch.Tensor, logp_hat: torch.Tensor, advantages_hat: torch.Tensor,
               theta_params: list, hat_params: list, clip: float, inner_lr: float) -> MetaTerms:
    """L-hat (Eq. 5), its gradient g, theta's meta-gradient (Eq. 6-7) and the rows' c_t (Eq. 16-18).

    ``logp_theta`` and ``logp_hat`` are log pi(a_t | o_t) of the taken actions under theta and theta-hat, with
    their graphs to ``theta_params`` and ``hat_params``; ``advantages_hat`` the shaped-reward advantages.
    The graphs of ``logp_theta`` and ``logp_hat`` are retained (theta's own loss backpropagates later)."""
    advantages = advantages_hat.detach().clone().requires_grad_(True)
    loss_hat = -clipped_surrogate(logp_hat - logp_theta, advantages, clip)
    grads = torch.autograd.grad(loss_hat, hat_params, create_graph=True, retain_graph=True, allow_unused=True)
    grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, hat_params)]
    inner = sum((g * g.detach()).sum() for g in grads if g.requires_grad)
    if not torch.is_tensor(inner) or not inner.requires_grad:  # nothing depends on theta (e.g. all rows clipped)
        return MetaTerms(loss_hat.detach(), [g.detach() for g in grads], [torch.zeros_like(p) for p in theta_params],
                         torch.zeros_like(advantages))
    second = torch.autograd.grad(inner, [*theta_params, advantages], retain_graph=True, allow_unused=True)
    scale = -0.5 * inner_lr
    meta = [scale * s if s is not None else torch.zeros_like(p) for s, p in zip(second[:-1], theta_params)]
    weights = second[-1] if second[-1] is not None else torch.zeros_like(advantages)
    return MetaTerms(loss_hat.detach(), [g.detach() for g in grads], [m.detach() for m in meta], weights.detach())


def utility_partials(utility: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """(N, 2): du/dalpha, du/dbeta of u = alpha beta u_skill + alpha (1 - beta) u_dist + (1 - alpha) u_time
    (Eq. 12-13), from the rows' [u_skill, u_dist, u_time] (N, 3)."""
    u_skill, u_dist, u_time = utility.unbind(-1)
    return torch.stack([beta * u_skill + (1.0 - beta) * u_dist - u_time, alpha * (u_skill - u_dist)], dim=-1)


def eta_gradient(advantage_weights: torch.Tensor, utility: torch.Tensor, matched: torch.Tensor, alpha: float,
                 beta: float, inner_lr: float) -> torch.Tensor:
    """g . grad_eta f (Eq. 15-19, dA/dr = 1): -(mu_f / 2) sum over matched rows of c_t du_t/deta, (2,)."""
    partials = utility_partials(utility.to(advantage_weights.dtype), alpha, beta)
    terms = torch.where(matched.bool().unsqueeze(-1), advantage_weights.unsqueeze(-1) * partials,
                        torch.zeros_like(partials))  # unmatched rows contribute exactly 0, whatever their c_t
    return -0.5 * inner_lr * terms.sum(dim=0)


def eta_step(alpha: float, beta: float, gradient: torch.Tensor, eta_lr: float) -> tuple[float, float]:
    """Eq. 14: eta <- eta - mu_eta (g . grad_eta f), alpha and beta kept in [0, 1]; a non-finite gradient
    leaves eta unchanged (the learner counts such steps)."""
    if not bool(torch.isfinite(gradient).all()):
        return alpha, beta
    new = torch.tensor([alpha, beta], dtype=gradient.dtype) - eta_lr * gradient
    new = new.clamp(0.0, 1.0)
    return float(new[0]), float(new[1])
