"""CAFE's mathematical core (policies/cafe): credit VAE, the redistributed reward, L_Lambda, the Eq. 14
hypergradient, the Eq. 19 Newton step and its schedule. The invariants of the redistributed reward (no reward
for waiting, sums against eta x revenue) are in tests/test_cafe_invariants.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from policies.cafe.config import CreditConfig, ImplicitGradConfig, PhiConfig
from policies.cafe.credit import CreditModel, contributions, gaussian_kl, redistribute, reward_jacobian
from policies.cafe.finetune import FinetuneSchedule, newton_step, push_rows
from policies.cafe.finite import NonFiniteError
from policies.cafe.hypergradient import (implicit_hypergradient, inverse_hvp, next_damping, raised_damping,
                                         select_parameters)
from policies.cafe.regulariser import LinearReturns, linear_return_gap, linear_returns, return_gap_loss
from rl_cs.errors import InputError

DOUBLE = torch.float64


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, and single-threaded: these tiny tensors run ~20x slower on a busy machine otherwise."""
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def credit_batch(batch=64, obs_dim=4, num_actions=3, neighbours=5):
    obs = torch.randn(batch, obs_dim)
    action = torch.randint(0, num_actions, (batch,))
    neighbour_actions = torch.randint(0, num_actions, (batch, neighbours))
    neighbour_mask = torch.rand(batch, neighbours) < 0.6
    return obs, action, neighbour_actions, neighbour_mask


# --- credit model (Eq. 3-5) -------------------------------------------------------------------------------------

def test_gaussian_kl_matches_torch_distributions():
    mu_p, mu_q, logvar_p, logvar_q = torch.randn(4, 10, 6, dtype=DOUBLE)
    p = torch.distributions.Independent(torch.distributions.Normal(mu_p, torch.exp(0.5 * logvar_p)), 1)
    q = torch.distributions.Independent(torch.distributions.Normal(mu_q, torch.exp(0.5 * logvar_q)), 1)
    expected = torch.distributions.kl_divergence(p, q)
    torch.testing.assert_close(gaussian_kl(mu_p, logvar_p, mu_q, logvar_q), expected)


def test_cmi_is_zero_exactly_when_own_action_cannot_change_the_encoder():
    model = CreditModel(CreditConfig(), obs_dim=4, num_actions=3)
    batch = credit_batch()
    with torch.no_grad():
        assert (model.cmi(*batch) > 1e-6).all()  # random weights: knowing a_t^i moves the posterior
        model.own_action.weight.zero_()  # actions and the no-action token now embed identically
        cmi = model.cmi(*batch)
    assert cmi.shape == (64,)
    torch.testing.assert_close(cmi, torch.zeros(64), rtol=0, atol=1e-7)


def test_cmi_is_the_kl_from_the_posterior_with_the_action_to_the_one_with_the_no_action_token():
    model = CreditModel(CreditConfig(), obs_dim=4, num_actions=3)
    obs, action, neighbour_actions, mask = credit_batch()

    def posterior(own):
        mu, logvar = model.encode(obs, own, neighbour_actions, mask)
        return torch.distributions.Independent(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), 1)

    with torch.no_grad():
        expected = torch.distributions.kl_divergence(posterior(action), posterior(torch.full_like(action, 3)))
        torch.testing.assert_close(model.cmi(obs, action, neighbour_actions, mask), expected)


def test_cmi_ignores_padded_neighbours():
    model = CreditModel(CreditConfig(), obs_dim=4, num_actions=3)
    obs, action, neighbour_actions, mask = credit_batch()
    padded = torch.where(mask, neighbour_actions, torch.full_like(neighbour_actions, -1))
    with torch.no_grad():
        torch.testing.assert_close(model.cmi(obs, action, neighbour_actions, mask),
                                   model.cmi(obs, action, padded, mask))


def train_credit(revenue_of, steps=300):
    """Fit a credit VAE on synthetic data whose revenue is revenue_of(obs, action); return its mean CMI."""
    model = CreditModel(CreditConfig(hidden_dim=32, latent_dim=4, kl_weight=1.0), obs_dim=4, num_actions=3)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    obs, action, neighbour_actions, mask = credit_batch(batch=256)
    revenue = revenue_of(obs, action)
    first = model.loss(obs, action, neighbour_actions, mask, revenue).total.item()
    for _ in range(steps):
        loss = model.loss(obs, action, neighbour_actions, mask, revenue)
        optimiser.zero_grad()
        loss.total.backward()
        optimiser.step()
    assert loss.total.item() < 0.7 * first
    with torch.no_grad():
        return model.cmi(obs, action, neighbour_actions, mask).mean().item()


