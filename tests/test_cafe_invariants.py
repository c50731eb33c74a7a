"""Invariants of CAFE's credit signal and of its phi updates (issue 9; ../shared/DESIGN.md, "Rewards in
event-driven worlds"), on the CSC world played by scripted policies and on tiny closed-form cases:

- no reward for waiting: tau_0 rows are never rewarded, extra tau_0 decisions change no reward, and a
  scripted population that idles more collects less redistributed reward (the per-decision reading of Eq. 5
  collects more: the test has teeth);
- the redistributed rewards sum to eta x the platform payment (mix: (phi_1 + phi_2) x the payment);
- the outer objective's hypergradient (Eq. 14 with J_out on the payments) against finite differences;
- fine-tuning does not start before the training revenue has plateaued, through the connector itself;
- bad input (phi bounds inverted, plateau patience < 1, a negative fine-tuning damping) exits 2 via the CLI.
Fast: no Ray (the connector is driven on a hand-made batch).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs.csc import CSCEnv, env_config
from policies.cafe.credit import contributions, redistribute
from policies.cafe.hypergradient import implicit_hypergradient
from policies.cafe.config import ImplicitGradConfig
from policies.cafe.regulariser import LinearReturns, linear_return_gap
from rl_cs.cli import main
from rl_cs.experiment.config import load_experiment

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")
DOUBLE = torch.float64
PHI = torch.tensor([0.7, 0.5], dtype=DOUBLE)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def play(seed: int, idle_prob: float) -> tuple[list[dict], float]:
    """One episode of the tiny CSC world (credit facts on) under a scripted policy: each decider waits (tau_0)
    with probability idle_prob, else takes its nearest feasible task. Returns one row per decision -- its
    action, the world's reward that reached it (summed until the worker's next observation, as RLlib does)
    and the completions its next observation reported -- and the episode's revenue."""
    config = load_experiment(TINY)
    env = CSCEnv({**env_config(config.world, None), "credit_facts": True})
    rng = np.random.default_rng(seed + 1000)
    obs, _ = env.reset(seed=seed)
    rows, last, done = [], {}, False
    while not done:
        actions = {}
        for agent in obs:
            actions[agent] = 0 if rng.random() < idle_prob else 1
            last[agent] = len(rows)
            rows.append({"agent": agent, "action": actions[agent], "reward": 0.0, "events": []})
        obs, rewards, terminated, truncated, infos = env.step(actions)
        for agent, reward in rewards.items():
            if agent in last:
                rows[last[agent]]["reward"] += reward
        for agent, info in infos.items():
            if agent in last:
                rows[last[agent]]["events"] += info["events"]
        done = terminated["__all__"] or truncated["__all__"]
    return rows, float(env.stats.revenue)


def batch_of(rows: list[dict]):
    """(env_reward, actions, Contributions) of an episode's rows, as the connector builds them."""
    width = max([len(r["events"]) for r in rows] + [1])
    task = torch.full((len(rows), width), -1, dtype=torch.long)
    weight = torch.zeros(len(rows), width, dtype=DOUBLE)
    for i, row in enumerate(rows):
        for j, event in enumerate(row["events"]):
            task[i, j], weight[i, j] = event["task"], event["payment"] * event["work"]
    env_reward = torch.tensor([r["reward"] for r in rows], dtype=DOUBLE)
    parts = contributions(env_reward, torch.zeros(len(rows), dtype=torch.long), task, weight,
                          torch.ones(len(rows), dtype=torch.bool))
    return env_reward, torch.tensor([r["action"] for r in rows]), parts


def cmi_of(rows: list[dict]) -> torch.Tensor:
    """A CMI per row that does not depend on the row's position (a function of worker and action), >= 0."""
    return torch.tensor([(int(r["agent"].split("_")[1]) * 7 + r["action"] * 13) % 17 / 8.0 for r in rows],
                        dtype=DOUBLE)


@pytest.fixture(scope="module")
def episodes():
    return {p: [play(seed, p) for seed in range(3)] for p in (0.0, 0.8, 0.95)}


# --- no reward for waiting ---------------------------------------------------------------------------------------

