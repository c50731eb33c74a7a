"""The parameter-sharing baselines and DyPS's modules (policies/sharing): parameter counts order NoPS > DyPS >
PS; each scheme maps agents to the modules it says; PS-id's and MAPPO's observation options; PSA's shared
critic is one set of parameters that every agent's value loss trains; SePS's k-means groups; the evaluation
actor rebuilds a trained method from its checkpoint's weights alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from envs.gridworld import extend_observations
from envs.lbf import LBFEnv
from policies.sharing.modules import MLPActorCritic, count_parameters
from policies.sharing.schemes import GROUPS, group_mapping, per_agent_mapping, shared_mapping
from policies.sharing.seps import kmeans_groups
from rl_cs.config import to_dict
from rl_cs.experiment.gridworlds_config import load_experiment
from rl_cs.registry import get_method

HELPERS = ("dyps", "seps", "shared_critic")


def modules_of(method: str, world: str, size: str, sets=()) -> dict:
    config = load_experiment(world, None, [f"world.size={size}", *sets])
    algorithm = get_method(method).build_algorithm(config, {"world": to_dict(config.world)}, 0)
    specs = algorithm.rl_module_spec.rl_module_specs
    return {module_id: spec.build() for module_id, spec in specs.items()}


def counts(method: str, world: str, size: str) -> tuple[int, int]:
    """(parameters of the policy modules agents act through, parameters of every module)."""
    modules = modules_of(method, world, size)
    policy = sum(count_parameters(m) for mid, m in modules.items() if mid not in HELPERS)
    return policy, sum(count_parameters(m) for m in modules.values())


@pytest.mark.parametrize("world, size", [("lbf", "lbf1"), ("lbf", "lbf2"), ("rware", "rware1"), ("rware", "rware2")])
def test_parameter_counts_nops_above_dyps_above_ps(world, size):
    nops, dyps, ps = (counts(m, world, size) for m in ("nops", "dyps", "ps"))
    assert nops[0] > dyps[0] > ps[0]  # the policies: N modules > M = 4 group modules > 1 shared module
    assert dyps[0] == 4 * ps[0] and nops[0] == {"lbf1": 6, "lbf2": 12, "rware1": 8, "rware2": 16}[size] * ps[0]
    if size in ("lbf2", "rware2"):  # with 12 or 16 agents, also with DyPS's selector, VLSTM and CVAE counted
        assert nops[1] > dyps[1] > ps[1]
    else:  # with 6 or 8 agents the ~80k-parameter VLSTM + CVAE + selector outweigh the 2 or 4 modules saved
        assert dyps[1] > nops[1] > ps[1]


def test_schemes_map_agents_to_their_modules():
    assert {shared_mapping(f"agent_{i}") for i in range(6)} == {"shared"}
    assert [per_agent_mapping(f"agent_{i}", None) for i in range(3)] == ["agent_0", "agent_1", "agent_2"]

    class Episode:
        custom_data = {GROUPS: [2, 0, 1]}

    assert [group_mapping(f"agent_{i}", Episode()) for i in range(3)] == ["group_2", "group_0", "group_1"]
    assert group_mapping("agent_1", None) == "group_0"  # RLlib's space inference: a fallback


def test_ps_id_and_mappo_observations():
    env = LBFEnv({"world": {"size": "lbf1"}, "agent_id": True})
    raw = LBFEnv({"world": {"size": "lbf1"}})
    obs, _ = env.reset(seed=4)
    raw_obs, _ = raw.reset(seed=4)
    for i, agent in enumerate(env.possible_agents):
        np.testing.assert_array_equal(obs[agent][:30], raw_obs[agent])
        np.testing.assert_array_equal(obs[agent][30:], np.eye(6)[i])
        assert env.observation_spaces[agent].contains(obs[agent])
    mappo = LBFEnv({"world": {"size": "lbf1"}, "global_state": True, "team_reward": True})
    obs, _ = mappo.reset(seed=4)
    state = np.concatenate([raw_obs[a] for a in raw.possible_agents])
    np.testing.assert_array_equal(obs["agent_2"], np.concatenate([raw_obs["agent_2"], state]))
    # the actor of a MAPPO group module reads o_i only, the critic [o_i, s]
    module = modules_of("dyps-mappo", "lbf", "lbf1")["group_0"]
    assert module.actor_inputs == 30 and module.vf[0].in_features == 30 + 180
    # team reward: every agent gets the sum; the world's return is still the package's sum
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = {a: int(rng.integers(6)) for a in mappo.possible_agents}
        _, rewards, *_ = mappo.step(actions)
        assert len(set(rewards.values())) == 1
    assert extend_observations([np.zeros(2), np.ones(2)], True, False)[1].tolist() == [1, 1, 0, 1]


def test_psa_shares_one_critic_whose_parameters_every_agent_trains():
    from policies.sharing.psa import PSALearner

    modules = modules_of("psa", "lbf", "lbf1")
    critic = modules["shared_critic"]
    agents = [modules[f"agent_{i}"] for i in range(6)]
    for module in agents:
        module.attach_shared_critic(critic)
    assert all(count_parameters(m) == count_parameters(agents[0]) for m in agents)  # the reference adds none
    obs = torch.randn(5, 30)
    value = agents[0].compute_values({Columns.OBS: obs})
    expected = 0.5 * (agents[0].vf(obs).squeeze(-1) + critic.critic(obs).squeeze(-1))
    torch.testing.assert_close(value, expected)
    (agents[0].compute_values({Columns.OBS: obs}).sum() + agents[3].compute_values({Columns.OBS: obs}).sum()).backward()
    assert all(p.grad is not None for p in critic.parameters())
    assert agents[1].vf[0].weight.grad is None and agents[3].vf[0].weight.grad is not None
    assert PSALearner.__doc__ and "ASSUMED" in __import__("policies.sharing.psa", fromlist=["x"]).__doc__


def test_seps_kmeans_finds_the_agent_clusters_and_numbers_them_from_agent_0():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    truth = np.array([1, 1, 0, 2, 0, 2, 1])
    embeddings = centres[truth] + 0.1 * rng.standard_normal((7, 2))
    groups, k = kmeans_groups(embeddings, clusters=0, seed=0)  # k chosen by Davies-Bouldin on [2, 6]
    assert k == 3 and groups[0] == 0
    assert all((groups[i] == groups[j]) == (truth[i] == truth[j]) for i in range(7) for j in range(7))
    fixed, k = kmeans_groups(embeddings, clusters=2, seed=0)
    assert k == 2 and len(set(fixed.tolist())) == 2


def test_seps_modules_and_vae():
    modules = modules_of("seps", "lbf", "lbf1")
    seps = modules["seps"]
    assert seps.groups() is None  # still pre-sampling: every agent on group_0
    assert sorted(m for m in modules if m.startswith("group_")) == [f"group_{g}" for g in range(5)]  # k <= N - 1
    loss = seps.loss(torch.tensor([0, 3]), torch.randn(2, 30), torch.tensor([1, 5]), torch.randn(2, 30),
                     torch.randn(2), kl_weight=1e-4)
    loss.backward()
    assert torch.isfinite(loss) and seps.encoder[0].weight.grad is not None
    with torch.no_grad():
        seps.assignment.copy_(torch.tensor([0.0, 1, 1, 0, 2, 2]))
    assert seps.groups() == [0, 1, 1, 0, 2, 2]


def test_module_acts_on_its_slice_of_the_observation():
    module = modules_of("ps", "lbf", "lbf1")["shared"]
    assert isinstance(module, MLPActorCritic)
    out = module.forward_inference({Columns.OBS: torch.zeros(3, 30)})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (3, 6)


def test_actor_applies_the_trained_observation_options_when_the_env_does_not():
    from policies.sharing.actor import MultiModuleActor

    modules = modules_of("ps-id", "lbf", "lbf1")
    actor = MultiModuleActor(modules, shared_mapping, {"agent_id": True, "global_state": False}, deterministic=True)
    env = LBFEnv({"world": {"size": "lbf1"}})  # a plain env: no ids in its observations
    obs, _ = env.reset(seed=0)
    actor.reset(0)
    extended = actor.observations(obs)
    assert all(extended[a].shape == (36,) and extended[a][30 + i] == 1 for i, a in enumerate(env.possible_agents))
    actions = actor.act(env.decision_view(), obs)
    assert set(actions) == set(env.possible_agents) and all(0 <= a < 6 for a in actions.values())
    with_ids = LBFEnv({"world": {"size": "lbf1"}, "agent_id": True}).reset(seed=0)[0]
    assert actor.observations(with_ids) is with_ids  # an env that applies them is passed through


# --- the cell worlds (ridehailing, vaccine): masked modules, their observation options, the actor -----------------
def cell_modules(method: str, world: str, sets=()) -> dict:
    from rl_cs import registry

    config = registry.get_world(world).load_config(None, list(sets))
    algorithm = get_method(method).build_algorithm(config, {"world": to_dict(config.world)}, 0)
    return {module_id: spec.build() for module_id, spec in algorithm.rl_module_spec.rl_module_specs.items()}


@pytest.mark.parametrize("world", ["ridehailing", "vaccine"])
def test_cell_world_modules_never_pick_an_action_the_world_forbids(world):
    from rl_cs import registry

    spec = registry.get_world(world)
    env = spec.make_env(spec.load_config(None, []), None)
    mask = registry.resolve(spec.action_mask)
    obs, _ = env.reset(seed=0)
    allowed = np.stack([mask(env, agent, obs[agent]) for agent in env.possible_agents])
    assert not allowed.all(), "the corner and edge cells of a grid have neighbours outside it"
    batch = torch.as_tensor(np.stack([obs[agent] for agent in env.possible_agents]))
    for method in ("ps", "nops", "dyps-mappo"):
        modules = cell_modules(method, world)
        module = modules.get("shared") or modules.get("agent_0") or modules["group_0"]
        assert module.mask_layout == dict(env.action_mask_layout)
        if method == "dyps-mappo":  # the actor reads o_i of [o_i, s]: the mask is read there too
            extended = env.extend_observations(list(batch.numpy()), False, True)
            inputs = torch.as_tensor(np.stack(extended))
        else:
            inputs = batch
        with torch.no_grad():
            logits = module.forward_inference({Columns.OBS: inputs})[Columns.ACTION_DIST_INPUTS]
        probs = torch.softmax(logits, -1).numpy()
        assert (probs[~allowed] == 0).all() and np.allclose(probs.sum(-1), 1)
        assert (probs[allowed] > 0).all()
        assert torch.isfinite(torch.distributions.Categorical(logits=logits).entropy()).all()
    plain = modules_of("ps", "lbf", "lbf1")["shared"]
    assert plain.mask_layout is None  # lbf: every action always allowed, the module is unchanged


@pytest.mark.parametrize("world", ["ridehailing", "vaccine"])
def test_cell_world_actor_applies_the_worlds_own_options(world):
    """`rl-cs evaluate` scores a checkpoint on a plain world: the actor extends its observations the world's own
    way (its compact global state), to exactly what the world gives with the options on."""
    from policies.sharing.actor import MultiModuleActor
    from rl_cs import registry

    spec = registry.get_world(world)
    config = spec.load_config(None, [])
    env_class = spec.env_class()
    modules = cell_modules("ps-id", world)
    actor = MultiModuleActor(modules, shared_mapping, {"agent_id": True, "global_state": True},
                             extend=env_class.extend_observations)
    plain = env_class({"world": to_dict(config.world)})
    options = env_class({"world": to_dict(config.world), "agent_id": True, "global_state": True})
    obs, _ = plain.reset(seed=3)
    want, _ = options.reset(seed=3)
    got = actor.observations(obs)
    assert all(np.array_equal(got[a], want[a]) for a in plain.possible_agents)
