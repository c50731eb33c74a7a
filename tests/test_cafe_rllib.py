"""CAFE and its learned reward-shaping baselines inside RLlib: the reward-rewriting learner connector, the
phi updates against L_Lambda, end-to-end CLI training and evaluation, bad input, and a NaN stopping training.

Tiny worlds and batches (tests/configs/csc_tiny.yaml, 300 decisions per batch, one epoch) keep the file at
a few minutes on a busy 2-core machine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from ray.rllib.connectors.connector_pipeline_v2 import ConnectorPipelineV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from envs.csc import env_config
from policies.cafe.connector import A_OFFSET, A_PAY, CMI, D_PHI_1, D_PHI_2, batch_contributions
from policies.cafe.credit import redistribute
from policies.cafe.regulariser import linear_return_gap
from policies.ices import BONUS
from policies.relara import PROPOSAL, RETURN
from policies.shaping.connector import ENV_REWARD, RewriteRewards, fact
from rl_cs.cli import main
from rl_cs.experiment.config import load_experiment
from rl_cs.registry import get_method

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")
SMALL = ["training.train_batch_size=300", "training.minibatch_size=150"]
pytestmark = pytest.mark.slow


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


def sets(*overrides: str) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.fixture(scope="module")
def cafe():
    """A tiny CAFE algorithm (phi_lr raised so a short run of phi updates moves phi visibly)."""
    import envs
    from rl_cs.experiment.tune_runner import start_ray

    start_ray()
    envs.register()
    config = load_experiment(TINY, [*SMALL, "cafe.phi.phi_lr=0.05"])
    algo = get_method("cafe").build_algorithm(config, env_config(config.world, None), 0).build_algo()
    yield algo
    algo.stop()
    import ray

    ray.shutdown()  # later modules start their own Rays (in subprocesses too): leave no idle one running


def learner_batches(algo, episodes):
    """The CAFE learner's connector output and the stock PPO pipeline's, on copies of the same episodes."""
    learner = algo.learner_group._learner
    stock = ConnectorPipelineV2(connectors=[piece for piece in learner._learner_connector.connectors
                                            if not isinstance(piece, RewriteRewards)])

    def run(pipeline):
        return pipeline(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={},
                        metrics=learner.metrics)["shared"]

    return learner, run(learner._learner_connector), run(stock)


def test_connector_rewrites_the_rewards_ppo_trains_on_and_nothing_else(cafe):
    episodes = cafe.env_runner.sample(num_timesteps=300)
    learner, ours, stock = learner_batches(cafe, episodes)
    downstream = {Columns.REWARDS, Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS}
    assert set(stock) <= set(ours)
    for key in set(stock) - downstream:
        assert torch.equal(torch.as_tensor(ours[key]), torch.as_tensor(stock[key])), key
    torch.testing.assert_close(ours[ENV_REWARD], stock[Columns.REWARDS])
    credit = learner.module["credit"]
    valid, phi, config = ours[fact("valid")], credit.phi, credit.phi_config
    assert valid.any() and not valid.all()
    # the rewards are the world's payments redistributed (policies.cafe.credit): tau_0 rows get nothing, and
    # the batch's rewards sum to (phi_1 + phi_2) x its payments ("mix")
    expected = redistribute(ours[CMI], phi, batch_contributions(ours), config.eta, config.redistribution,
                            config.weight_floor, config.cmi_split == "cmi_x_work")
    torch.testing.assert_close(ours[Columns.REWARDS][valid], expected[valid])
    idle = valid & (ours[Columns.ACTIONS] == 0)
    assert idle.any() and (ours[Columns.REWARDS][idle] == 0).all()
    torch.testing.assert_close(ours[Columns.REWARDS].sum(), phi.sum() * ours[ENV_REWARD][valid].sum())
    assert (ours[Columns.REWARDS][~valid] == 0).all()
    assert not torch.equal(ours[Columns.REWARDS], stock[Columns.REWARDS])  # phi_1 = 1: the CMI split, not by work
    # GAE is linear in the rewards: the advantage basis reproduces PPO's (standardised) advantages exactly
    advantages = ours[A_OFFSET] + phi[0] * ours[D_PHI_1] + phi[1] * ours[D_PHI_2]
    standardised = (advantages - advantages.mean()) / advantages.std(unbiased=False).clamp_min(1e-4)
    torch.testing.assert_close(standardised, ours[Postprocessing.ADVANTAGES].float(), atol=1e-4, rtol=1e-4)
    assert torch.isfinite(ours[A_PAY]).all() and ours[A_PAY].abs().sum() > 0
    metrics = learner.metrics.peek("credit")
    assert 0 < metrics["tau0_share"] < 1 and metrics["reward_mean_tau0"] == 0.0


def test_connector_advantages_are_rllib_gae_on_the_rewritten_rewards(cafe):
    """Issue 9: CAFE's learner replaces RLlib's GeneralAdvantageEstimation by GivenAdvantageEstimation, which
    keeps the advantages and value targets CAFE's connector computed from its own critic pass; they are what
    RLlib's piece computes on the rewritten rewards (one critic pass over the batch instead of two)."""
    from ray.rllib.connectors.learner import GeneralAdvantageEstimation

    from policies.cafe.learner import GivenAdvantageEstimation

    learner = cafe.learner_group._learner
    pieces = [type(piece).__name__ for piece in learner._learner_connector.connectors]
    assert "GeneralAdvantageEstimation" not in pieces
    assert pieces.index("RewriteRewards") + 1 == pieces.index("GivenAdvantageEstimation")
    episodes = copy.deepcopy(cafe.env_runner.sample(num_timesteps=300))
    batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=episodes, shared_data={},
                                       metrics=learner.metrics)
    ours = batch["shared"]
    gae = (Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS)
    stripped = {"shared": {key: value for key, value in ours.items() if key not in gae}}
    config = cafe.config
    rllib = GeneralAdvantageEstimation(gamma=config.gamma, lambda_=config.lambda_)(
        rl_module=learner.module, batch=copy.copy(stripped), episodes=episodes)["shared"]
    for key in gae:
        assert ours[key].dtype == rllib[key].dtype and ours[key].shape == rllib[key].shape
        torch.testing.assert_close(ours[key], rllib[key], rtol=1e-6, atol=1e-6)
    # without the connector's columns the piece is RLlib's GAE
    given = GivenAdvantageEstimation(gamma=config.gamma, lambda_=config.lambda_)(
        rl_module=learner.module, batch={"shared": dict(stripped["shared"])}, episodes=episodes)["shared"]
    for key in gae:
        torch.testing.assert_close(given[key], rllib[key], rtol=0, atol=0)


