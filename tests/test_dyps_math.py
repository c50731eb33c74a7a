"""DyPS's maths as pure torch (policies/dyps): the ELBOs of the VLSTM (Eq. 12) and the CVAE (Eq. 4) fall on
synthetic trajectories and learn what they should, the selector (Eq. 13) gives each agent a distribution
over the M groups, the one-step actor-critic's gradients go where they should (checked against finite
differences), and the config refuses bad M and learning rates naming the field."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from policies.dyps.config import DyPSConfig, table6, table6_training
from policies.dyps.cvae import GroupCVAE
from policies.dyps.model import DyPSModules
from policies.dyps.selector import GroupSelector, one_step_actor_critic_loss
from policies.dyps.vlstm import VLSTM, trajectory_pairs
from rl_cs.config import from_dict
from rl_cs.errors import InputError


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_role_trajectories(agents: int = 8, steps: int = 12, num_actions: int = 3):
    """Agents of two roles: role 0 drifts east, always takes action 0 and earns +0.5; role 1 drifts south,
    takes action 2 and earns -0.5 (small noise on the moves)."""
    g = torch.Generator().manual_seed(1)
    role = torch.arange(agents) % 2
    velocity = torch.where(role[:, None] == 0, torch.tensor([0.1, 0.0]), torch.tensor([0.0, -0.1]))
    states = torch.zeros(agents, steps + 1, 2)
    states[:, 0] = 0.1 * torch.randn(agents, 2, generator=g)
    for t in range(steps):
        states[:, t + 1] = states[:, t] + velocity + 0.01 * torch.randn(agents, 2, generator=g)
    actions = torch.where(role[:, None] == 0, 0, 2).expand(agents, steps)
    rewards = torch.where(role[:, None] == 0, 0.5, -0.5).expand(agents, steps).float()
    x, a = trajectory_pairs(states, actions, rewards, num_actions)
    return role, x, a


def _train(loss_fn, parameters, steps: int, lr: float = 3e-3) -> list[float]:
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# --------------------------------------------------------------------------------------------- VLSTM
def test_trajectory_pairs_put_the_reward_with_the_state_it_leads_to():
    states = torch.arange(6.0).reshape(1, 3, 2)
    x, a = trajectory_pairs(states, torch.tensor([[1, 0]]), torch.tensor([[5.0, 7.0]]), num_actions=2)
    assert x[0, :, 2].tolist() == [0.0, 5.0, 7.0]  # r_0 = 0; x_1 holds the reward of a_0
    assert a[0].tolist() == [[0, 1], [1, 0], [0, 0]]  # no action after the last state


def test_vlstm_elbo_falls_and_its_roles_separate_the_two_kinds_of_agent():
    role, x, a = two_role_trajectories()
    vlstm = VLSTM(pair_dim=3, action_dim=3)
    with torch.no_grad():
        before = vlstm(x, a, sample=False).elbo.mean().item()
    losses = _train(lambda: vlstm.loss(x, a), vlstm.parameters(), steps=80)
    with torch.no_grad():
        after = vlstm(x, a, sample=False)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 2.0, losses[::10]  # nats per step
    assert after.elbo.mean().item() > before + 20
    assert after.kl.min() >= 0
    h = vlstm.role(x, a)
    assert h.shape == (8, 64)
    centres = [h[role == k].mean(0) for k in (0, 1)]
    within = max((h[role == k] - centres[k]).norm(dim=1).max() for k in (0, 1))
    assert (centres[0] - centres[1]).norm() > 3 * within


def test_vlstm_padding_leaves_a_history_unchanged():
    _, x, a = two_role_trajectories(agents=2, steps=6)
    vlstm = VLSTM(pair_dim=3, action_dim=3)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False  # agent 1's history is 4 steps long, padded to 7
    padded = x.clone()
    padded[1, 4:] = 99.0
    out = vlstm(padded, a, mask, sample=False)
    alone = vlstm(x[1:, :4], a[1:, :4], sample=False)
    torch.testing.assert_close(out.role[1], alone.role[0])
    torch.testing.assert_close(out.elbo[1], alone.elbo[0])
    assert out.steps.tolist() == [7, 4]


# --------------------------------------------------------------------------------------------- CVAE
def three_group_behaviour(samples: int = 384, state_dim: int = 4, num_actions: int = 5):
    g = torch.Generator().manual_seed(2)
    preferences = torch.randn(3, state_dim, num_actions, generator=g)
    groups = torch.randint(0, 3, (samples,), generator=g)
    states = torch.randn(samples, state_dim, generator=g)
    actions = torch.einsum("ns,nsa->na", states, preferences[groups]).argmax(-1)
    return groups, states, actions


def test_cvae_elbo_falls_and_it_tells_the_groups_policies_apart():
    groups, states, actions = three_group_behaviour()
    cvae = GroupCVAE(num_groups=3, state_dim=4, num_actions=5)
    losses = _train(lambda: cvae.loss(groups, states, actions, kl_weight=1e-4), cvae.parameters(), steps=250)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses[::25]
    accuracy = (cvae.action_probs(groups, states).argmax(-1) == actions).float().mean()
    assert accuracy > 0.9  # the decoder, told only z_m, reproduces each group's own policy
    roles = cvae.roles()
    assert roles.shape == (3, 16) and not roles.requires_grad
    assert torch.pdist(roles).min() > 1.0


def test_cvae_state_bypasses_the_encoder_and_soft_targets_work():
    cvae = GroupCVAE(num_groups=2, state_dim=3, num_actions=4)
    mu, logvar = cvae.posterior(torch.tensor([0, 1]))  # q(z | m): the group id is its only input
    assert mu.shape == logvar.shape == (2, 16)
    states = torch.randn(6, 3)
    probs = torch.softmax(torch.randn(6, 4), -1)
    elbo, reconstruction, kl = cvae.elbo(torch.zeros(6, dtype=torch.long), states, probs)
    assert elbo.shape == (6,) and (reconstruction <= 0).all() and (kl >= 0).all()


# --------------------------------------------------------------------------------------------- selector
@pytest.mark.parametrize("use_vlstm, use_cvae", [(True, True), (False, True), (True, False), (False, False)],
                         ids=["dyps", "wo-vlstm", "wo-cvae", "wo-repr"])
def test_selector_gives_each_agent_a_distribution_over_the_groups(use_vlstm, use_cvae):
    agents, groups, episodes = 6, 4, 3
    selector = GroupSelector(agents, groups, role_dim=8, latent=5, use_vlstm=use_vlstm, use_cvae=use_cvae)
    roles = torch.randn(episodes, agents, 8)
    z = torch.randn(groups, 5)
    probs = selector.probabilities(roles, z)
    assert probs.shape == (episodes, agents, groups)
    assert (probs >= 0).all() and torch.allclose(probs.sum(-1), torch.ones(episodes, agents))
    assert torch.allclose(probs, torch.full_like(probs, 1 / groups), atol=1e-2)  # W ~ 0: random at first
    chosen, _ = selector.assign(roles, z, torch.Generator().manual_seed(5))
    again, _ = selector.assign(roles, z, torch.Generator().manual_seed(5))
    assert chosen.shape == (episodes, agents) and chosen.dtype == torch.int64
    assert ((0 <= chosen) & (chosen < groups)).all() and torch.equal(chosen, again)
    assert selector.value(roles, z).shape == (episodes, agents)


def test_eq_13_is_the_bilinear_form_of_agent_features_and_group_roles():
    selector = GroupSelector(num_agents=3, num_groups=2, role_dim=4, latent=3)
    with torch.no_grad():
        selector.W.normal_()
    roles, z = torch.randn(3, 4), torch.randn(2, 3)
    logits = selector.logits(roles, z)
    for n in range(3):
        u = torch.cat([torch.eye(3)[n], roles[n]])
        for m in range(2):
            torch.testing.assert_close(logits[n, m], u @ selector.W @ z[m])


def test_selector_gradients_reach_the_selector_only():
    """The selector's loss trains W (actor) and the critic; never the VLSTM or the CVAE that give its state
    (they learn from their ELBOs); actor and critic losses touch only their own parameters."""
    _, x, a = two_role_trajectories(agents=4, steps=5)
    vlstm, cvae = VLSTM(3, 3, hidden=8, latent=4), GroupCVAE(2, 2, 3, latent=5)
    selector = GroupSelector(4, 2, role_dim=8, latent=5)
    roles = vlstm(x, a).role                       # with the graph: the selector must cut it
    z = cvae.posterior(torch.arange(2))[0]
    groups, _ = selector.assign(roles, z)
    logits, values = selector.logits(roles, z), selector.value(roles, z)
    loss = one_step_actor_critic_loss(logits, groups, torch.tensor(3.0), values)
    loss.actor.backward(retain_graph=True)
    assert selector.W.grad is not None and selector.W.grad.abs().sum() > 0
    assert all(p.grad is None for p in selector.critic_parameters())
    selector.W.grad = None
    loss.critic.backward()
    assert selector.W.grad is None
    assert all(p.grad is not None for p in selector.critic_parameters())
    assert all(p.grad is None for p in [*vlstm.parameters(), *cvae.parameters()])


def test_selector_loss_gradients_match_finite_differences():
    torch.set_default_dtype(torch.float64)
    try:
        selector = GroupSelector(num_agents=2, num_groups=2, role_dim=3, latent=2, hidden=4)
        with torch.no_grad():
            selector.W.normal_()
        roles, z = torch.randn(2, 2, 3), torch.randn(2, 2)  # two episodes
        groups = torch.tensor([[0, 1], [1, 1]])
        returns = torch.tensor([1.5, -0.5])

        def losses():
            return one_step_actor_critic_loss(selector.logits(roles, z), groups, returns,
                                              selector.value(roles, z), entropy_coeff=0.1)

        # the advantage R - V is detached in the actor's loss (a semi-gradient), so the total's gradient is
        # checked for W only; the critic's parameters against the critic's loss
        for part, parameters in (("actor", [selector.W]), ("critic", selector.critic_parameters()),
                                 ("total", [selector.W])):
            selector.zero_grad()
            getattr(losses(), part).backward()
            for parameter in parameters:
                analytic = parameter.grad.clone()
                numeric = torch.zeros_like(parameter)
                for index in range(parameter.numel()):
                    flat = parameter.data.view(-1)
                    original = flat[index].item()
                    flat[index] = original + 1e-6
                    plus = getattr(losses(), part).item()
                    flat[index] = original - 1e-6
                    minus = getattr(losses(), part).item()
                    flat[index] = original
                    numeric.view(-1)[index] = (plus - minus) / 2e-6
                torch.testing.assert_close(analytic, numeric, atol=1e-6, rtol=1e-5)
    finally:
        torch.set_default_dtype(torch.float32)


def test_one_step_actor_critic_moves_agents_to_the_rewarded_group():
    """A bandit: the episode reward is the number of agents in group 0. Updating with the loss raises every
    agent's probability of group 0, and the critic learns the expected reward."""
    agents = 4
    selector = GroupSelector(agents, 3, role_dim=2, latent=3)
    roles, z = torch.zeros(agents, 2), torch.eye(3)
    actor = torch.optim.Adam(selector.actor_parameters(), lr=0.05)
    critic = torch.optim.Adam(selector.critic_parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    start = selector.probabilities(roles, z)[:, 0].mean().item()
    for _ in range(150):
        groups, _ = selector.assign(roles.expand(16, agents, 2), z, generator)  # 16 episodes per update
        reward = (groups == 0).sum(-1).float()
        loss = one_step_actor_critic_loss(selector.logits(roles, z).expand(16, agents, 3), groups, reward,
                                          selector.value(roles, z).expand(16, agents))
        actor.zero_grad(), critic.zero_grad()
        loss.total.backward()
        actor.step(), critic.step()
    assert start == pytest.approx(1 / 3, abs=0.01)
    assert selector.probabilities(roles, z)[:, 0].min() > 0.8


def test_dyps_modules_select_one_group_per_agent_before_and_after_a_history():
    config = dataclasses.replace(DyPSConfig(), num_groups=3)
    modules = DyPSModules(config, num_agents=6, state_dim=2, num_actions=3)
    groups, probs = modules.select(generator=torch.Generator().manual_seed(0))  # first episode: no history
    assert groups.shape == (6,) and probs.shape == (6, 3)
    _, x, a = two_role_trajectories(agents=6, steps=4)
    groups, probs = modules.select(x, a, generator=torch.Generator().manual_seed(0))
    assert groups.shape == (6,) and torch.allclose(probs.sum(-1), torch.ones(6))
    ablated = DyPSModules(dataclasses.replace(config, use_vlstm=False, use_cvae=False), 6, 2, 3)
    assert ablated.vlstm is None and ablated.cvae is None and ablated.select()[0].shape == (6,)


# --------------------------------------------------------------------------------------------- config
def test_config_defaults_are_table_6_and_appendix_a1():
    c = DyPSConfig()
    assert (c.selector_actor_lr, c.selector_critic_lr) == (1e-5, 1e-5)
    assert (c.cvae_hidden, c.cvae_latent, c.vlstm_hidden) == (64, 16, 64)
    assert table6("lbf1") == c and table6("rware2") == c
    assert (table6("ridehailing1").selector_actor_lr, table6("medical").selector_critic_lr) == (1e-4, 1e-5)
    # the Resource Allocation columns are the gridworlds' training defaults, shared by every method
    from rl_cs.experiment.gridworlds_config import GridworldTraining

    t = GridworldTraining()
    lbf = table6_training("lbf1")
    assert (t.lr, t.gamma, t.clip_param, t.lambda_, t.minibatch_size) == \
        (lbf["lr"], lbf["gamma"], lbf["clip_param"], lbf["lambda_"], lbf["minibatch_size"]) == (5e-4, 0.99, 0.2, 0.95, 256)
    ride = table6_training("ridehailing1")
    assert (ride["lr"], ride["gamma"], ride["minibatch_size"], ride["training_steps"]) == (1e-3, 0.97, 1024, 30_000)
    assert table6_training("medical")["lr"] == 1e-4 and lbf["training_steps"] == 1_000_000


@pytest.mark.parametrize("fields, agents, field", [
    ({"num_groups": 0}, None, "dyps.num_groups"),
    ({"num_groups": 7}, 6, "dyps.num_groups"),
    ({"selector_actor_lr": 0.0}, None, "dyps.selector_actor_lr"),
    ({"selector_critic_lr": -1e-5}, None, "dyps.selector_critic_lr"),
    ({"group_policy": "coma"}, None, "dyps.group_policy"),
])
def test_bad_settings_name_the_field(fields, agents, field):
    config = from_dict(DyPSConfig, fields, "dyps")
    with pytest.raises(InputError) as error:
        config.validate("dyps", agents)
    assert str(error.value).startswith(field)
    with pytest.raises(InputError):
        table6("lbf3")


def test_m_up_to_the_number_of_agents_is_accepted():
    for m in range(1, 7):
        dataclasses.replace(DyPSConfig(), num_groups=m).validate("dyps", 6)