FORMS = [("mix", False), ("mix", True), ("weights", False)]
"""(PhiConfig.redistribution, PhiConfig.cmi_split == "cmi_x_work")"""


@pytest.mark.parametrize("form, by_work", FORMS)
def test_tau0_rows_are_never_rewarded_and_rewards_sum_to_eta_times_revenue(episodes, form, by_work):
    eta = 1.3
    for idle_prob, played in episodes.items():
        for rows, revenue in played:
            env_reward, actions, parts = batch_of(rows)
            assert float(env_reward.sum()) == pytest.approx(revenue)  # the world's split pays out its revenue
            rewards = redistribute(cmi_of(rows), PHI, parts, eta, form, by_work=by_work)
            assert (rewards[actions == 0] == 0).all()
            scale = float(PHI.sum()) if form == "mix" else eta  # mix: L_Lambda pulls phi_1 + phi_2 to eta
            assert float(rewards.sum()) == pytest.approx(scale * revenue, rel=1e-9)


@pytest.mark.parametrize("form, by_work", FORMS)
def test_a_scripted_policy_that_idles_more_does_not_collect_more(episodes, form, by_work):
    def collected(idle_prob, reward_of):
        return sum(float(reward_of(rows).sum()) for rows, _ in episodes[idle_prob])

    def redistributed(rows):
        return redistribute(cmi_of(rows), PHI, batch_of(rows)[2], 1.0, form, by_work=by_work)

    def per_decision(rows):  # Eq. 5 read literally, before issue 9: phi_1 CMI + phi_2 on every decision
        return PHI[0] * cmi_of(rows) + PHI[1]

    ours = [collected(p, redistributed) for p in (0.0, 0.8, 0.95)]
    literal = [collected(p, per_decision) for p in (0.0, 0.8, 0.95)]
    assert ours[0] > ours[1] > ours[2], ours
    assert literal[0] < literal[1] < literal[2], literal  # what PPO learned to exploit


@pytest.mark.parametrize("form, by_work", FORMS)
def test_extra_tau0_decisions_change_no_reward(episodes, form, by_work):
    """The same episode replayed with a worker deciding tau_0 more often between its decisions (as a worker
    that waits longer does): the number and the size of its rewards are unchanged."""
    rows, _ = episodes[0.0][0]
    rng = np.random.default_rng(0)
    padded, original = [], []
    for row in rows:
        for _ in range(int(rng.integers(0, 4))):
            padded.append({"agent": row["agent"], "action": 0, "reward": 0.0, "events": []})
        original.append(len(padded))
        padded.append(row)
    before = redistribute(cmi_of(rows), PHI, batch_of(rows)[2], 1.0, form, by_work=by_work)
    cmi = torch.rand(len(padded), dtype=DOUBLE) * 5  # the inserted tau_0 rows get any CMI ...
    cmi[original] = cmi_of(rows)  # ... the original rows keep theirs
    after = redistribute(cmi, PHI, batch_of(padded)[2], 1.0, form, by_work=by_work)
    torch.testing.assert_close(after[original], before)
    inserted = torch.ones(len(padded), dtype=torch.bool)
    inserted[original] = False
    assert (after[inserted] == 0).all()
    assert int((after != 0).sum()) == int((before != 0).sum())


# --- the outer objective's hypergradient --------------------------------------------------------------------------

