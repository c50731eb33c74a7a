"""PSA: Yang, Ding, Shi, Feng, "Improving scalability of multi-agent reinforcement learning with parameters
sharing", IEEE JCC 2022 (DyPS's reference [45]). Its full text was not available; DyPS §4.2 describes it as
actor-critic where "each agent [has] an actor and a critic to model the spatio-temporal differences of each
agent and ... a shared critic to model the spatio-temporal commonality of agents. These two critics will
work together to train the actor of each agent."

ASSUMED here (a reading of that sentence, not the paper):

* agent i has its own actor pi_i and critic V_i (module ``agent_<i>``, policies.sharing.modules), and one
  critic V_sh (module ``shared_critic``) is shared by all agents; V_sh sees the agent's own observation and
  no agent id (it models what agents have in common);
* the critics "work together" as the mean V = (V_i + V_sh) / 2 in GAE, so agent i's advantage is
  (GAE(V_i) + GAE(V_sh)) / 2 (GAE is linear in V for fixed rewards);
* both critics are trained by the PPO value loss of that mean against the same lambda-returns (V_sh gets
  the gradient of every agent's loss, V_i only its own agent's);
* the actors are trained by PPO (not A2C, so PSA runs with the same optimiser settings as every baseline).
"""

from __future__ import annotations

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

from policies.sharing.modules import MLPActorCritic


class PSALearner(PPOTorchLearner):
    """PPO with each agent module's critic averaged with the shared critic module (reference, not copy)."""

    def build(self) -> None:
        super().build()
        critic = self.module[self.config.learner_config_dict["shared_critic"]]
        for module_id in self.module.keys():
            module = self.module[module_id]
            if isinstance(module, MLPActorCritic):
                module.attach_shared_critic(critic)