def test_phi_updates_bring_redistributed_return_to_eta_times_payments(cafe):
    learner, batch, _ = learner_batches(cafe, cafe.env_runner.sample(num_timesteps=300))
    credit = learner.module["credit"]
    eta = credit.phi_config.eta
    phi_before = credit.phi.clone()
    credit.phi.copy_(torch.tensor([2.0, 1.0]))  # phi_1 + phi_2 = 3: redistributed returns 3x the payments
    loss = linear_return_gap(credit.last_returns, eta)
    losses, phis = [float(loss(credit.phi))], [credit.phi.clone()]
    for _ in range(100):
        learner.update_phi(batch)
        losses.append(float(loss(credit.phi)))
        phis.append(credit.phi.clone())
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    assert losses[25] < 0.5 * losses[0]  # (Adam at rate 0.05 then oscillates about phi_1 + phi_2 = eta)
    assert abs(float(phis[-1].sum()) - eta) < 0.5 * abs(float(phis[0].sum()) - eta)
    metrics = learner.metrics.peek("credit")
    assert metrics["implicit_residual"] < 1.0 and metrics["implicit_damping"] >= cafe.config.learner_config_dict[
        "cafe"]["implicit"]["damping"]
    assert abs(metrics["implicit_1"]) + abs(metrics["implicit_2"]) > 0, "the implicit term must not vanish"
    # Eq. 19 (fine-tuning switched on): the pulled-back Newton step moves phi towards phi_1 + phi_2 = eta
    credit.phi.copy_(torch.tensor([2.0, 1.0]))
    credit.finetune_on.fill_(True)
    learner_batches(cafe, cafe.env_runner.sample(num_timesteps=300))
    kappa = credit.phi_config.newton_damping
    assert abs(float(credit.phi.sum()) - eta) < abs(3.0 - eta)
    assert float(credit.phi.sum()) == pytest.approx(3.0 - 2.0 * 4 / (4 + kappa), abs=0.15)  # exact for whole tasks
    credit.finetune_on.fill_(False)
    credit.phi.copy_(phi_before)


def test_nan_in_phi_stops_training_naming_phi_and_keeps_the_checkpoint(cafe, tmp_path):
    cafe.train()
    saved = Path(cafe.save(str(tmp_path / "good")).checkpoint.path)
    before = {p: p.stat().st_mtime_ns for p in saved.rglob("*") if p.is_file()}
    cafe.learner_group._learner.module["credit"].phi.fill_(float("nan"))
    with pytest.raises(Exception, match="non-finite value in phi"):
        cafe.train()
    assert {p: p.stat().st_mtime_ns for p in saved.rglob("*") if p.is_file()} == before


