"""Timing helpers shared by the cost benchmarks (cafe_cost, rmo_cost, dyps_cost): the median wall time of a
repeated action, and one learner update on recorded episodes (where a method's extra work lives)."""

from __future__ import annotations

import copy
import statistics
import time


def timed(action, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``action`` (the median: one slow call on a busy machine does not
    move it)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def learner_update(algo, episodes) -> None:
    """One learner update of ``algo`` on a copy of recorded ``episodes``, with its own epochs and minibatches
    (sampling left out, so two methods are compared on the same data)."""
    training = algo.config
    algo.learner_group.update(episodes=copy.deepcopy(episodes), timesteps={}, num_epochs=training.num_epochs,
                              minibatch_size=training.minibatch_size,
                              shuffle_batch_per_epoch=training.shuffle_batch_per_epoch)