def test_trained_cmi_credits_an_action_that_drives_revenue():
    driven = train_credit(lambda obs, action: 3.0 * (action == 1).float() + obs[:, 0])
    ignored = train_credit(lambda obs, action: 3.0 * (obs[:, 1] > 0).float() + obs[:, 0])
    assert driven > 5 * ignored


def two_tasks():
    """Rows 0-4 of one episode: task 7 done by rows 1 (work 3) and 2 (work 1), paid 4 and split 3 : 1 by
    the world; task 9 by row 4 alone, paid 2; rows 0 and 3 chose tau_0."""
    env_reward = torch.tensor([0.0, 3.0, 1.0, 0.0, 2.0], dtype=DOUBLE)
    event_task = torch.tensor([[-1], [7], [7], [-1], [9]])
    event_weight = torch.tensor([[0.0], [12.0], [4.0], [0.0], [2.0]], dtype=DOUBLE)
    parts = contributions(env_reward, torch.zeros(5, dtype=torch.long), event_task, event_weight,
                          torch.ones(5, dtype=torch.bool))
    return env_reward, parts, torch.tensor([0.9, 1.0, 3.0, 0.4, 0.2], dtype=DOUBLE)


def test_mix_redistribution_is_phi_1_cmi_split_plus_phi_2_world_split():
    env_reward, parts, cmi = two_tasks()
    phi = torch.tensor([0.6, 0.3], dtype=DOUBLE)
    cmi_split = torch.tensor([0.0, 4 * 1 / 4, 4 * 3 / 4, 0.0, 2.0], dtype=DOUBLE)  # task 7's 4 by CMI 1 : 3
    expected = 0.6 * cmi_split + 0.3 * env_reward
    torch.testing.assert_close(redistribute(cmi, phi, parts, eta=1.0, form="mix"), expected)
    jacobian = reward_jacobian(cmi, phi, parts, eta=1.0, form="mix")
    torch.testing.assert_close(jacobian, torch.stack([cmi_split, env_reward], 1))


def test_cmi_x_work_split_weighs_cmi_by_the_work_done():
    env_reward, parts, cmi = two_tasks()  # task 7: work 3 : 1 (world shares 3, 1), CMI 1 : 3 -> weights 3 : 3
    phi = torch.tensor([1.0, 0.0], dtype=DOUBLE)
    torch.testing.assert_close(redistribute(cmi, phi, parts, 1.0, "mix", by_work=True),
                               torch.tensor([0.0, 2.0, 2.0, 0.0, 2.0], dtype=DOUBLE))
    flat = torch.ones(5, dtype=DOUBLE)  # an uninformative CMI gives back the world's split by work
    torch.testing.assert_close(redistribute(flat, phi, parts, 1.0, "mix", by_work=True), env_reward)
    torch.testing.assert_close(redistribute(flat, torch.tensor([1.0, 0.0], dtype=DOUBLE), parts, 2.0, "weights",
                                            by_work=True), 2.0 * env_reward)


def test_weights_redistribution_splits_eta_times_each_payment_by_phi_1_cmi_plus_phi_2():
    env_reward, parts, cmi = two_tasks()
    phi = torch.tensor([2.0, 1.0], dtype=DOUBLE)  # weights 2 * 1 + 1 = 3 and 2 * 3 + 1 = 7 on task 7
    expected = 1.5 * torch.tensor([0.0, 4 * 3 / 10, 4 * 7 / 10, 0.0, 2.0], dtype=DOUBLE)
    rewards = redistribute(cmi, phi, parts, eta=1.5, form="weights")
    torch.testing.assert_close(rewards, expected)
    # d/dphi of 1.5 * 4 * w1 / (w1 + w2): closed form; the weights' scale cancels (Euler: J @ phi = 0)
    w1, w2 = 3.0, 7.0
    dw1, dw2 = torch.tensor([1.0, 1.0], dtype=DOUBLE), torch.tensor([3.0, 1.0], dtype=DOUBLE)
    d_row1 = 1.5 * 4 * (dw1 * w2 - w1 * dw2) / (w1 + w2) ** 2
    jacobian = reward_jacobian(cmi, phi, parts, eta=1.5, form="weights")
    torch.testing.assert_close(jacobian[1], d_row1)
    torch.testing.assert_close(jacobian[2], -d_row1)
    torch.testing.assert_close(jacobian @ phi, torch.zeros(5, dtype=DOUBLE))
    # the weight floor: phi_1 CMI + phi_2 <= 0 for all contributors splits evenly, not by 0/0
    even = redistribute(cmi, torch.tensor([0.0, 0.0], dtype=DOUBLE), parts, eta=1.0, form="weights")
    torch.testing.assert_close(even, torch.tensor([0.0, 2.0, 2.0, 0.0, 2.0], dtype=DOUBLE))


