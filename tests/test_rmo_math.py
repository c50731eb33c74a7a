"""RMO's meta-gradients (policies/rmo/meta.py) on a tiny policy: theta's meta-gradient through theta-hat's
differentiable SGD step (Eq. 6-7) against finite differences, the advantage weights of the eta meta-gradient
(Eq. 16-18) likewise, the sign of the eta step (Eq. 14, 19) when one utility term dominates, and the
settings (Table 1 defaults, xi's decay, the soft-update scale, bad values)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from policies.rmo.config import RMOConfig
from policies.rmo.meta import clipped_surrogate, eta_gradient, eta_step, meta_terms, utility_partials
from rl_cs.errors import InputError

MU_F = 0.3  # a large inner step makes the second-order term visible; the identities hold for any value


@pytest.fixture(autouse=True)
def float64():
    """Finite differences in double precision, for this module's tests only."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def tiny(seed: int = 0, rows: int = 7, same_obs: bool = False):
    """Linear softmax policies theta and theta-hat over 3 features and 2 actions, a batch of decisions."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(rows, 3, generator=g)
    if same_obs:
        obs = obs[:1].expand(rows, 3).clone()
    theta = torch.randn(3, 2, generator=g) * 0.5
    hat = theta + 0.2 * torch.randn(3, 2, generator=g)
    actions = torch.randint(0, 2, (rows,), generator=g)
    advantages = torch.randn(rows, generator=g)
    return obs, theta, hat, actions, advantages


def logp(weights, obs, actions):
    return torch.log_softmax(obs @ weights, dim=-1).gather(1, actions.unsqueeze(1)).squeeze(1)


def loss_hat(theta, hat, obs, actions, advantages, clip):
    """L-hat(theta-hat; theta) = -J(theta-hat) of Eq. 5: ratio pi_theta-hat / pi_theta."""
    return -clipped_surrogate(logp(hat, obs, actions) - logp(theta, obs, actions), advantages, clip)


def terms(theta, hat, obs, actions, advantages, clip):
    theta, hat = theta.clone().requires_grad_(True), hat.clone().requires_grad_(True)
    return meta_terms(logp(theta, obs, actions), logp(hat, obs, actions), advantages, [theta], [hat], clip, MU_F)


@pytest.mark.parametrize("clip", [10.0, 0.2])  # no row clipped; some rows clipped (the min picks the clip)
def test_meta_gradient_equals_finite_differences_of_the_step_it_differentiates(clip):
    """Eq. 6-7: meta = (df/dtheta)^T g with f = -(mu_f / 2) grad_theta-hat L-hat(theta-hat; theta) and the outer
    gradient g = grad_theta-hat L-hat at theta-hat: the derivative of Phi(theta) = g . f(theta)."""
    obs, theta, hat, actions, advantages = tiny(seed=1)
    out = terms(theta, hat, obs, actions, advantages, clip)
    g = out.grad_hat[0]

    def phi(th):
        h = hat.clone().requires_grad_(True)
        grad = torch.autograd.grad(loss_hat(th, h, obs, actions, advantages, clip), h)[0]
        return float((g * (-0.5 * MU_F * grad)).sum())

    eps, fd = 1e-6, torch.zeros_like(theta)
    for index in range(theta.numel()):
        step = torch.zeros(theta.numel())
        step[index] = eps
        step = step.view_as(theta)
        fd.view(-1)[index] = (phi(theta + step) - phi(theta - step)) / (2 * eps)
    assert out.meta[0].abs().max() > 1e-6, "a meta-gradient of zero would make this test vacuous"
    assert torch.allclose(out.meta[0], fd, rtol=1e-5, atol=1e-9)
    # and g is theta-hat's own gradient (Eq. 5)
    h = hat.clone().requires_grad_(True)
    assert torch.allclose(g, torch.autograd.grad(loss_hat(theta, h, obs, actions, advantages, clip), h)[0])


def test_meta_gradient_is_the_first_order_derivative_through_the_actual_sgd_step():
    """For a small mu_f the meta-gradient matches d/dtheta L-hat(theta-hat - (mu_f / 2) grad L-hat(theta-hat;
    theta)) through the step alone (theta's own entry in the outer L-hat held fixed), to O(mu_f)."""
    obs, theta, hat, actions, advantages = tiny(seed=2)
    small = 1e-3
    th, h = theta.clone().requires_grad_(True), hat.clone().requires_grad_(True)
    out = meta_terms(logp(th, obs, actions), logp(h, obs, actions), advantages, [th], [h], 10.0, small)

    def outer(theta_):
        h0 = hat.clone().requires_grad_(True)
        grad = torch.autograd.grad(loss_hat(theta_, h0, obs, actions, advantages, 10.0), h0)[0]
        stepped = hat - 0.5 * small * grad
        return float(loss_hat(theta, stepped, obs, actions, advantages, 10.0))

    eps, fd = 1e-5, torch.zeros_like(theta)
    for index in range(theta.numel()):
        step = torch.zeros(theta.numel())
        step[index] = eps
        step = step.view_as(theta)
        fd.view(-1)[index] = (outer(theta + step) - outer(theta - step)) / (2 * eps)
    assert torch.allclose(out.meta[0], fd, rtol=5e-2, atol=1e-9)


def test_advantage_weights_equal_finite_differences():
    """Eq. 16-18 contracted with g: c_t = g . d(grad_theta-hat L-hat)/dA-hat_t."""
    obs, theta, hat, actions, advantages = tiny(seed=3)
    out = terms(theta, hat, obs, actions, advantages, 0.2)
    g = out.grad_hat[0]

    def contracted(adv):
        h = hat.clone().requires_grad_(True)
        return float((g * torch.autograd.grad(loss_hat(theta, h, obs, actions, adv, 0.2), h)[0]).sum())

    eps = 1e-6
    fd = torch.tensor([(contracted(advantages + eps * e) - contracted(advantages - eps * e)) / (2 * eps)
                       for e in torch.eye(len(advantages))])
    assert torch.allclose(out.advantage_weights, fd, rtol=1e-5, atol=1e-10)


def test_eta_gradient_is_the_utility_derivative_weighted_by_the_advantage_weights():
    """grad_eta f = -(mu_f / 2) sum_t c_t du_t/deta over matched rows (Eq. 15, 19), du/deta from Eq. 12-13."""
    g = torch.Generator().manual_seed(4)
    weights, utility = torch.randn(9, generator=g), torch.rand(9, 3, generator=g)
    matched = torch.rand(9, generator=g) > 0.4
    alpha, beta = torch.tensor(0.3, requires_grad=True), torch.tensor(0.7, requires_grad=True)
    u = alpha * beta * utility[:, 0] + alpha * (1 - beta) * utility[:, 1] + (1 - alpha) * utility[:, 2]
    expected = torch.autograd.grad(-0.5 * MU_F * (weights * matched * u).sum(), [alpha, beta])
    got = eta_gradient(weights, utility, matched, 0.3, 0.7, MU_F)
    assert torch.allclose(got, torch.stack(expected))
    assert torch.allclose(utility_partials(utility, 0.3, 0.7)[~matched].sum(0) * 0, torch.zeros(2))


@pytest.mark.parametrize("dominant, direction", [
    ("distance", {"alpha": +1, "beta": -1}),  # v2 = alpha (1 - beta) grows
    ("time", {"alpha": -1, "beta": 0}),       # v3 = 1 - alpha grows (beta does not enter u_time's weight)
    ("skill", {"alpha": +1, "beta": +1}),     # v1 = alpha beta grows
])
@pytest.mark.parametrize("sign", [+1, -1])
def test_eta_moves_towards_the_dominant_utility_term_of_well_rewarded_matches(dominant, direction, sign):
    """Matched decisions with positive shaped advantages whose utility is all one term: eta's step (Eq. 14,
    mu_eta > 0) raises that term's weight v_i; with negative advantages it lowers it."""
    obs, theta, hat, _, _ = tiny(seed=5, rows=6, same_obs=True)
    actions = torch.ones(6, dtype=torch.long)  # the same decision six times: no row's gradient opposes another's
    advantages = torch.full((6,), float(sign))
    out = terms(theta, hat, obs, actions, advantages, 10.0)
    assert ((out.advantage_weights > 0) == (sign > 0)).all()  # c_t has the sign of the rows' advantage
    utility = torch.zeros(6, 3)
    utility[:, {"skill": 0, "distance": 1, "time": 2}[dominant]] = 1.0
    alpha, beta = 0.5, 0.5
    new_alpha, new_beta = eta_step(alpha, beta, eta_gradient(out.advantage_weights, utility, torch.ones(6, dtype=bool),
                                                             alpha, beta, MU_F), eta_lr=1e3)
    for name, before, after in (("alpha", alpha, new_alpha), ("beta", beta, new_beta)):
        moved = after - before
        want = direction[name] * sign
        assert (moved > 1e-9) if want > 0 else (moved < -1e-9) if want < 0 else abs(moved) < 1e-12, (name, moved)
    # unmatched rows move nothing, and eta stays in [0, 1] however large the step
    assert eta_step(alpha, beta, eta_gradient(out.advantage_weights, utility, torch.zeros(6, dtype=bool), alpha,
                                              beta, MU_F), 1e3) == (alpha, beta)
    huge = eta_step(alpha, beta, eta_gradient(out.advantage_weights, utility, torch.ones(6, dtype=bool), alpha, beta,
                                              MU_F), 1e12)
    assert all(0.0 <= value <= 1.0 for value in huge)


def test_table_1_defaults_xi_schedule_and_soft_update_scale():
    config = RMOConfig()
    assert (config.xi_0, config.chi, config.eta_lr, config.critic_lr, config.inner_lr) == (1.0, 1e-3, 1e-4, 1e-3, 1e-3)
    assert config.optimizer == "sgd" and config.training_signal == "meta"
    assert config.xi(0) == 1.0 and config.xi(10) == pytest.approx(0.99 ** 10)
    # N sequential soft updates theta <- chi theta^n + (1 - chi) theta from one theta: 1 - (1 - chi)^N of a step
    theta, step, n = 0.0, 1.0, 250
    for _ in range(n):
        theta = config.chi * (0.0 + step) + (1 - config.chi) * theta
    assert config.soft_update_scale(n) == pytest.approx(theta)
    assert RMOConfig(chi=1.0).soft_update_scale(5) == 1.0


@pytest.mark.parametrize("changes, field", [
    ({"xi_0": -0.1}, "rmo.xi_0"), ({"chi": 0.0}, "rmo.chi"), ({"chi": 1.5}, "rmo.chi"),
    ({"eta_lr": -1.0}, "rmo.eta_lr"), ({"optimizer": "sgdd"}, "rmo.optimizer"),
    ({"training_signal": "both"}, "rmo.training_signal"), ({"xi_0": float("nan")}, "rmo.xi_0"),
])
def test_bad_settings_name_the_field(changes, field):
    with pytest.raises(InputError) as error:
        dataclasses.replace(RMOConfig(), **changes).validate("rmo")
    assert error.value.where == field


def test_non_finite_terms_never_reach_eta():
    """An overflowing c_t on an unmatched row contributes nothing; a non-finite gradient leaves eta as it was;
    Eq. 5's ratio is clamped before exp, so a near-zero pi_theta cannot overflow it."""
    weights = torch.tensor([float("inf"), 1.0])
    utility = torch.tensor([[0.2, 0.3, 0.4], [0.0, 1.0, 0.0]])
    gradient = eta_gradient(weights, utility, torch.tensor([False, True]), 0.5, 0.5, MU_F)
    assert torch.isfinite(gradient).all()
    assert eta_step(0.5, 0.5, torch.tensor([float("nan"), 0.1]), 1.0) == (0.5, 0.5)
    assert torch.isfinite(clipped_surrogate(torch.tensor([500.0, -500.0]), torch.tensor([-1.0, 1.0]), 0.2))
