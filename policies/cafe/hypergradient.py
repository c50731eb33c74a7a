"""CAFE's bi-level phi gradient with implicit differentiation (§4.4, Eq. 7-14).

Inner level: the actor's last layers theta^l maximise J(theta^l, phi) (the PPO surrogate on the
redistributed rewards r(phi) of Eq. 5). Outer level: phi maximises F(phi) = J(theta^*(phi), phi) - L_Lambda(phi).
At an inner optimum dJ/dtheta = 0 (Eq. 9); differentiating that in phi (Eq. 10-11) gives
dtheta/dphi = -H^-1 d2J/(dtheta dphi) with H = d2J/dtheta^l2 (Eq. 12), hence Eq. 14:

    dF/dphi ~ dJ/dphi - dJ/dtheta^l H^-1 d2J/(dtheta^l dphi) - dL_Lambda/dphi.

The signs are the standard implicit-function-theorem ones, read directly from Eq. 11-13.
H^-1 is never formed: we solve (-H + damping I) w = dJ_out/dtheta^l with Hessian-vector products
(conjugate gradient or a Neumann series); -H is positive semi-definite near a maximum of J, and
then the implicit term -dJ/dtheta^l H^-1 d2J/(dtheta^l dphi) equals d/dphi (w . dJ/dtheta^l).

An optional separate outer objective J_out may be given; without it J_out = J, which is Eq. 14 literally.
With J_out = J the implicit term vanishes at an exact inner optimum (dJ/dtheta = 0 there, Eq. 9) and the
direct term dJ/dphi only rewards inflating r(phi), so CAFE's learner passes J_out = PPO's surrogate on the
platform payments' advantages (ImplicitGradConfig.outer = "payment"): it does not depend on phi, the direct
term is 0, and dF/dphi = -dJ_out/dtheta^l H^-1 d2J/(dtheta^l dphi) - dL_Lambda/dphi asks how a change of
phi moves the policy's optimum and whether that move earns more payments.

-H is not positive definite away from a maximum of J; the CG solve then raises its damping instead of
stopping at the first non-positive curvature with whatever iterate it had (before issue 9 that was often
exactly zero, and the implicit term with it): see inverse_hvp. The damping is carried from one solve to the
next (next_damping, Levenberg-Marquardt style), so that a solve rarely has to restart: our choice, the paper
does not say how its inverse-Hessian-vector product is damped or solved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn

from policies.cafe.config import ImplicitGradConfig
from policies.cafe.finite import check_finite
from rl_cs.errors import InputError, closest

Objective = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]
"""J(theta_l, phi) -> scalar, to be maximised; must compute with the given tensors (e.g. via
torch.func.functional_call), since they are fresh leaves, not the module's own parameters."""


class Solve(NamedTuple):
    """(A + damping I)^-1 b and how it was obtained (logged by the learner)."""

    solution: torch.Tensor
    damping: float
    """The damping the solve ended with (the one it started at, or more after non-positive curvature): the
    returned x solves (A + damping I) x = b."""
    increases: int
    """How often non-positive curvature made CG raise the damping and start again."""
    iterations: int
    """Matrix-vector products of the last attempt."""
    residual: float
    """||b - (A + damping I) x|| / ||b|| of the returned x (0 when b = 0); for CG its recursive residual."""
    products: int = 0
    """Matrix-vector products of all attempts together (the solve's cost)."""


@dataclass(frozen=True)
class Hypergradient:
    """dF/dphi of Eq. 14 (`total`, to be ascended) and its three terms, all detached, shape of phi."""

    total: torch.Tensor
    direct: torch.Tensor
    """dJ/dphi, the explicit dependence (first term of Eq. 14)."""
    implicit: torch.Tensor
    """-dJ/dtheta^l H^-1 d2J/(dtheta^l dphi) (second term of Eq. 14)."""
    regulariser: torch.Tensor
    """dL_Lambda/dphi (third term of Eq. 14, subtracted)."""
    solve: Solve | None = None
    """How the inverse-Hessian-vector product was solved (its solution is omitted: it is theta^l-sized)."""