def test_outer_objective_hypergradient_matches_finite_differences():
    """A tiny case with a closed-form inner optimum: a tabular softmax policy (4 contexts x 3 actions, theta^l
    = its logits) maximising J = E_s[sum_a pi(a|s) A(phi)_{s,a} + tau H(pi(.|s))], A(phi) = offset + phi_1 D_1
    + phi_2 D_2 (the connector's advantage basis), so theta*(phi) = A(phi) / tau; J_out = E_s[sum_a pi P] on
    payment advantages P, independent of phi. Eq. 14's total must equal dF/dphi of F(phi) = J_out(theta*(phi))
    - L_Lambda(phi) by central differences."""
    tau = 0.7
    offset, d1, d2, pay = torch.randn(4, 4, 3, dtype=DOUBLE)
    returns = LinearReturns(torch.zeros(5, dtype=DOUBLE), torch.rand(5, 2, dtype=DOUBLE) + 0.5,
                            torch.rand(5, dtype=DOUBLE) + 0.5)
    regulariser = linear_return_gap(returns, eta=1.0)

    def advantage(phi):
        return offset + phi[0] * d1 + phi[1] * d2

    def inner(theta, phi):
        logp = torch.log_softmax(theta[0], -1)
        return (logp.exp() * (advantage(phi) - tau * logp)).sum(-1).mean()

    def outer(theta, phi):
        return (torch.softmax(theta[0], -1) * pay).sum(-1).mean()

    def solved(phi):
        return outer([advantage(phi) / tau], phi) - regulariser(phi)

    phi = torch.tensor([0.8, 0.3], dtype=DOUBLE)
    config = ImplicitGradConfig(("head",), solver="cg", iterations=100, damping=0.0, cg_tolerance=1e-12)
    result = implicit_hypergradient(inner, [advantage(phi) / tau], phi, config, regulariser, outer)
    eps = 1e-6
    differences = torch.stack([(solved(phi + eps * e) - solved(phi - eps * e)) / (2 * eps)
                               for e in torch.eye(2, dtype=DOUBLE)])
    torch.testing.assert_close(result.total, differences, rtol=1e-5, atol=1e-7)
    assert not result.direct.any() and result.implicit.abs().sum() > 1e-3  # J_out moves phi only implicitly
    assert result.solve.increases == 0


# --- fine-tuning waits for the plateau, through the connector ---------------------------------------------------

def credit_module(**phi):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from envs.csc_observation import ObsLayout
    from policies.cafe.credit_module import CreditModule

    layout = ObsLayout(2, 2, 2, 2)
    spec = RLModuleSpec(module_class=CreditModule,
                        observation_space=gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32),
                        action_space=gym.spaces.Discrete(layout.num_actions),
                        model_config={"layout": layout.to_dict(), "embed_dim": 8, "num_heads": 2, "hidden_dim": 8,
                                      "phi": {"phi_init": [1.0, 0.0], **phi}, "finetune": True,
                                      "policy": "shared", "gamma": 0.99, "lambda_": 0.95})
    return spec.build(), layout


class ZeroCritic:
    def compute_values(self, batch):
        return torch.zeros(len(batch["env_reward"]))

    def is_stateful(self):
        return False


def fake_batch(layout, payment: float):
    """Two trajectories of 6 rows (the last a bootstrap row): rows 1 and 2 of each share a task paid
    ``payment`` (split 3 : 1 by the world), so the batch's trajectories are complete."""
    from ray.rllib.core.columns import Columns

    from policies.shaping.connector import ENV_REWARD, fact

    n = 12
    reward = torch.zeros(n)
    task = torch.full((n, 1), -1)
    for start in (0, 6):
        reward[start + 1], reward[start + 2] = 0.75 * payment, 0.25 * payment
        task[start + 1, 0] = task[start + 2, 0] = 5
    valid = torch.tensor([True] * 5 + [False] + [True] * 5 + [False])
    return {Columns.OBS: torch.randn(n, layout.size), Columns.ACTIONS: torch.tensor([0, 1, 2, 0, 1, 0] * 2),
            ENV_REWARD: reward, Columns.TERMINATEDS: torch.tensor([False] * 4 + [True, False] * 1 + [False] * 4
                                                                  + [True, False]),
            Columns.TRUNCATEDS: torch.zeros(n, dtype=torch.bool),
            fact("valid"): valid, fact("segment"): torch.tensor([0] * 6 + [1] * 6),
            fact("episode"): torch.tensor([0] * 6 + [1] * 6), fact("event_task"): task,
            fact("event_weight"): torch.where(task >= 0, torch.ones(n, 1), torch.zeros(n, 1)),
            fact("neighbour_actions"): torch.zeros(n, layout.num_near_workers, dtype=torch.long),
            fact("neighbour_mask"): torch.zeros(n, layout.num_near_workers, dtype=torch.bool),
            fact("near_revenue"): reward.clone()}