def test_cli_trains_cafe_end_to_end_with_fine_tuning(tmp_path):
    # tolerance 1.0: only a doubling of the training revenue is a new best, so the second iteration plateaus
    finetune_early = ["cafe.phi.finetune_after=1", "cafe.phi.patience=1", "cafe.phi.tolerance=1.0"]
    assert cli("train", "cafe", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               *sets(*SMALL, "experiment.iterations=2", *finetune_early)) == 0
    trial = next((tmp_path / "cafe-csc").glob("PPO_csc_*"))
    results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in results] == [1, 2]
    credit = results[-1]["learners"]["credit"]
    for key in ("phi_1", "phi_2", "L_Lambda", "vae_loss", "cmi_mean", "implicit_step_s", "tau0_share",
                "implicit_damping", "training_revenue_per_env_step", "newton_step_norm"):
        assert pd.notna(credit[key]) and abs(credit[key]) < float("inf"), key
    assert results[0]["learners"]["credit"]["finetune_on"] == 0.0  # one iteration cannot be a plateau
    assert credit["finetune_on"] == 1.0
    comparison = pd.read_csv(tmp_path / "cafe-csc" / "comparison.csv")
    assert comparison["method"].tolist() == ["cafe", "greedy"]


def shaper_rewrite(algo, method: str, shaper_id: str):
    """The RewriteRewards piece with ``method``'s (untrained) shaper module, built as rl-cs builds it, on the
    policy batch the CAFE learner's pipeline makes of freshly sampled episodes up to that piece; returns the
    shaper and the rewritten policy batch."""
    config = load_experiment(TINY, SMALL)
    spec = get_method(method).build_algorithm(config, env_config(config.world, None), 0).rl_module_spec
    shaper = spec.rl_module_specs[shaper_id].build()
    learner = algo.learner_group._learner
    pieces = learner._learner_connector.connectors
    upstream = ConnectorPipelineV2(connectors=pieces[:[type(p) for p in pieces].index(RewriteRewards)])
    episodes = copy.deepcopy(algo.env_runner.sample(num_timesteps=300))
    batch = upstream(rl_module=learner.module, batch={}, episodes=episodes, shared_data={}, metrics=learner.metrics)
    piece = RewriteRewards(policy_id="shared", shaper_id=shaper_id, num_near_workers=config.world.num_near_workers)
    return shaper, piece(rl_module={"shared": learner.module["shared"], shaper_id: shaper}, batch=batch,
                         episodes=episodes)["shared"]


def test_ices_adds_its_intrinsic_bonus_to_the_reward_ppo_trains_on(cafe):
    ices, batch = shaper_rewrite(cafe, "ices", "ices")
    valid, rewards, env, bonus = batch[fact("valid")], batch[Columns.REWARDS], batch[ENV_REWARD], batch[BONUS]
    assert valid.any() and not valid.all()
    assert ices.beta > 0
    assert ((bonus >= 0) & (bonus < 1)).all() and (bonus[~valid] == 0).all()
    torch.testing.assert_close(rewards[valid], env[valid] + ices.beta * bonus[valid])
    assert (rewards[~valid] == 0).all()
    assert (rewards[valid] != env[valid]).any(), "the bonus must change the reward PPO trains on"
    loss, metrics = ices.shaping_loss(batch)
    assert torch.isfinite(loss) and all(torch.isfinite(torch.as_tensor(v)) for v in metrics.values())


def test_relara_adds_the_reward_agents_proposal_to_the_reward_ppo_trains_on(cafe):
    relara, batch = shaper_rewrite(cafe, "relara", "relara")
    valid, rewards, env, proposal = batch[fact("valid")], batch[Columns.REWARDS], batch[ENV_REWARD], batch[PROPOSAL]
    assert 0 < relara.beta
    assert ((proposal >= -1) & (proposal <= 1)).all() and (proposal[~valid] == 0).all()
    torch.testing.assert_close(rewards[valid], env[valid] + relara.beta * proposal[valid])
    change = (rewards - env)[valid]
    assert (change.abs() <= relara.beta + 1e-6).all() and (change != 0).any()
    assert (rewards[~valid] == 0).all() and torch.isfinite(batch[RETURN]).all()
    loss, metrics = relara.shaping_loss(batch)
    assert torch.isfinite(loss) and all(torch.isfinite(torch.as_tensor(v)) for v in metrics.values())


SHAPER = {"ir": None, "ices": "ices", "relara": "relara", "ca-nofe": "credit"}
"""The module that rewrites each baseline's rewards in the learner (None: PPO on the world's own reward)."""


def finite(value) -> bool:
    return pd.notna(value) and abs(value) < float("inf")


