"""Issue 9 ("Speed"): the optimised hot paths give the same numbers as the computations they replace.

Speed itself is measured by benchmarks/cafe_cost.py, never asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from torch import nn

from policies.cafe.config import ImplicitGradConfig
from policies.cafe.connector import A_OFFSET, A_PAY, D_PHI_1, D_PHI_2
from policies.cafe.hypergradient import implicit_hypergradient
from policies.cafe.learner import clipped_surrogate, surrogates
from policies.cafe.regulariser import LinearReturns, linear_return_gap
from policies.shaping.connector import fact


class TinyPolicy(nn.Module):
    """A trunk and a last layer ("head", theta^l) returning RLlib's forward output dict."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.head = nn.Linear(8, 4)

    def forward(self, batch):
        return {Columns.ACTION_DIST_INPUTS: self.head(self.trunk(batch[Columns.OBS]))}


def reference_surrogates(policy, params, theta_names, batch, clip):
    """The learner's (J, J_out) before issue 9: each runs the actor's forward pass of its own."""
    rows = batch[fact("valid")] & batch[Columns.LOSS_MASK].bool()
    obs, actions = batch[Columns.OBS][rows], batch[Columns.ACTIONS][rows].long()
    old_logp = batch[Columns.ACTION_LOGP][rows]
    d1, d2, offset, pay = (batch[key][rows] for key in (D_PHI_1, D_PHI_2, A_OFFSET, A_PAY))

    def logp(theta_l):
        weights = {**params, **dict(zip(theta_names, theta_l))}
        logits = torch.func.functional_call(policy, weights, ({Columns.OBS: obs},))[Columns.ACTION_DIST_INPUTS]
        return torch.log_softmax(logits, dim=-1).gather(1, actions.unsqueeze(1)).squeeze(1)

    def inner(theta_l, phi):
        return clipped_surrogate(logp(theta_l), old_logp, offset + phi[0] * d1 + phi[1] * d2, clip)

    def outer(theta_l, phi):
        return clipped_surrogate(logp(theta_l), old_logp, pay, clip)

    return inner, outer


def batch_of(n: int, generator: torch.Generator) -> dict:
    def normal(*shape):
        return torch.randn(*shape, generator=generator)

    return {Columns.OBS: normal(n, 6), Columns.ACTIONS: torch.randint(0, 4, (n,), generator=generator),
            Columns.ACTION_LOGP: normal(n).clamp(-3, 0) - 1.0, Columns.LOSS_MASK: torch.rand(n, generator=generator) > 0.1,
            fact("valid"): torch.rand(n, generator=generator) > 0.1, D_PHI_1: normal(n), D_PHI_2: normal(n),
            A_OFFSET: normal(n), A_PAY: normal(n)}


@pytest.mark.parametrize("outer_kind", ["payment", "inner"])
def test_shared_forward_gives_the_same_eq14_hypergradient(outer_kind):
    """J and J_out sharing one actor forward pass (policies.cafe.learner.surrogates) give exactly the Eq. 14
    terms and CG solve of two separate passes."""
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    policy = TinyPolicy()
    params = {name: p.detach() for name, p in policy.named_parameters()}
    names = ["head.weight", "head.bias"]
    batch = batch_of(64, generator)
    returns = LinearReturns(torch.randn(5, generator=generator, dtype=torch.float64),
                            torch.randn(5, 2, generator=generator, dtype=torch.float64),
                            torch.rand(5, generator=generator, dtype=torch.float64) + 0.5)
    config = ImplicitGradConfig(theta_l_layers=("head",), outer=outer_kind)
    phi = torch.tensor([0.7, 0.4])
    results = []
    for build in (surrogates, reference_surrogates):
        inner, outer = build(policy, params, names, batch, 0.2)
        results.append(implicit_hypergradient(inner, [params[n] for n in names], phi, config,
                                              regulariser=linear_return_gap(returns, 1.0),
                                              outer=outer if outer_kind == "payment" else None))
    fast, reference = results
    for term in ("total", "direct", "implicit", "regulariser"):
        torch.testing.assert_close(getattr(fast, term), getattr(reference, term), rtol=1e-6, atol=1e-9)
    assert fast.solve.damping == reference.solve.damping and fast.solve.increases == reference.solve.increases
    assert fast.solve.residual == pytest.approx(reference.solve.residual, rel=1e-5, abs=1e-9)


def test_surrogates_recompute_for_new_theta():
    """The shared forward pass is reused only for the same theta^l tensors, never for new values."""
    torch.manual_seed(0)
    policy = TinyPolicy()
    params = {name: p.detach() for name, p in policy.named_parameters()}
    names = ["head.weight", "head.bias"]
    batch = batch_of(32, torch.Generator().manual_seed(1))
    fast_inner, _ = surrogates(policy, params, names, batch, 0.2)
    ref_inner, _ = reference_surrogates(policy, params, names, batch, 0.2)
    phi = torch.tensor([1.0, 0.5])
    for scale in (1.0, 2.0, 1.0):
        theta = [params[n] * scale for n in names]
        assert torch.equal(fast_inner(theta, phi), ref_inner(theta, phi))