def test_contributions_keep_a_reward_without_a_completion_and_split_a_row_with_two():
    env_reward = torch.tensor([5.0, 0.0, 6.0])
    event_task = torch.tensor([[-1, -1], [-1, -1], [3, 4]])  # row 0: reward but no event; row 2: two tasks
    event_weight = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    parts = contributions(env_reward, torch.tensor([0, 0, 0]), event_task, event_weight,
                          torch.tensor([True, True, True]))
    assert sorted(zip(parts.row.tolist(), parts.share.tolist())) == [(0, 5.0), (2, 2.0), (2, 4.0)]
    assert parts.num_groups == 3
    rewards = redistribute(torch.rand(3), torch.tensor([1.0, 0.0]), parts, eta=1.0, form="mix")
    torch.testing.assert_close(rewards, env_reward)  # every task has one contributor: the CMI split is the world's


def test_the_same_task_in_two_episodes_is_two_tasks():
    env_reward = torch.tensor([1.0, 1.0])
    parts = contributions(env_reward, torch.tensor([0, 1]), torch.tensor([[7], [7]]), torch.tensor([[1.0], [1.0]]),
                          torch.tensor([True, True]))
    assert parts.num_groups == 2
    torch.testing.assert_close(redistribute(torch.tensor([0.1, 5.0]), torch.tensor([1.0, 0.0]), parts, 1.0),
                               env_reward)


# --- L_Lambda (Eq. 6), normalised ------------------------------------------------------------------------------

def test_return_gap_loss_is_the_mean_squared_trajectory_gap_over_the_mean_squared_eta_payments():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    payments = torch.tensor([0.0, 1.0, 1.0, 0.0, 2.0])
    ids = torch.tensor([7, 3, 7, 3, 9])  # trajectories 7: steps 0, 2; 3: steps 1, 3; 9: step 4
    eta = 2.0
    gaps = torch.tensor([(1 + 3) - eta * (0 + 1), (2 + 4) - eta * (1 + 0), 5 - eta * 2])
    scale = torch.tensor([eta * 1, eta * 1, eta * 2]).pow(2).mean()
    torch.testing.assert_close(return_gap_loss(rewards, payments, ids, eta), gaps.pow(2).mean() / scale)


def test_linear_returns_reproduce_l_lambda_and_mix_gives_the_closed_form():
    env_reward, parts, cmi = two_tasks()
    ids = torch.tensor([0, 0, 1, 1, 1])
    phi0 = torch.tensor([0.6, 0.3], dtype=DOUBLE)
    rewards = redistribute(cmi, phi0, parts, 1.0)
    returns = linear_returns(rewards, reward_jacobian(cmi, phi0, parts, 1.0), phi0, env_reward, ids)
    loss = linear_return_gap(returns, eta=1.5)
    for phi in (phi0, torch.tensor([2.0, -1.0], dtype=DOUBLE)):
        direct = return_gap_loss(redistribute(cmi, phi, parts, 1.0), env_reward, ids, 1.5)
        torch.testing.assert_close(loss(phi), direct)
    # a whole task per trajectory: sum_t r = (phi_1 + phi_2) sum_t rho, so L = (phi_1 + phi_2 - eta)^2 / eta^2
    whole = linear_return_gap(linear_returns(rewards, reward_jacobian(cmi, phi0, parts, 1.0), phi0, env_reward,
                                             torch.zeros(5, dtype=torch.long)), eta=1.5)
    phi = torch.tensor([0.9, 1.1], dtype=DOUBLE)
    torch.testing.assert_close(whole(phi), (phi.sum() - 1.5) ** 2 / 1.5 ** 2)


def test_return_gap_loss_gradient_in_phi_matches_finite_differences():
    cmi, payments = torch.rand(40, dtype=DOUBLE), torch.rand(40, dtype=DOUBLE)
    ids = torch.randint(0, 6, (40,))
    task = torch.randint(0, 10, (40, 1))
    parts = contributions(payments, ids, task, torch.rand(40, 1, dtype=DOUBLE), torch.ones(40, dtype=torch.bool))
    phi = torch.tensor([0.7, 0.2], dtype=DOUBLE, requires_grad=True)
    for form in ("mix", "weights"):
        assert torch.autograd.gradcheck(
            lambda p: return_gap_loss(redistribute(cmi, p, parts, 1.5, form), payments, ids, 1.5), (phi,))


