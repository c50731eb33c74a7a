"""MAPPO's centralised critic for the attention actor-critic (Yu et al. 2022; CAFE §4.2: the base module
composes with IPPO and MAPPO).

The actor is unchanged (decentralised: o_t^i only). The critic sees o_t^i through its attention tower
and the global state s_t (envs.csc_observation.STATE_FEATURES), V(o_t^i, s_t) -- MAPPO's agent-specific
global state. s_t reaches the learner batch as the ``facts_state`` column written by
policies.shaping.RewriteRewards from the world's infos, so this critic needs a shaping learner (CAFE,
CA-noFE, ICES, ReLara); values are only computed on the learner, never on the env runners.
"""

from __future__ import annotations

import torch
from torch import nn

from envs.csc_observation import STATE_FEATURES
from policies.attention import AttentionActorCritic
from policies.shaping.connector import fact


class CentralCriticActorCritic(AttentionActorCritic):
    def setup(self):
        super().setup()
        if not self.inference_only:
            hidden = self.model_config.get("hidden_dim", 128)
            self.state_encoder = nn.Sequential(nn.Linear(STATE_FEATURES, hidden), nn.ReLU())
            self.value_head = nn.Linear(2 * hidden, 1)

    def compute_values(self, batch, embeddings=None):
        context, _ = self.critic(batch["obs"])
        state = self.state_encoder(batch[fact("state")].to(context.dtype))
        return self.value_head(torch.cat([context, state], dim=-1)).squeeze(-1)