def test_fine_tuning_waits_for_the_plateau_then_pulls_phi_towards_eta():
    from policies.cafe.connector import cafe_rewrite

    credit, layout = credit_module(finetune_after=2, tolerance=0.01, patience=2, newton_damping=0.5, eta=1.0,
                                   phi_init=[1.0, 0.0])
    credit.phi.copy_(torch.tensor([2.0, 1.0]))  # as if the Eq. 14 updates had left phi_1 + phi_2 = 3 != eta
    modules = {"shared": ZeroCritic()}
    on = []
    with torch.no_grad():
        for payment in (10.0, 12.0, 14.0, 16.0):  # still rising by > 1% per iteration: no fine-tuning
            credit.note_sampling(10)
            cafe_rewrite(credit, fake_batch(layout, payment), modules)
            on.append(bool(credit.finetune_on))
        assert not any(on) and credit.phi.tolist() == [2.0, 1.0]
        for payment in (16.05, 15.9):  # within 1% of the best twice: the plateau, Newton step at once
            credit.note_sampling(10)
            rewards, _ = cafe_rewrite(credit, fake_batch(layout, payment), modules)
            on.append(bool(credit.finetune_on))
    assert on[-2:] == [False, True]
    assert credit.phi_before_finetune.tolist() == [2.0, 1.0]
    # L_Lambda = (phi_1 + phi_2 - 1)^2 has Hessian 2 (1, 1)(1, 1)' (normalised); with kappa = 0.5 the pulled-back
    # Newton step moves phi along (1, 1) by -4 / (4 + 0.5) * (3 - 1) / 2 each: phi_1 + phi_2 = 3 - 2 * 4 / 4.5
    assert float(credit.phi.sum()) == pytest.approx(3 - 2 * 4 / 4.5, rel=1e-5)
    assert float(credit.phi[0] - credit.phi[1]) == pytest.approx(1.0, rel=1e-5)
    assert float(rewards.sum()) == pytest.approx(float(credit.phi.sum()) * 2 * 15.9, rel=1e-5)
    assert credit.rewrite_metrics["reward_mean_tau0"] == 0.0


# --- bad input through the CLI ----------------------------------------------------------------------------------

def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.mark.parametrize("override, field", [
    ("cafe.phi.phi_bounds=[5.0,0.0]", "cafe.phi.phi_bounds"),
    ("cafe.phi.patience=0", "cafe.phi.patience"),
    ("cafe.phi.newton_damping=-1", "cafe.phi.newton_damping"),
    ("cafe.phi.finetune_buffer=0", "cafe.phi.finetune_buffer"),
    ("cafe.phi.redistribution=per_decision", "cafe.phi.redistribution"),
    ("cafe.phi.cmi_split=work", "cafe.phi.cmi_split"),
    ("cafe.implicit.outer=revenue", "cafe.implicit.outer"),
])
def test_bad_cafe_input_exits_2_naming_the_field(tmp_path, capsys, override, field):
    assert cli("train", "cafe", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               "--set", override) == 2
    err = capsys.readouterr().err
    assert field in err and override in err, err
    assert not any(tmp_path.iterdir()), "a rejected config must write nothing"


def test_vae_loss_on_a_minibatch_without_decision_rows_is_zero_and_reaches_every_parameter():
    """A minibatch of only bootstrap/idle rows (possible when a small minibatch falls between decisions) gives
    a zero VAE loss with zero gradients, not an error or NaN."""
    from policies.cafe.connector import CMI, REVENUE_TARGET
    from policies.shaping.connector import fact

    credit, layout = credit_module()
    batch = fake_batch(layout, 10.0)
    batch[fact("valid")] = torch.zeros(12, dtype=torch.bool)
    batch[CMI], batch[REVENUE_TARGET] = torch.zeros(12), torch.zeros(12)
    loss, metrics = credit.shaping_loss(batch)
    assert loss.item() == 0.0 and metrics == {}
    loss.backward()
    grads = [p.grad for p in credit.parameters() if p.requires_grad]
    assert grads and all(g is not None and not g.any() for g in grads)
    batch[fact("valid")][:5] = True  # with decision rows: a real, finite loss and its statistics
    loss, metrics = credit.shaping_loss(batch)
    assert torch.isfinite(loss) and loss.item() != 0.0 and "cmi_max" in metrics
