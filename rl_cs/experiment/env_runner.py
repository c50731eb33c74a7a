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

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, num_steps, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, num_steps, reduce="lifetime_sum",
                               with_throughput=True)
        if episode.is_done:
            self.metrics.log_value(NUM_EPISODES, 1, reduce="sum")
            self.metrics.log_value(NUM_EPISODES_LIFETIME, 1, reduce="lifetime_sum")
        for module, count in Counter(episode.module_for(aid) for aid in next_obs).items():
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module), count, reduce="sum")
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, module), count, reduce="lifetime_sum")
        return num_steps

    def _log_episode_metrics(self, length, ret, sec, agents=None, modules=None, agent_steps=None):
        if modules is not None:
            self.metrics.log_dict({EPISODE_MODULE_RETURN_MEAN: modules},
                                  window=self.config.metrics_num_episodes_for_smoothing)
        super()._log_episode_metrics(length, ret, sec)
