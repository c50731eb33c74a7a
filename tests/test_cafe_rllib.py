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
from policies.cafe.connector import A_V, CMI, D_CMI, D_ONE, return_gap
from policies.shaping.connector import ENV_REWARD, RewriteRewards, fact
from rl_cs.cli import main
from rl_cs.experiment.config import load_experiment
from rl_cs.experiment.methods import get_method

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
    config = load_experiment(TINY, [*SMALL, "cafe.phi_lr=0.05"])
    algo = get_method("cafe").build(config, env_config(config.world, None), 0).build_algo()
    yield algo
    algo.stop()


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
    valid, phi = ours[fact("valid")], learner.module["credit"].phi
    assert valid.any() and not valid.all()
    torch.testing.assert_close(ours[Columns.REWARDS][valid], phi[0] * ours[CMI][valid] + phi[1])
    assert (ours[Columns.REWARDS][~valid] == 0).all()
    assert not torch.equal(ours[Columns.REWARDS], stock[Columns.REWARDS])
    # GAE is linear in the rewards: the advantage basis reproduces PPO's (standardised) advantages exactly
    advantages = phi[0] * ours[D_CMI] + phi[1] * ours[D_ONE] + ours[A_V]
    standardised = (advantages - advantages.mean()) / advantages.std(unbiased=False).clamp_min(1e-4)
    torch.testing.assert_close(standardised, ours[Postprocessing.ADVANTAGES].float(), atol=1e-4, rtol=1e-4)


def test_phi_updates_bring_redistributed_return_to_eta_times_payments(cafe):
    learner, batch, _ = learner_batches(cafe, cafe.env_runner.sample(num_timesteps=300))
    credit = learner.module["credit"]
    cmi, payments, segments = credit.last_returns
    eta = credit.phi_config.eta
    loss = return_gap(cmi, payments, segments, eta)

    def gap() -> float:  # summed over trajectories: |sum_t r(phi) - eta sum_t rho|
        rewards = credit.phi[0] * cmi + credit.phi[1]
        index = torch.unique(segments, return_inverse=True)[1]
        per_segment = torch.zeros(int(index.max()) + 1).index_add(0, index, rewards - eta * payments)
        return float(per_segment.abs().sum())

    losses, gaps = [float(loss(credit.phi))], [gap()]
    for _ in range(100):
        learner.update_phi(batch)
        losses.append(float(loss(credit.phi)))
        gaps.append(gap())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert gaps[-1] < 0.75 * gaps[0], gaps[::10]
    assert losses[50] < losses[25] < losses[0] and gaps[50] < gaps[25] < gaps[0]
    # Eq. 19 (fine-tuning switched on): one Newton step lands on the least-squares phi of the new batch
    credit.finetune_on.fill_(True)
    phi_hat = credit.phi.clone()
    learner_batches(cafe, cafe.env_runner.sample(num_timesteps=300))
    loss = return_gap(*credit.last_returns, eta)

    def gradient(phi):
        phi = phi.clone().requires_grad_(True)
        return torch.autograd.grad(loss(phi), phi)[0]

    assert gradient(credit.phi).norm() < 0.1 * gradient(phi_hat).norm()  # damped pinv step, float32
    assert loss(credit.phi) <= loss(phi_hat)
    credit.finetune_on.fill_(False)


def test_nan_in_phi_stops_training_naming_phi_and_keeps_the_checkpoint(cafe, tmp_path):
    cafe.train()
    saved = Path(cafe.save(str(tmp_path / "good")).checkpoint.path)
    before = {p: p.stat().st_mtime_ns for p in saved.rglob("*") if p.is_file()}
    cafe.learner_group._learner.module["credit"].phi.fill_(float("nan"))
    with pytest.raises(Exception, match="non-finite value in phi"):
        cafe.train()
    assert {p: p.stat().st_mtime_ns for p in saved.rglob("*") if p.is_file()} == before


def test_cli_trains_cafe_end_to_end_with_fine_tuning(tmp_path):
    finetune_early = ["cafe.finetune_after=1", "cafe.patience=1", "cafe.tolerance=1.0"]
    assert cli("train", "cafe", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               *sets(*SMALL, "experiment.iterations=2", *finetune_early)) == 0
    trial = next((tmp_path / "cafe-csc").glob("PPO_csc_*"))
    results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in results] == [1, 2]
    credit = results[-1]["learners"]["credit"]
    for key in ("phi_1", "phi_2", "L_Lambda", "vae_loss", "cmi_mean", "implicit_step_s"):
        assert pd.notna(credit[key]) and abs(credit[key]) < float("inf"), key
    assert credit["finetune_on"] == 1.0
    comparison = pd.read_csv(tmp_path / "cafe-csc" / "comparison.csv")
    assert comparison["method"].tolist() == ["cafe", "greedy"]


@pytest.mark.parametrize("method, extra", [("ir", []), ("ices", []), ("relara", []),
                                           ("ca-nofe", ["cafe.critic=mappo"])])
def test_baseline_trains_and_runs_through_evaluation(tmp_path, method, extra):
    assert cli("train", method, "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               *sets(*SMALL, *extra)) == 0
    comparison = pd.read_csv(tmp_path / f"{method}-csc" / "comparison.csv")
    assert comparison["method"].tolist() == [method, "greedy"]
    assert (comparison["revenue"] >= 0).all()


@pytest.mark.parametrize("override, field", [
    ("cafe.theta_l_layers=[score_nope]", "cafe.theta_l_layers"),
    ("cafe.eta=0", "cafe.eta"),
    ("cafe.phi_lr=-1e-3", "cafe.phi_lr"),
    ("cafe.finetune_after=0", "cafe.finetune_after"),
    ("cafe.critic=qmix", "cafe.critic"),
])
def test_bad_cafe_input_exits_2_naming_the_field(tmp_path, capsys, override, field):
    assert cli("train", "cafe", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               "--set", override) == 2
    assert field in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "a rejected config must write nothing"