# --- inverse Hessian-vector products and the Eq. 14 hypergradient ----------------------------------------------

def spd_matrix(n, low=1.0, high=3.0):
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=DOUBLE))
    return q @ torch.diag(torch.linspace(low, high, n, dtype=DOUBLE)) @ q.T


@pytest.mark.parametrize("solver", ["cg", "neumann"])
def test_inverse_hvp_matches_direct_solve(solver):
    a, b = spd_matrix(6), torch.randn(6, dtype=DOUBLE)
    config = ImplicitGradConfig(("head",), solver=solver, iterations=200, damping=0.5, neumann_scale=0.25)
    expected = torch.linalg.solve(a + 0.5 * torch.eye(6, dtype=DOUBLE), b)
    solve = inverse_hvp(lambda v: a @ v, b, config)
    torch.testing.assert_close(solve.solution, expected)
    assert solve.damping == 0.5 and solve.increases == 0 and solve.residual < 1e-6
    # CG's recursive residual costs no product (Neumann's explicit check costs one)
    assert solve.products == solve.iterations + (solver == "neumann")


def test_cg_at_non_positive_curvature_raises_the_damping_instead_of_returning_zero():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=DOUBLE))
    a = q @ torch.diag(torch.tensor([-2.0, -0.5, 0.3, 1.0, 2.0, 3.0], dtype=DOUBLE)) @ q.T  # indefinite
    b = q @ torch.ones(6, dtype=DOUBLE)  # has weight on the negative directions: CG meets them at once
    config = ImplicitGradConfig(("head",), solver="cg", iterations=50, damping=1e-3, damping_increases=8)
    solve = inverse_hvp(lambda v: a @ v, b, config)
    assert solve.increases >= 1 and solve.damping > 2.0  # raised past the most negative eigenvalue
    expected = torch.linalg.solve(a + solve.damping * torch.eye(6, dtype=DOUBLE), b)
    torch.testing.assert_close(solve.solution, expected)
    assert solve.solution.norm() > 0.01 and solve.residual < 1e-6
    assert raised_damping(0.0, 0.0) == 1e-6 and raised_damping(1.0, -3.0) == 7.0 and raised_damping(1.0, -0.1) == 2.0
    # with no raises allowed it stops at the negative curvature, and its residual says how poor the iterate is
    stopped = inverse_hvp(lambda v: a @ v, b, ImplicitGradConfig(("head",), damping=1e-3, damping_increases=0))
    assert stopped.increases == 0 and stopped.residual > 0.5


def explicit_residual(a, b, solve):
    return float((b - (a + solve.damping * torch.eye(len(b), dtype=DOUBLE)) @ solve.solution).norm() / b.norm())


@pytest.mark.parametrize("iterations", [1, 2, 3, 6, 50])
def test_cg_recursive_residual_is_the_true_residual(iterations):
    """CG reports its recursive residual instead of one more product: the same as ||b - (A + dI) x|| / ||b||,
    for truncated solves, converged ones and one stopped at non-positive curvature."""
    a, b = spd_matrix(6, 0.1, 5.0), torch.randn(6, dtype=DOUBLE)
    solve = inverse_hvp(lambda v: a @ v, b, ImplicitGradConfig(("head",), iterations=iterations, damping=0.2))
    assert solve.residual == pytest.approx(explicit_residual(a, b, solve), rel=1e-6, abs=1e-12)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=DOUBLE))
    indefinite = q @ torch.diag(torch.tensor([-2.0, -0.5, 0.3, 1.0, 2.0, 3.0], dtype=DOUBLE)) @ q.T
    for increases in (0, 8):
        solve = inverse_hvp(lambda v: indefinite @ v, b,
                            ImplicitGradConfig(("head",), iterations=iterations, damping_increases=increases))
        assert solve.residual == pytest.approx(explicit_residual(indefinite, b, solve), rel=1e-6, abs=1e-12)


