"""PPO learner that trains a reward-shaper module next to the policy (CAFE, ICES, ReLara).

``build`` inserts RewriteRewards right before GeneralAdvantageEstimation, so advantages and value
targets come from the rewritten rewards. ``compute_losses`` adds the shaper's own loss (e.g. CAFE's VAE,
Eq. 4) under the shaper's module id, so RLlib's per-module optimizer trains it in the same update.
learner_config_dict["shaping"] = {"policy": module id, "shaper": module id, "num_near_workers": K}.
"""

from __future__ import annotations

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import GeneralAdvantageEstimation

from policies.shaping.connector import RewardShaper, RewriteRewards


class ShapingPPOLearner(PPOTorchLearner):
    @property
    def shaping(self) -> dict:
        return self.config.learner_config_dict["shaping"]

    def build(self) -> None:
        super().build()
        piece = RewriteRewards(policy_id=self.shaping["policy"], shaper_id=self.shaping["shaper"],
                               num_near_workers=self.shaping["num_near_workers"])
        self._learner_connector.insert_before(GeneralAdvantageEstimation, piece)
        names = [type(c).__name__ for c in self._learner_connector.connectors]
        assert names.index("RewriteRewards") + 1 == names.index("GeneralAdvantageEstimation"), names

    def rl_module_is_compatible(self, module) -> bool:
        """The shaper has no value function, but needs an optimizer like the policy."""
        return isinstance(module, RewardShaper) or super().rl_module_is_compatible(module)

    def compute_losses(self, *, fwd_out, batch):
        losses = super().compute_losses(fwd_out=fwd_out, batch=batch)
        policy, shaper = self.shaping["policy"], self.shaping["shaper"]
        if policy in batch:
            loss, metrics = self.module[shaper].shaping_loss(batch[policy])
            losses[shaper] = loss
            for key, value in metrics.items():
                self.metrics.log_value((shaper, key), value, window=1)
        return losses