@pytest.mark.slow
def test_env_runner_with_one_numpy_conversion_samples_the_same_episodes():
    """PerModuleMetricsEnvRunner (numpy conversion once per sample) returns the same episodes as RLlib's
    MultiAgentEnvRunner (conversion after every env step), seeded alike."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    import envs
    from envs.csc import env_config
    from rl_cs.experiment.config import load_experiment
    from rl_cs.experiment.env_runner import PerModuleMetricsEnvRunner
    from rl_cs.experiment.ppo import ppo_config

    envs.register()
    config = load_experiment(None, ["world.num_workers=8", "world.num_tasks=8"])
    algo_config = ppo_config(config, env_config(config.world, None), seed=0)
    sampled = []
    for runner_class in (PerModuleMetricsEnvRunner, MultiAgentEnvRunner):
        runner = runner_class(config=algo_config)
        sampled.append(runner.sample(num_timesteps=300, random_actions=False))
        runner.stop()
    fast, reference = sampled
    assert len(fast) == len(reference) > 1 and any(episode.agent_episodes for episode in fast)
    for a, b in zip(fast, reference):
        # (MultiAgentEpisode.is_numpy raises on a chunk in which no agent has acted yet: check agent by agent)
        assert a.env_t_started == b.env_t_started and len(a) == len(b)
        assert set(a.agent_episodes) == set(b.agent_episodes)
        for agent, episode in a.agent_episodes.items():
            other = b.agent_episodes[agent]
            assert episode.is_numpy and other.is_numpy
            for get in ("get_observations", "get_actions", "get_rewards"):
                np.testing.assert_array_equal(getattr(episode, get)(), getattr(other, get)())


def test_phi_step_reading_ppo_forward_features_gives_the_same_hypergradient(tmp_path):
    """The phi step on the actor tower's outputs from PPO's training forward (ActionHead over score_none and
    score_option) gives the Eq. 14 terms of re-running the whole attention actor; a theta^l reaching into the
    tower falls back to the full forward (the features would be stale for it)."""
    from envs.csc import CSCEnv
    from policies.attention import ACTOR_CONTEXT, ACTOR_OPTION_ROWS, AttentionActorCritic
    from policies.cafe.learner import head_only

    env = CSCEnv({"world": {"num_workers": 12, "num_tasks": 12}, "cache_dir": str(tmp_path)})
    rows = []
    obs, _ = env.reset(seed=4)
    while len(rows) < 48 and obs:
        rows.extend(obs.values())
        obs, *_ = env.step({agent: 0 for agent in obs})
    torch.manual_seed(0)
    policy = AttentionActorCritic(observation_space=env.observation_spaces["worker_0"],
                                  action_space=env.action_spaces["worker_0"],
                                  model_config={"layout": env.layout.to_dict(), "embed_dim": 16, "num_heads": 2,
                                                "hidden_dim": 32})
    generator = torch.Generator().manual_seed(5)
    n = len(rows)
    batch = {**batch_of(n, generator), Columns.OBS: torch.from_numpy(np.stack(rows))}
    batch[Columns.ACTIONS] = torch.zeros(n, dtype=torch.long)  # tau_0 is always allowed
    out = policy.forward_train(batch)
    features = (out[ACTOR_CONTEXT], out[ACTOR_OPTION_ROWS])
    assert not features[0].requires_grad
    torch.testing.assert_close(out[Columns.ACTION_DIST_INPUTS], policy.action_logits(batch[Columns.OBS]))
    params = {name: p.detach() for name, p in policy.named_parameters()}
    names = [name for name in params if name.split(".")[0] in ("score_none", "score_option")]
    assert head_only(names) and not head_only(names + ["actor.merge.0.weight"])
    returns = LinearReturns(torch.randn(4, generator=generator, dtype=torch.float64),
                            torch.randn(4, 2, generator=generator, dtype=torch.float64),
                            torch.rand(4, generator=generator, dtype=torch.float64) + 0.5)
    config = ImplicitGradConfig(outer="payment")
    phi = torch.tensor([0.8, 0.3])
    results = []
    for given in (features, None):
        inner, outer = surrogates(policy, params, names, batch, 0.2, given)
        results.append(implicit_hypergradient(inner, [params[name] for name in names], phi, config,
                                              regulariser=linear_return_gap(returns, 1.0), outer=outer))
    reused, full = results
    assert full.implicit.abs().sum() > 0
    for term in ("total", "direct", "implicit", "regulariser"):
        torch.testing.assert_close(getattr(reused, term), getattr(full, term), rtol=1e-5, atol=1e-8)
