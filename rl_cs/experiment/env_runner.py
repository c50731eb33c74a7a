"""An RLlib MultiAgentEnvRunner that keeps sampling metrics per module, not per worker.

RLlib logs four counters per agent per env step and three per-agent episode metrics. With hundreds of
workers that is most of the per-decision overhead, and because the set of agent ids seen changes from
one iteration to the next, Tune's progress.csv gets rows of different widths (unreadable after
`--resume`). Here the same counters are logged once per module; episode metrics keep their
per-module parts and drop the per-agent ones.

Episodes are converted to numpy once, when ``sample`` returns them. RLlib's own loop (ray 2.60) calls
``to_numpy`` on every episode finished so far after every env step, each call validating every agent's
buffers again: quadratic in the episodes per sample, about half of a CSC training iteration (issue 9).
"""

from __future__ import annotations

from collections import Counter

from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.metrics import (
    EPISODE_MODULE_RETURN_MEAN,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
)


class PerModuleMetricsEnvRunner(MultiAgentEnvRunner):
    def _sample(self, *args, **kwargs):
        """RLlib's sampling loop with numpy conversion deferred to its end: the same episodes (done ones are
        no longer touched after their last step; ongoing chunks were converted last anyway), each converted
        once instead of once per later env step."""
        to_numpy, self.episodes_to_numpy = self.episodes_to_numpy, False
        try:
            episodes = super()._sample(*args, **kwargs)
        finally:
            self.episodes_to_numpy = to_numpy
        return [episode.to_numpy() for episode in episodes] if to_numpy else episodes

    def sample(self, *args, **kwargs):
        """RLlib's sample, with the sampled-step counters added up during it and logged once at its end (4
        MetricsLogger calls per sample instead of 4 per env step and env: 51 -> 13 µs per LBF env step,
        benchmarks/gridworld_overhead.py); the logged sums are the same."""
        self._pending_steps, self._pending_episodes, self._pending_modules = 0, 0, Counter()
        try:
            return super().sample(*args, **kwargs)
        finally:
            self._flush_sampled_metrics()

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        self._pending_steps += num_steps
        if episode.is_done:
            self._pending_episodes += 1
        for aid in next_obs:
            self._pending_modules[episode.module_for(aid)] += 1
        return num_steps

    def _flush_sampled_metrics(self) -> None:
        if self._pending_steps:
            self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, self._pending_steps, reduce="sum")
            self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, self._pending_steps, reduce="lifetime_sum",
                                   with_throughput=True)
        if self._pending_episodes:
            self.metrics.log_value(NUM_EPISODES, self._pending_episodes, reduce="sum")
            self.metrics.log_value(NUM_EPISODES_LIFETIME, self._pending_episodes, reduce="lifetime_sum")
        for module, count in self._pending_modules.items():
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module), count, reduce="sum")
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, module), count, reduce="lifetime_sum")
        self._pending_steps, self._pending_episodes, self._pending_modules = 0, 0, Counter()

    def _log_episode_metrics(self, length, ret, sec, agents=None, modules=None, agent_steps=None):
        if modules is not None:
            self.metrics.log_dict({EPISODE_MODULE_RETURN_MEAN: modules},
                                  window=self.config.metrics_num_episodes_for_smoothing)
        super()._log_episode_metrics(length, ret, sec)
