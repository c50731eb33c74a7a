"""MPI (Eq. 6-8) with the Hedge learning rate: the weights stay a distribution, equal losses keep them equal,
and the regret against the best attribute in hindsight stays within the Hedge bounds (Cesa-Bianchi & Lugosi
2006, Theorems 2.2 and 2.3) on adversarial loss sequences."""

from __future__ import annotations

import numpy as np
import pytest

from policies.qcota.config import QcotaConfig
from policies.qcota.integration import AttributeWeights, hedge_rate


def play(weights: AttributeWeights, losses: np.ndarray) -> tuple[float, np.ndarray]:
    """Hedge against a fixed sequence: (forecaster's cumulative loss, weights used each round)."""
    used, total = [], 0.0
    for loss in losses:
        used.append(weights.weights.copy())
        total += float(weights.weights @ loss)
        weights.record(loss)
    return total, np.array(used)


def adversary(weights: AttributeWeights, rounds: int) -> tuple[float, np.ndarray]:
    """Each round loss 1 for the attribute with the largest weight, 0 for the others (the forecaster is made
    to pay as much as it can while some attribute stays cheap)."""
    total, losses = 0.0, []
    for _ in range(rounds):
        loss = np.zeros(weights.num_attributes)
        loss[int(np.argmax(weights.weights))] = 1.0
        total += float(weights.weights @ loss)
        losses.append(loss)
        weights.record(loss)
    return total, np.array(losses)


@pytest.mark.parametrize("attributes", [2, 3, 4])
def test_weights_stay_inside_the_simplex(attributes):
    rng = np.random.default_rng(attributes)
    rounds = 182
    weights = AttributeWeights(attributes, "hedge", horizon=rounds)
    _, used = play(weights, rng.random((rounds, attributes)) * np.linspace(0.2, 1.0, attributes))
    assert ((used > 0) & (used < 1)).all()
    np.testing.assert_allclose(used.sum(1), 1.0)
    # the anytime rate (horizon unknown) and a fixed rate too
    for tracker in (AttributeWeights(attributes, "hedge"), AttributeWeights(attributes, "fixed", eta=0.5)):
        _, used = play(tracker, rng.random((rounds, attributes)))
        assert ((used > 0) & (used < 1)).all() and np.allclose(used.sum(1), 1.0)


@pytest.mark.parametrize("rate", ["hedge", "fixed"])
def test_equal_losses_keep_equal_weights(rate):
    weights = AttributeWeights(3, rate, eta=1.0, horizon=50)
    rng = np.random.default_rng(0)
    for _ in range(50):
        weights.record(np.full(3, rng.random()))
        np.testing.assert_allclose(weights.weights, 1 / 3)


def test_hedge_rate_is_the_theorem_2_2_rate():
    assert hedge_rate(2, 182) == pytest.approx(np.sqrt(8 * np.log(2) / 182))
    assert hedge_rate(1, 182) == 0.0  # one attribute: nothing to learn
    assert QcotaConfig().learning_rate == "hedge"


@pytest.mark.parametrize("attributes, rounds", [(2, 182), (4, 182), (3, 1000)])
def test_hedge_regret_within_the_bound_against_an_adversary(attributes, rounds):
    weights = AttributeWeights(attributes, "hedge", horizon=rounds)
    total, losses = adversary(weights, rounds)
    regret = total - losses.sum(0).min()
    assert regret > 0  # the adversary does make it pay
    assert regret <= np.sqrt(rounds * np.log(attributes) / 2)  # Theorem 2.2
    anytime = AttributeWeights(attributes, "hedge")
    total, losses = adversary(anytime, rounds)
    assert total - losses.sum(0).min() <= 2 * np.sqrt(rounds * np.log(attributes) / 2) + np.sqrt(np.log(attributes) / 8)


def test_hedge_regret_within_the_bound_on_alternating_losses():
    # the classic sequence that defeats follow-the-leader: (0.5, 0), then (0, 1), (1, 0), (0, 1), ...
    # a forecaster that locks on (a large fixed eta; eta = 1 collapsed the weights on Piemonte) pays ~Y / 2
    rounds, attributes = 182, 2
    losses = np.array([[0.5, 0.0]] + [[0.0, 1.0] if t % 2 == 0 else [1.0, 0.0] for t in range(rounds - 1)])
    bound = np.sqrt(rounds * np.log(attributes) / 2)
    total, _ = play(AttributeWeights(attributes, "hedge", horizon=rounds), losses)
    assert total - losses.sum(0).min() <= bound
    locked, _ = play(AttributeWeights(attributes, "fixed", eta=50.0), losses)
    assert locked - losses.sum(0).min() > 4 * bound