def select_parameters(module: nn.Module, layers: Sequence[str],
                      where: str = "cafe.implicit.theta_l_layers") -> dict[str, nn.Parameter]:
    """theta^l: the parameters of `module` whose name is, or starts with, one of `layers` + ".".

    Raises InputError naming `where` for a name that matches nothing, with the valid names.
    The returned names are those of module.named_parameters(), ready for torch.func.functional_call.
    """
    params = dict(module.named_parameters())
    valid = {".".join(name.split(".")[:k]) for name in params for k in range(1, name.count(".") + 2)}
    selected: dict[str, nn.Parameter] = {}
    for layer in layers:
        if layer not in valid:
            raise InputError(where, f"unknown layer '{layer}'", closest(layer, valid))
        selected.update({name: p for name, p in params.items() if name == layer or name.startswith(layer + ".")})
    return selected


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iterations: int,
                       tolerance: float) -> tuple[torch.Tensor, float | None, int, float]:
    """Solve A x = b for symmetric positive definite A, given only x -> A x.

    Returns (x, rayleigh, products, residual): stops early at a relative residual below ``tolerance``; or,
    meeting a direction p of non-positive curvature (p'Ap <= 0: A is not positive definite there), returns the
    iterate so far and rayleigh = p'Ap / p'p (else None), so that the caller can raise the damping and solve
    again. ``residual`` is ||r|| / ||b|| (0 when b = 0) for CG's recursive residual r: r_0 = b - A x_0 with
    x_0 = 0, and each step updates x by alpha p and r by -alpha A p, so r = b - A x exactly in exact arithmetic
    for the returned x (also at non-positive curvature, where neither moved). In floating point it drifts from
    the true residual only near rounding level (relative ~1e-7 in float32), far below what it is logged for,
    and it saves the extra matrix-vector product an explicit check would cost.
    """
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    bb = float(rr)
    stop = (tolerance * b.norm()) ** 2
    products = 0
    rayleigh = None
    for _ in range(iterations):
        if rr <= stop:
            break
        ap = matvec(p)
        products += 1
        curvature = p @ ap
        if curvature <= 0:
            rayleigh = float(curvature / (p @ p).clamp_min(1e-30))
            break
        alpha = rr / curvature
        x, r = x + alpha * p, r - alpha * ap
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    residual = (float(rr) / bb) ** 0.5 if bb > 0 else 0.0
    return x, rayleigh, products, residual


def neumann_series(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                   iterations: int, scale: float) -> torch.Tensor:
    """A^-1 b ~ scale * sum_{k=0}^{iterations} (I - scale A)^k b, converging when scale * eig(A) in (0, 2)."""
    term, total = b, b
    for _ in range(iterations):
        term = term - scale * matvec(term)
        total = total + term
    return scale * total


def raised_damping(damping: float, rayleigh: float) -> float:
    """The damping after CG met curvature ``rayleigh`` <= 0 of A + damping I: past that curvature by as much
    again (so the direction becomes positive), and at least doubled (at least 1e-6 from 0)."""
    return max(2.0 * damping, damping - 2.0 * rayleigh, 1e-6)


