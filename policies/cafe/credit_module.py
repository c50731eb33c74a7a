"""CAFE's credit VAE as an RLModule ("credit") inside the MultiRLModule, next to the policy (§4.3, Fig. 5).

Being a module of the MultiRLModule, the VAE is trained by the learner's own optimizer (Eq. 4, through
``shaping_loss``), synced and checkpointed with the policy. It also holds CAFE's state as buffers, so that
it is checkpointed and reaches the learner connector: phi = (phi_1, phi_2) of Eq. 5, whether Newton
fine-tuning is on (Eq. 19), the FinetuneSchedule's counters (Algorithm 1, line 5), the phi fine-tuning
started from, and the rolling buffer of per-trajectory linear returns the Newton step fits (Eq. 15-19).

The encoder's observation trunk is an attention tower with the critic's structure (Fig. 5: "the encoder
architecture mirrors the agent's critic"), its output is o_t for CreditModel. Own actions are CSC option
slots a_t^i; neighbour actions a_{t,o}^{-i} are the W_near workers' tasks mapped to slots of agent i's own
option list by the world (envs.csc), so one embedding serves both. The decoder's target (sum of rho near
the agent, Eq. 4) is the payments of tasks completed within range of the decision until the agent's next
decision, standardised over the train batch.

model_config: layout (ObsLayout fields), embed_dim, num_heads, hidden_dim (the trunk), credit (CreditConfig
fields), phi (PhiConfig fields), finetune (bool: CAFE True, CA-noFE False), policy (module id of the
actor-critic), gamma, lambda_ (PPO's, for the advantage basis of policies.cafe.connector). The VAE's input
width is the trunk's hidden_dim and its action count the layout's.
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch import TorchRLModule

from envs.csc_observation import ObsLayout
from policies.attention import AttentionTower
from policies.cafe.connector import CMI, REVENUE_TARGET, cafe_rewrite
from policies.cafe.config import CreditConfig, PhiConfig
from policies.cafe.credit import CreditModel
from policies.cafe.finetune import FinetuneSchedule, push_rows
from policies.cafe.regulariser import LinearReturns
from policies.shaping.connector import RewardShaper, fact


class CreditModule(RewardShaper, TorchRLModule):
    """Trunk + CreditModel (Eq. 1-4) + phi, with the RewardShaper hooks (rewrite: policies.cafe.connector)."""

    def setup(self):
        config = self.model_config
        self.layout = ObsLayout(**config["layout"])
        hidden = config.get("hidden_dim", 128)
        self.trunk = AttentionTower(self.layout, config.get("embed_dim", 64), config.get("num_heads", 4), hidden)
        self.credit_input_dim = hidden
        self.credit = CreditModel(CreditConfig(**config.get("credit", {})), obs_dim=hidden,
                                  num_actions=self.layout.num_actions)
        self.phi_config = PhiConfig(**config.get("phi", {}))
        self.phi_config.validate()
        self.finetune = bool(config.get("finetune", True))
        self.register_buffer("phi", torch.tensor(self.phi_config.phi_init, dtype=torch.float32))
        self.register_buffer("finetune_on", torch.zeros((), dtype=torch.bool))
        # FinetuneSchedule: iterations, iterations without a new best, best training revenue
        self.register_buffer("schedule_state", torch.zeros(3, dtype=torch.float64))
        self.register_buffer("finetune_started", torch.zeros((), dtype=torch.bool))
        self.register_buffer("phi_before_finetune", torch.tensor(self.phi_config.phi_init, dtype=torch.float32))
        # rolling buffer of LinearReturns rows [offset, slope_1, slope_2, payments]; the last `count` are valid
        self.register_buffer("returns_buffer", torch.zeros(self.phi_config.finetune_buffer, 4, dtype=torch.float64))
        self.register_buffer("returns_count", torch.zeros((), dtype=torch.int64))
        # LinearReturns of the last train batch's trajectories, set by the connector for the learner's L_Lambda
        # (Eq. 6 needs whole trajectories; a minibatch holds only pieces of them).
        self.last_returns: LinearReturns | None = None
        self.pending_env_steps = 0
        self.rewrite_metrics = None

    # ------------------------------------------------------------------ Eq. 3 and Eq. 4
    def _inputs(self, batch: dict, rows: torch.Tensor):
        """The VAE's inputs on the selected ``rows`` only: the trunk (an attention tower, row by row) never
        runs on the batch's non-decision rows (~20% of a CSC batch: bootstrap and idle steps)."""
        obs = batch[Columns.OBS][rows]
        # (torch's attention cannot run on zero rows; none selected gives none, as selecting after the trunk did)
        features = self.trunk(obs)[0] if len(obs) else obs.new_zeros(0, self.credit_input_dim)
        return (features, batch[Columns.ACTIONS][rows].long(), batch[fact("neighbour_actions")][rows].long(),
                batch[fact("neighbour_mask")][rows].bool())

    def cmi(self, batch: dict) -> torch.Tensor:
        """CMI_t^i (Eq. 3) for every row of a policy batch, 0 on non-decision rows; shape (N,)."""
        valid = batch[fact("valid")]
        cmi = self.credit.cmi(*self._inputs(batch, valid))
        return torch.zeros(len(valid), dtype=cmi.dtype, device=cmi.device).masked_scatter(valid, cmi)

    def shaping_loss(self, batch: dict):
        """Negative ELBO of Eq. 4 on the decision rows of a (mini)batch, with CMI statistics to log. A
        minibatch without decision rows gives a zero loss that still reaches every parameter (RLlib's
        apply_gradients needs a gradient, zero here, for each) and nothing to log."""
        valid = batch[fact("valid")]
        if not bool(valid.any()):
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0, {}
        obs, action, neighbours, mask = self._inputs(batch, valid)
        loss = self.credit.loss(obs, action, neighbours, mask, batch[REVENUE_TARGET][valid])
        cmi = batch[CMI][valid]
        metrics = {"vae_loss": loss.total.detach(), "vae_reconstruction": loss.reconstruction.detach(),
                   "vae_kl": loss.kl.detach(), "cmi_mean": cmi.mean(), "cmi_std": cmi.std(), "cmi_max": cmi.max()}
        return loss.total, metrics

    def rewrite(self, batch: dict, rl_module):
        return cafe_rewrite(self, batch, rl_module)

    def note_sampling(self, env_steps: int) -> None:
        self.pending_env_steps = int(env_steps)

    # ------------------------------------------------------------------ Algorithm 1, line 5; Eq. 15-19
    def schedule(self) -> FinetuneSchedule:
        """The FinetuneSchedule as of the buffers (it lives in them so it is checkpointed)."""
        schedule = FinetuneSchedule(self.phi_config, self.finetune)
        iterations, stale, best = self.schedule_state.tolist()
        schedule.load_state_dict({"iterations": iterations, "stale": stale, "best": best,
                                  "active": bool(self.finetune_on)})
        return schedule

    def store_schedule(self, schedule: FinetuneSchedule) -> None:
        state = schedule.state_dict()
        self.schedule_state.copy_(torch.tensor([state["iterations"], state["stale"], state["best"]],
                                               dtype=torch.float64))
        self.finetune_on.fill_(state["active"])

    def push_returns(self, returns: LinearReturns) -> None:
        """Add a batch's per-trajectory linear returns to the rolling buffer (the oldest drop out)."""
        storage, count = push_rows(self.returns_buffer, int(self.returns_count), returns.as_rows().detach())
        self.returns_buffer.copy_(storage)
        self.returns_count.fill_(count)

    def buffered_returns(self) -> LinearReturns:
        return LinearReturns.from_rows(self.returns_buffer[len(self.returns_buffer) - self.buffer_count:])

    @property
    def buffer_count(self) -> int:
        return int(self.returns_count)