def test_damping_is_carried_across_solves_levenberg_marquardt_style():
    """next_damping: a solve that raised its damping hands on the damping it ended with, so the next solve on
    the same indefinite matrix needs no restart; a solve that did not decays it by damping_decay, never below
    config.damping; each solve still solves (A + its damping I) x = b and never returns zero."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=DOUBLE))
    a = q @ torch.diag(torch.tensor([-2.0, -0.5, 0.3, 1.0, 2.0, 3.0], dtype=DOUBLE)) @ q.T
    b = q @ torch.ones(6, dtype=DOUBLE)
    config = ImplicitGradConfig(("head",), iterations=50, damping=1e-3, damping_decay=0.5)
    first = inverse_hvp(lambda v: a @ v, b, config)
    assert first.increases >= 1 and first.products > first.iterations  # restarted: the cost the carry saves
    assert next_damping(config, first) == first.damping
    second = inverse_hvp(lambda v: a @ v, b, config, next_damping(config, first))
    assert second.increases == 0 and second.damping == first.damping and second.products == second.iterations
    assert next_damping(config, second) == pytest.approx(0.5 * first.damping)
    dampings, restarts, damping = [], 0, next_damping(config, second)
    for _ in range(20):  # on a fixed matrix the damping settles: decays while it can, raised when it must
        solve = inverse_hvp(lambda v: a @ v, b, config, damping)
        expected = torch.linalg.solve(a + solve.damping * torch.eye(6, dtype=DOUBLE), b)
        torch.testing.assert_close(solve.solution, expected)
        assert solve.damping >= damping and solve.solution.norm() > 0.01 and solve.residual < 1e-6
        restarts += solve.increases > 0
        dampings.append(solve.damping)
        damping = next_damping(config, solve)
    assert restarts <= 10 and min(dampings) > 2.0  # never below the most negative eigenvalue for long
    # on a positive definite matrix it decays to the floor and stays there
    spd, damping = spd_matrix(6), 4.0
    for _ in range(20):
        solve = inverse_hvp(lambda v: spd @ v, b, config, damping)
        assert solve.increases == 0
        damping = next_damping(config, solve)
    assert damping == config.damping
    assert next_damping(ImplicitGradConfig(("head",), damping=0.1, damping_decay=1.0), solve._replace(damping=3.0)) == 3.0


class Quadratic:
    """Inner J(theta, phi) = -1/2 theta'A theta + theta'B phi + c'phi, so theta*(phi) = A^-1 B phi exactly;
    theta is passed as two tensors, (2, 2) and (3,), to exercise the flattening."""

    def __init__(self):
        self.a, self.b = spd_matrix(7), torch.randn(7, 2, dtype=DOUBLE)
        self.c, self.d, self.m = torch.randn(3, 2, dtype=DOUBLE)
        self.target = torch.randn(7, dtype=DOUBLE)

    @staticmethod
    def split(flat):
        return [flat[:4].reshape(2, 2), flat[4:]]

    @staticmethod
    def join(theta):
        return torch.cat([p.reshape(-1) for p in theta])

    def inner(self, theta, phi):
        t = self.join(theta)
        return -0.5 * t @ self.a @ t + t @ self.b @ phi + self.c @ phi

    def outer(self, theta, phi):  # J_out: reach a target with theta, plus a linear term in phi
        return -0.5 * (self.join(theta) - self.target).pow(2).sum() + self.d @ phi

    def regulariser(self, phi):
        return 2.0 * (phi - self.m).pow(2).sum()

    def theta_star(self, phi):
        return torch.linalg.solve(self.a, self.b @ phi)

    def outer_loss_solved(self, phi):  # F(phi) with the inner problem solved exactly
        return self.outer(self.split(self.theta_star(phi)), phi) - self.regulariser(phi)


@pytest.mark.parametrize("solver", ["cg", "neumann"])
def test_hypergradient_on_a_quadratic_matches_closed_form_and_finite_differences(solver):
    problem, phi = Quadratic(), torch.tensor([0.3, -1.2], dtype=DOUBLE)
    config = ImplicitGradConfig(("head",), solver=solver, iterations=200, damping=0.0, neumann_scale=0.3)
    theta = problem.split(problem.theta_star(phi))
    result = implicit_hypergradient(problem.inner, theta, phi, config, problem.regulariser, problem.outer)

    dtheta_dphi = torch.linalg.solve(problem.a, problem.b)
    closed_form = problem.d + dtheta_dphi.T @ (problem.target - problem.theta_star(phi)) - 4.0 * (phi - problem.m)
    torch.testing.assert_close(result.total, closed_form)
    torch.testing.assert_close(result.total, result.direct + result.implicit - result.regulariser)

    eps = 1e-6
    finite_differences = torch.stack([
        (problem.outer_loss_solved(phi + eps * e) - problem.outer_loss_solved(phi - eps * e)) / (2 * eps)
        for e in torch.eye(2, dtype=DOUBLE)
    ])
    torch.testing.assert_close(result.total, finite_differences, rtol=1e-6, atol=1e-6)


def test_hypergradient_with_a_carried_damping_matches_its_closed_form():
    """Started at a carried damping d (the learner's next_damping), the hypergradient is Eq. 14 with -H + d I
    in place of -H, exactly: closed form d_phi J_out + B'(A + d I)^-1 (target - theta) - dL/dphi."""
    problem, phi, damping = Quadratic(), torch.tensor([0.3, -1.2], dtype=DOUBLE), 0.7
    config = ImplicitGradConfig(("head",), iterations=200, damping=0.0, cg_tolerance=1e-12)
    theta_star = problem.theta_star(phi)
    result = implicit_hypergradient(problem.inner, problem.split(theta_star), phi, config, problem.regulariser,
                                    problem.outer, damping=damping)
    assert result.solve.damping == damping and result.solve.increases == 0
    damped = problem.a + damping * torch.eye(7, dtype=DOUBLE)
    closed_form = (problem.d + problem.b.T @ torch.linalg.solve(damped, problem.target - theta_star)
                   - 4.0 * (phi - problem.m))
    torch.testing.assert_close(result.total, closed_form)
    # and it is the finite-difference gradient of F for the damped inner problem, whose optimum moves with
    # phi as (A + d I)^-1 B (the implicit function theorem with -H + d I)
    eps = 1e-6

    def solved(p):
        theta = theta_star + torch.linalg.solve(damped, problem.b @ (p - phi))
        return problem.outer(problem.split(theta), p) - problem.regulariser(p)

    differences = torch.stack([(solved(phi + eps * e) - solved(phi - eps * e)) / (2 * eps)
                               for e in torch.eye(2, dtype=DOUBLE)])
    torch.testing.assert_close(result.total, differences, rtol=1e-6, atol=1e-6)


def test_hypergradient_with_the_inner_objective_as_outer_is_eq14_literally():
    # With J_out = J, Eq. 14 at any theta gives c + B'A^-1 B phi = d/dphi J(theta*(phi), phi) for a quadratic.
    problem, phi = Quadratic(), torch.tensor([0.5, 0.8], dtype=DOUBLE)
    theta = problem.split(torch.randn(7, dtype=DOUBLE))  # away from theta*: dJ/dtheta != 0
    result = implicit_hypergradient(problem.inner, theta, phi, ImplicitGradConfig(("head",), damping=0.0))
    expected = problem.c + problem.b.T @ torch.linalg.solve(problem.a, problem.b) @ phi
    torch.testing.assert_close(result.total, expected)
    assert result.implicit.abs().sum() > 0.1 and not result.regulariser.any()


class Actor(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Sequential(nn.Tanh(), nn.Linear(8, 3))

    def forward(self, obs):
        return self.head(self.body(obs))


def test_select_parameters_and_hypergradient_through_functional_call():
    actor = Actor()
    theta_l = select_parameters(actor, ["head.1"])
    assert list(theta_l) == ["head.1.weight", "head.1.bias"]

    obs, actions = torch.randn(32, 4), torch.randint(0, 3, (32,))
    cmi_return, ones_return = torch.rand(32), torch.rand(32)

    def surrogate(theta, phi):  # a policy-gradient J whose advantage is linear in phi, as GAE on Eq. 5 is
        logits = torch.func.functional_call(actor, dict(zip(theta_l, theta)), (obs,))
        advantage = phi[0] * cmi_return + phi[1] * ones_return
        return (torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1) * advantage).mean()

    result = implicit_hypergradient(surrogate, list(theta_l.values()), torch.tensor([1.0, 0.0]),
                                    ImplicitGradConfig(("head.1",), damping=0.1))
    assert torch.isfinite(result.total).all() and result.implicit.abs().sum() > 0
    assert all(p.grad is None for p in actor.parameters())


# --- Newton fine-tuning (Eq. 19) and its schedule --------------------------------------------------------------

def random_returns(trajectories=8):
    """LinearReturns whose two regressors do not move together (a full-rank 2x2 Hessian)."""
    slope = torch.rand(trajectories, 2, dtype=DOUBLE) * 3
    return LinearReturns(torch.zeros(trajectories, dtype=DOUBLE), slope, torch.rand(trajectories, dtype=DOUBLE) + 0.5)


def test_newton_step_lands_on_the_minimum_of_l_lambda_in_one_step():
    returns = random_returns()
    loss = linear_return_gap(returns, eta=2.0)
    phi_star = newton_step(loss, torch.tensor([5.0, -3.0], dtype=DOUBLE), damping=0.0)
    (grad,) = torch.autograd.grad(loss(phi_star.requires_grad_()), phi_star)
    torch.testing.assert_close(grad, torch.zeros(2, dtype=DOUBLE), rtol=0, atol=1e-10)
    # the same minimum by least squares on the per-trajectory sums
    target = 2.0 * returns.payments
    torch.testing.assert_close(phi_star.detach(), torch.linalg.lstsq(returns.slope, target[:, None]).solution.squeeze(1))


def test_newton_step_with_pull_back_is_the_damped_closed_form():
    returns, phi_hat = random_returns(), torch.tensor([1.0, 0.5], dtype=DOUBLE)
    loss = linear_return_gap(returns, eta=1.0)
    g = torch.autograd.functional.jacobian(loss, phi_hat)
    h = torch.autograd.functional.hessian(loss, phi_hat)
    for kappa in (0.5, 5.0):
        expected = phi_hat - torch.linalg.solve(h + kappa * torch.eye(2, dtype=DOUBLE), g)
        torch.testing.assert_close(newton_step(loss, phi_hat, damping=kappa), expected)
    # minimises L + kappa/2 |phi - phi_hat|^2 (exactly: L is quadratic), and a larger kappa stays nearer phi_hat
    near, far = newton_step(loss, phi_hat, 50.0), newton_step(loss, phi_hat, 0.5)
    assert (near - phi_hat).norm() < (far - phi_hat).norm()
    with pytest.raises(ValueError, match="damping"):
        newton_step(loss, phi_hat, damping=-1.0)


def test_newton_step_with_a_singular_hessian_stays_finite_and_minimises():
    # one trajectory, or "mix" with whole tasks: the regressors move together and the Hessian has rank 1
    returns = LinearReturns(torch.zeros(3, dtype=DOUBLE), torch.tensor([[1.0, 1.0]] * 3, dtype=DOUBLE) * 2,
                            torch.full((3,), 2.0, dtype=DOUBLE))
    loss = linear_return_gap(returns, eta=1.0)
    phi_hat = torch.tensor([3.0, 1.0], dtype=DOUBLE)
    phi_star = newton_step(loss, phi_hat, damping=0.0)
    assert torch.isfinite(phi_star).all() and loss(phi_star) < 1e-12
    torch.testing.assert_close(phi_star, torch.tensor([1.5, -0.5], dtype=DOUBLE))  # the smallest step: onto sum = 1


def test_rolling_buffer_keeps_the_newest_rows():
    storage, count = torch.zeros(4, 2), 0
    storage, count = push_rows(storage, count, torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    assert count == 2 and storage[-2:, 0].tolist() == [1.0, 2.0]
    storage, count = push_rows(storage, count, torch.tensor([[3.0, 3.0], [4.0, 4.0], [5.0, 5.0]]))
    assert count == 4 and storage[:, 0].tolist() == [2.0, 3.0, 4.0, 5.0]


def test_finetune_schedule_waits_for_the_training_revenue_to_plateau_and_stays_on():
    config = PhiConfig(finetune_after=3, tolerance=0.01, patience=2)
    schedule = FinetuneSchedule(config)
    rising = [10.0, 10.5, 11.0, 11.5, 12.0, 12.5]  # each a new best by more than 1%: never a plateau
    assert not any(schedule.observe(x) for x in rising)
    assert schedule.stale == 0
    # within 1% of the best (12.5) twice in a row: the plateau; a new best in between resets the count
    assert [schedule.observe(x) for x in (12.55, 13.0, 12.9, 12.95)] == [False, False, False, True]
    assert schedule.observe(1.0)  # latched: a worse batch after fine-tuning started does not switch it off

    restored = FinetuneSchedule(config)
    restored.load_state_dict(schedule.state_dict())
    assert restored.state_dict() == schedule.state_dict()

    early = FinetuneSchedule(PhiConfig(finetune_after=5, tolerance=0.01, patience=1))
    assert [early.observe(10.0) for _ in range(6)] == [False, False, False, False, True, True]  # not before 5
    noFE = FinetuneSchedule(PhiConfig(finetune_after=1, patience=1), finetune=False)
    assert not any(noFE.observe(1.0) for _ in range(5))
    with pytest.raises(ValueError, match="finite"):
        FinetuneSchedule(config).observe(float("nan"))


# --- bad input and non-finite values ---------------------------------------------------------------------------

@pytest.mark.parametrize("make, field", [
    (lambda: PhiConfig(eta=0.0).validate(), "cafe.phi.eta"),
    (lambda: PhiConfig(eta=-1.0).validate("x.yaml: cafe.phi"), "x.yaml: cafe.phi.eta"),
    (lambda: PhiConfig(phi_lr=0.0).validate(), "cafe.phi.phi_lr"),
    (lambda: PhiConfig(finetune_after=0).validate(), "cafe.phi.finetune_after"),
    (lambda: PhiConfig(phi_init=(1.0,)).validate(), "cafe.phi.phi_init"),
    (lambda: PhiConfig(phi_bounds=(5.0, 0.0)).validate(), "cafe.phi.phi_bounds"),
    (lambda: PhiConfig(phi_init=(20.0, 0.0)).validate(), "cafe.phi.phi_init"),
    (lambda: PhiConfig(patience=0).validate(), "cafe.phi.patience"),
    (lambda: PhiConfig(newton_damping=-0.1).validate(), "cafe.phi.newton_damping"),
    (lambda: PhiConfig(finetune_buffer=0).validate(), "cafe.phi.finetune_buffer"),
    (lambda: PhiConfig(redistribution="per_decision").validate(), "cafe.phi.redistribution"),
    (lambda: ImplicitGradConfig(("head",), outer="revenue").validate(), "cafe.implicit.outer"),
    (lambda: ImplicitGradConfig(("head",), damping_increases=-1).validate(), "cafe.implicit.damping_increases"),
    (lambda: ImplicitGradConfig(("head",), damping_decay=0.0).validate(), "cafe.implicit.damping_decay"),
    (lambda: ImplicitGradConfig(("head",), damping_decay=1.5).validate(), "cafe.implicit.damping_decay"),
    (lambda: ImplicitGradConfig(("head",), solver="newton").validate(), "cafe.implicit.solver"),
    (lambda: ImplicitGradConfig(()).validate(), "cafe.implicit.theta_l_layers"),
    (lambda: CreditConfig(kl_weight=-1.0).validate(), "cafe.credit.kl_weight"),
    (lambda: CreditModel(CreditConfig(hidden_dim=0), obs_dim=4, num_actions=3), "cafe.credit.hidden_dim"),
    (lambda: return_gap_loss(torch.ones(2), torch.ones(2), torch.zeros(2, dtype=torch.long), eta=0.0),
     "cafe.phi.eta"),
])
def test_bad_config_names_the_field(make, field):
    with pytest.raises(InputError) as error:
        make()
    assert error.value.where == field


def test_credit_model_takes_its_dims_from_the_caller_not_the_config():
    with pytest.raises(ValueError, match="obs_dim"):
        CreditModel(CreditConfig(), obs_dim=0, num_actions=3)
    model = CreditModel(CreditConfig(), obs_dim=5, num_actions=3)
    assert model.encoder[0].in_features == 5 + 2 * CreditConfig().action_embed_dim
    assert model.own_action.num_embeddings == 4  # 3 actions + the no-action token


def test_unknown_theta_l_layer_is_named_with_the_valid_ones():
    with pytest.raises(InputError, match="unknown layer 'haed'.*did you mean 'head'") as error:
        select_parameters(Actor(), ["head", "haed"])
    assert error.value.where == "cafe.implicit.theta_l_layers"
    assert "body.weight" in str(error.value)


def test_non_finite_phi_cmi_and_hvp_are_named():
    problem = Quadratic()
    theta = problem.split(torch.zeros(7, dtype=DOUBLE))
    with pytest.raises(NonFiniteError, match="phi") as error:
        implicit_hypergradient(problem.inner, theta, torch.tensor([float("nan"), 0.0], dtype=DOUBLE),
                               ImplicitGradConfig(("head",)))
    assert error.value.where == "phi"

    model = CreditModel(CreditConfig(), obs_dim=4, num_actions=3)
    obs, action, neighbour_actions, mask = credit_batch(batch=8)
    obs[3, 1] = float("inf")
    with pytest.raises(NonFiniteError) as error:
        model.cmi(obs, action, neighbour_actions, mask)
    assert error.value.where == "CMI"

    b = torch.randn(3, 2, dtype=DOUBLE)

    def kinked(theta, phi):  # finite gradient at theta = 0, infinite curvature: d2/dtheta2 theta^1.5 = inf
        return -theta[0].pow(1.5).sum() + theta[0] @ b @ phi

    with pytest.raises(NonFiniteError) as error:
        implicit_hypergradient(kinked, [torch.zeros(3, dtype=DOUBLE)], torch.ones(2, dtype=DOUBLE),
                               ImplicitGradConfig(("head",)))
    assert error.value.where == "Hessian-vector product"