def inverse_hvp(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                config: ImplicitGradConfig, damping: float | None = None) -> Solve:
    """(A + damping I)^-1 b with the solver chosen by config; every product is checked for NaN/inf.

    ``damping`` is where the solve starts (default config.damping; the learner passes next_damping of its
    previous solve). CG never returns a silent zero: at non-positive curvature (A = -H is indefinite where J
    is not locally concave in theta^l, e.g. early in training) the damping is raised (raised_damping) and CG
    starts again, up to config.damping_increases times, a Levenberg-Marquardt-style trust region; the last
    attempt's iterate is returned with the damping it solved for, so the result is always the (truncated) CG
    solution of (A + Solve.damping I) x = b. The Neumann series has no such check (it diverges instead: keep
    neumann_scale below 2 / the largest eigenvalue) and its residual costs one more product.
    """
    def damped(damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda v: check_finite("Hessian-vector product", matvec(v)) + damping * v

    damping = float(config.damping if damping is None else damping)
    increases, total = 0, 0
    if config.solver == "cg":
        while True:
            x, rayleigh, products, residual = conjugate_gradient(damped(damping), b, config.iterations,
                                                                 config.cg_tolerance)
            total += products
            if rayleigh is None or increases >= config.damping_increases:
                break
            damping, increases = raised_damping(damping, rayleigh), increases + 1
    else:
        x, products = neumann_series(damped(damping), b, config.iterations, config.neumann_scale), config.iterations
        norm = float(b.norm())
        residual = float((b - damped(damping)(x)).norm()) / norm if norm > 0 else 0.0
        total = products + 1
    return Solve(x, damping, increases, products, residual, total)


def next_damping(config: ImplicitGradConfig, solve: Solve) -> float:
    """The damping the next solve starts at (Levenberg-Marquardt style, our choice: the paper does not say how
    its inverse-HVP is damped). After a solve that had to raise its damping, the damping it ended with (the
    curvature it met is likely still there on the next minibatch); after one that did not, that damping times
    config.damping_decay, but never below config.damping. So the damping follows the Hessian's most negative
    curvature down as training makes J locally concave, and a solve restarts only when the curvature got
    worse or the decay undershot, instead of climbing from config.damping again every time."""
    if solve.increases > 0:
        return solve.damping
    return max(float(config.damping), solve.damping * config.damping_decay)


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """theta^l as one vector, so the solvers see a single linear system."""
    return torch.cat([t.reshape(-1) for t in tensors])


def implicit_hypergradient(inner: Objective, theta_l: Sequence[torch.Tensor], phi: torch.Tensor,
                           config: ImplicitGradConfig,
                           regulariser: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           outer: Objective | None = None, damping: float | None = None) -> Hypergradient:
    """dF/dphi of Eq. 14 at (theta_l, phi), using Hessian-vector products of `inner` in theta_l only.

    inner        J(theta_l, phi), maximised by the actor (Eq. 7, inner level)
    theta_l      current values of the actor's last layers (copied: neither they nor phi get .grad)
    regulariser  phi -> L_Lambda(phi) (Eq. 6); omitted means no third term
    outer        J_out(theta_l, phi) for the first two terms of Eq. 14; omitted means J_out = inner
    damping      the damping the inverse-HVP solve starts at (inverse_hvp; omitted means config.damping).
                 The result is exact Eq. 14 with H replaced by H - Hypergradient.solve.damping I.
    Gradient ascent on F: phi <- phi + lr * total (for a torch optimiser, set phi.grad = -total).
    """
    phi = check_finite("phi", phi).detach().requires_grad_(True)
    theta = [t.detach().requires_grad_(True) for t in theta_l]

    j_inner = inner(theta, phi)
    grad_inner = _flat(torch.autograd.grad(j_inner, theta, create_graph=True))
    if outer is None:
        j_outer, grad_outer = j_inner, grad_inner.detach()
    else:
        j_outer = outer(theta, phi)
        grad_outer = _flat(torch.autograd.grad(j_outer, theta, retain_graph=True, materialize_grads=True)).detach()
    (direct,) = torch.autograd.grad(j_outer, phi, retain_graph=True, materialize_grads=True)

    def negative_hvp(v: torch.Tensor) -> torch.Tensor:  # v -> -H v, Eq. 12's Hessian without forming it
        return -_flat(torch.autograd.grad(grad_inner, theta, grad_outputs=v, retain_graph=True,
                                          materialize_grads=True))

    solve = inverse_hvp(negative_hvp, grad_outer, config, damping)
    (implicit,) = torch.autograd.grad(grad_inner @ solve.solution, phi, materialize_grads=True)

    reg = torch.zeros_like(phi)
    if regulariser is not None:
        (reg,) = torch.autograd.grad(regulariser(phi), phi, materialize_grads=True)

    terms = {"dJ/dphi": direct, "implicit term of Eq. 14": implicit, "dL_Lambda/dphi": reg}
    for where, term in terms.items():
        check_finite(where, term)
    return Hypergradient(total=(direct + implicit - reg).detach(), direct=direct.detach(),
                         implicit=implicit.detach(), regulariser=reg.detach(),
                        solve=solve._replace(solution=torch.empty(0)))