@pytest.mark.parametrize("method, extra", [("ir", []), ("ices", []), ("relara", []),
                                           ("ca-nofe", ["cafe.critic=mappo"])])
def test_baseline_trains_and_runs_through_evaluation(tmp_path, method, extra):
    assert cli("train", method, "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               *sets(*SMALL, *extra)) == 0
    comparison = pd.read_csv(tmp_path / f"{method}-csc" / "comparison.csv")
    assert comparison["method"].tolist() == [method, "greedy"]
    assert (comparison["revenue"] >= 0).all()
    trial = next((tmp_path / f"{method}-csc").glob("PPO_csc_*"))
    world = json.loads((trial / "params.json").read_text())["env_config"]["world"]
    result = json.loads((trial / "result.json").read_text().splitlines()[-1])
    learners = result["learners"]
    for key in ("policy_loss", "vf_loss", "total_loss"):
        assert finite(learners["shared"][key]), key
    # the world's reward mode, and which module (if any) rewrote it: IR trains on the world's ir reward as is
    assert world["reward"] == ("ir" if method == "ir" else "split")
    shaper = SHAPER[method]
    assert set(learners) - {"shared", "__all_modules__"} == ({shaper} if shaper else set())
    metrics = learners.get(shaper, {})
    if method == "ices":  # the bonus, in [0, 1), was added to the rewards the learner trained on
        assert 0 < metrics["intrinsic_mean"] <= metrics["intrinsic_max"] < 1
        assert finite(metrics["cvae_loss"])
    if method == "relara":  # the proposal, in [-1, 1], was added (a non-zero mean: not all zero)
        assert 0 < abs(metrics["proposal_mean"]) <= 1
        assert finite(metrics["proposal_loss"]) and finite(metrics["baseline_loss"])
    if method == "ca-nofe":  # Eq. 5 rewards, phi trained, never fine-tuned
        assert metrics["finetune_on"] == 0.0
        assert all(finite(metrics[key]) for key in ("phi_1", "phi_2", "L_Lambda", "vae_loss"))
        assert (metrics["phi_1"], metrics["phi_2"]) != (1.0, 0.0)


@pytest.mark.parametrize("override, field", [
    ("cafe.implicit.theta_l_layers=[score_nope]", "cafe.implicit.theta_l_layers"),
    ("cafe.phi.eta=0", "cafe.phi.eta"),
    ("cafe.phi.phi_lr=-1e-3", "cafe.phi.phi_lr"),
    ("cafe.phi.finetune_after=0", "cafe.phi.finetune_after"),
    ("cafe.phi.phi_bounds=[1.0,-1.0]", "cafe.phi.phi_bounds"),
    ("cafe.phi.patience=0", "cafe.phi.patience"),
    ("cafe.phi.newton_damping=-0.5", "cafe.phi.newton_damping"),
    ("cafe.credit.kl_weight=-1", "cafe.credit.kl_weight"),
    ("cafe.critic=qmix", "cafe.critic"),
])
def test_bad_cafe_input_exits_2_naming_the_file_and_field(tmp_path, capsys, override, field):
    assert cli("train", "cafe", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               "--set", override) == 2
    err = capsys.readouterr().err
    assert field in err and override in err, err  # the YAML path, and where the value came from
    assert not any(tmp_path.iterdir()), "a rejected config must write nothing"


@pytest.mark.parametrize("section, field", [
    ("phi: {phi_lr: -1.0e-3}", "cafe.phi.phi_lr"),
    ("implicit: {solver: newton}", "cafe.implicit.solver"),
    ("credit: {hidden_dim: 0}", "cafe.credit.hidden_dim"),
    ("phi: {finetune: false}", "cafe.phi.finetune"),  # decided by the method (cafe / ca-nofe), not a field
    ("credit: {obs_dim: 8}", "cafe.credit.obs_dim"),  # the trunk's width, not a field
])
def test_bad_cafe_yaml_is_named_by_file_and_yaml_path(tmp_path, section, field):
    from rl_cs.errors import InputError

    path = tmp_path / "bad.yaml"
    path.write_text(f"{Path(TINY).read_text()}\ncafe:\n  {section}\n")
    with pytest.raises(InputError) as error:
        load_experiment(path)
    assert "bad.yaml" in str(error.value) and field in str(error.value), str(error.value)


def test_flat_cafe_names_from_before_the_nesting_are_unknown(tmp_path, capsys):
    assert cli("train", "cafe", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               "--set", "cafe.phi_lr=0.01") == 2
    err = capsys.readouterr().err
    assert "phi_lr" in err and "unknown field" in err and "implicit" in err, err
