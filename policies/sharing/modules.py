"""The policy networks of the parameter-sharing methods on the package gridworlds (lbf, rware) and the cell
worlds (ridehailing, vaccine): one small MLP actor-critic per module; the methods differ only in how many
modules there are and which agent maps to which (policies.sharing.schemes), never in the network.

``MLPActorCritic`` (model_config):

* ``hidden``: widths of the hidden layers of the actor and of the critic (default [64, 64], SePS's size;
  ReLU between layers), separate networks (no shared trunk);
* ``actor_inputs``: the actor reads the first ``actor_inputs`` floats of the observation (None: all). With
  the world's ``global_state`` option the observation is [o_i, s] and the actor reads o_i only, the critic
  both (MAPPO's agent-specific global state);
* the critic reads the whole observation;
* ``action_mask``: None (every action allowed: lbf, rware), or where the observation says which actions are
  allowed (the cell worlds' ``action_mask_layout``: ``first``, ``start``, ``stride``, ``count``): action
  ``first + k`` is allowed iff obs[start + k * stride] > 0.5, every other action always. The logits of the
  forbidden actions are set to the float minimum (RLlib's action-masking recipe), so they are never sampled
  nor chosen by argmax and carry no probability in PPO's ratio, entropy or KL.

PSA's shared critic (``SharedCritic``) is a module of its own in the MultiRLModule (trained, checkpointed
once); the PSA learner hands each agent's module a reference to it (``attach_shared_critic``), which is
not registered as a sub-module, so its parameters are counted and optimised once.
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

DEFAULT_HIDDEN = (64, 64)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPActorCritic(TorchRLModule, ValueFunctionAPI):
    """A categorical MLP actor and an MLP critic (see the module docstring for model_config)."""

    def setup(self):
        obs_dim = int(self.observation_space.shape[0])
        hidden = list(self.model_config.get("hidden") or DEFAULT_HIDDEN)
        self.actor_inputs = int(self.model_config.get("actor_inputs") or obs_dim)
        self.pi = mlp([self.actor_inputs, *hidden, int(self.action_space.n)])
        self.vf = mlp([obs_dim, *hidden, 1])
        layout = self.model_config.get("action_mask")
        self.mask_layout = None if not layout else {key: int(layout[key])
                                                    for key in ("first", "start", "stride", "count")}

    def attach_shared_critic(self, critic: "SharedCritic") -> None:
        """PSA: V(o) becomes (V_i(o) + V_shared(o_i)) / 2; the reference is not a sub-module."""
        self.__dict__["_shared_critic"] = critic

    def _forward(self, batch, **kwargs):
        obs = batch[Columns.OBS][..., : self.actor_inputs].float()
        logits = self.pi(obs)
        if self.mask_layout is not None:
            logits = masked_logits(logits, obs, **self.mask_layout)
        return {Columns.ACTION_DIST_INPUTS: logits}

    def compute_values(self, batch, embeddings=None):
        obs = batch[Columns.OBS].float()
        value = self.vf(obs).squeeze(-1)
        shared = self.__dict__.get("_shared_critic")
        if shared is not None:
            value = 0.5 * (value + shared.value(obs[..., : self.actor_inputs]))
        return value


class SharedCritic(TorchRLModule, ValueFunctionAPI):
    """PSA's critic shared by all agents: V_sh(o_i), the agent's own observation (no agent id)."""

    def setup(self):
        hidden = list(self.model_config.get("hidden") or DEFAULT_HIDDEN)
        self.actor_inputs = int(self.model_config.get("actor_inputs") or self.observation_space.shape[0])
        self.critic = mlp([self.actor_inputs, *hidden, 1])

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs.float()).squeeze(-1)

    def _forward(self, batch, **kwargs):
        return {}

    def compute_values(self, batch, embeddings=None):
        return self.value(batch[Columns.OBS][..., : self.actor_inputs])


def masked_logits(logits: torch.Tensor, obs: torch.Tensor, first: int, start: int, stride: int,
                  count: int) -> torch.Tensor:
    """``logits`` with the actions the observation forbids (module docstring, ``action_mask``) at the float
    minimum."""
    flags = obs[..., start: start + stride * (count - 1) + 1: stride] > 0.5
    allowed = torch.ones_like(logits, dtype=torch.bool)
    allowed[..., first: first + count] = flags
    return torch.where(allowed, logits, torch.full_like(logits, torch.finfo(logits.dtype).min))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
