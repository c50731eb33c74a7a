"""CAFE's actor-critic network (§4.2, Fig. 3) as an RLlib RLModule, shared by all workers (IPPO, §4.1).

Actor: the worker's own features form the query of four multi-head attention layers, one over each
observation part (T_optional, T_near, W_near, W_idle); an MLP merges the four results with the
query; each optional task is scored against that context, tau_0 from the context alone, and a masked
softmax (the default Categorical over masked logits) picks the action. Critic: the same structure with
its own weights, ending in a value. Each set gets a learned always-present "null" row so that attention
over an empty set is defined.

The training forward also returns the actor tower's outputs (ACTOR_CONTEXT, ACTOR_OPTION_ROWS, detached), so
that a learner which differentiates only the scoring layers (CAFE's phi step, whose theta^l is score_none and
score_option) can re-score the same minibatch through ActionHead without running the attention tower again.
"""

from __future__ import annotations

import torch
from torch import nn

from envs.csc_observation import SELF_FEATURES, ObsLayout
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

MASKED_LOGIT = -1e9
HEAD_LAYERS = ("score_none", "score_option")
"""The layers that turn the actor tower's outputs into logits (AttentionActorCritic.logits_from_features)."""
ACTOR_CONTEXT = "actor_context"
ACTOR_OPTION_ROWS = "actor_option_rows"


class AttentionTower(nn.Module):
    """Four MHA layers (self as query, one per observation part) and an MLP: obs -> context (§4.2)."""

    def __init__(self, layout: ObsLayout, embed_dim: int, num_heads: int, hidden_dim: int):
        super().__init__()
        self.layout = layout
        self.own = nn.Linear(SELF_FEATURES, embed_dim)
        self.rows = nn.ModuleDict({name: nn.Linear(feats, embed_dim) for name, _, feats in layout.parts})
        self.null = nn.ParameterDict({name: nn.Parameter(torch.zeros(1, 1, embed_dim)) for name, _, _ in layout.parts})
        self.attend = nn.ModuleDict({name: nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
                                     for name, _, _ in layout.parts})
        self.merge = nn.Sequential(nn.Linear(embed_dim * (1 + len(layout.parts)), hidden_dim), nn.ReLU(),
                                   nn.Linear(hidden_dim, hidden_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (context (B, hidden), embedded optional-task rows (B, x, embed))."""
        own, sets, _ = self.layout.split(obs)
        query = torch.relu(self.own(own)).unsqueeze(1)
        attended, option_rows = [query.squeeze(1)], None
        for name, (features, mask) in sets.items():
            rows = torch.relu(self.rows[name](features))
            if name == "optional":
                option_rows = rows
            keys = torch.cat([self.null[name].expand(len(obs), 1, -1), rows], dim=1)
            absent = torch.cat([torch.zeros_like(mask[:, :1]), mask], dim=1) < 0.5
            out, _ = self.attend[name](query, keys, keys, key_padding_mask=absent, need_weights=False)
            attended.append(out.squeeze(1))
        return self.merge(torch.cat(attended, dim=-1)), option_rows


class AttentionActorCritic(TorchRLModule, ValueFunctionAPI):
    """model_config: ``layout`` (ObsLayout fields), ``embed_dim``, ``num_heads``, ``hidden_dim``."""

    def setup(self):
        config = self.model_config
        self.layout = ObsLayout(**config["layout"])
        sizes = (config.get("embed_dim", 64), config.get("num_heads", 4), config.get("hidden_dim", 128))
        self.actor = AttentionTower(self.layout, *sizes)
        hidden, embed = sizes[2], sizes[0]
        self.score_none = nn.Linear(hidden, 1)
        self.score_option = nn.Sequential(nn.Linear(hidden + embed, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        if not self.inference_only:
            self.critic = AttentionTower(self.layout, *sizes)
            self.value_head = nn.Linear(hidden, 1)

    def action_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Masked logits over (tau_0, tau_1..tau_x)."""
        context, option_rows = self.actor(obs)
        return self.logits_from_features(context, option_rows, self.layout.split(obs)[2])

    def logits_from_features(self, context: torch.Tensor, option_rows: torch.Tensor,
                             action_mask: torch.Tensor) -> torch.Tensor:
        """The scoring layers (HEAD_LAYERS) on the actor tower's outputs: masked logits."""
        paired = torch.cat([context.unsqueeze(1).expand(-1, option_rows.shape[1], -1), option_rows], dim=-1)
        logits = torch.cat([self.score_none(context), self.score_option(paired).squeeze(-1)], dim=-1)
        return torch.where(action_mask > 0.5, logits, torch.full_like(logits, MASKED_LOGIT))

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.action_logits(batch[Columns.OBS])}

    def _forward_train(self, batch, **kwargs):
        """_forward's logits plus the actor tower's outputs, detached (see the module docstring)."""
        obs = batch[Columns.OBS]
        context, option_rows = self.actor(obs)
        return {Columns.ACTION_DIST_INPUTS: self.logits_from_features(context, option_rows, self.layout.split(obs)[2]),
                ACTOR_CONTEXT: context.detach(), ACTOR_OPTION_ROWS: option_rows.detach()}

    def compute_values(self, batch, embeddings=None):
        context, _ = self.critic(batch[Columns.OBS])
        return self.value_head(context).squeeze(-1)


class ActionHead(nn.Module):
    """AttentionActorCritic.logits_from_features as a module call, so that torch.func.functional_call can
    evaluate the scoring layers at other weights (names prefixed "module.", e.g. "module.score_none.weight")
    without running the attention tower."""

    def __init__(self, module: AttentionActorCritic):
        super().__init__()
        self.module = module

    def forward(self, context: torch.Tensor, option_rows: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        return self.module.logits_from_features(context, option_rows, action_mask)
