"""RMO's learner (paper 001, Algorithm 1): one RLlib Learner over two RLModules, theta (the acting policy with
the centralised critic phi and eta) and theta-hat (learner only).

Per minibatch of agent decisions collected by theta (Algorithm 1, line 4), all in ``compute_losses``:

1. Eq. 4: theta's MAPPO clipped surrogate on the sparse-reward advantages (RLlib's GAE on the world's sparse
   reward, the reward column), plus the entropy bonus.
2. Eq. 5: theta-hat's surrogate on the shaped-reward advantages (policies.rmo.connector) with the ratio
   pi_theta-hat / pi_theta; line 8: theta-hat descends it.
3. Eq. 6-7: theta's meta-gradient through theta-hat's differentiable SGD step (policies.rmo.meta.meta_terms).
4. Eq. 8: theta's direction grad L(theta) + xi meta, xi = xi_0 xi_decay^k after k iterations (line 9).
5. Eq. 14-19 (lines 10-11): eta = {alpha, beta} moves by mu_eta (mu_f / 2) sum_t c_t du_t/deta over the rows
   whose recommendation was matched, clipped to [0, 1]; held in theta's ``eta`` buffer, so it reaches the env
   runners with theta's weights and is checkpointed with them (REC: learn_eta off).
6. Line 13, soft updates with chi: Algorithm 1 soft-updates theta <- chi theta^n + (1 - chi) theta once per
   agent n of the minibatch, each theta^n one SGD step from theta; composed over the N agents this moves
   theta by 1 - (1 - chi)^N times the mean per-agent step, so the actor gradients (theta and theta-hat) are
   scaled by that factor before the optimiser's SGD step (the per-agent steps are taken from the same theta:
   the first-order composition).
7. Line 15, Eq. 20: the critic phi (two heads: sparse and shaped returns) by MSE to each value target,
   with its own optimiser at mu_phi and no soft update.

Gradients of theta and theta-hat reach RLlib's optimisers as surrogates sum(stopgrad(G) * param), so that one
backward pass (RLlib's) applies exactly the gradients above. Logged per iteration under theta's module id:
alpha, beta, xi, soft_update_scale, loss_theta, loss_theta_hat, vf_loss, meta_norm, eta_grad_alpha/beta,
meta_step_s, non_finite_meta (1 when a minibatch's second-order terms overflowed and were dropped).
"""

from __future__ import annotations

import time

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from policies.rmo.config import RMOConfig
from policies.rmo.connector import MATCHED, SHAPED_ADVANTAGES, SHAPED_TARGETS, UTILITY, RMOColumns
from policies.rmo.meta import clipped_surrogate, eta_gradient, eta_step, meta_terms
from rl_cs.config import from_dict


def surrogate(gradients: list, params: list) -> torch.Tensor:
    """A scalar whose gradient with respect to ``params`` is ``gradients``."""
    return sum((g.detach() * p).sum() for g, p in zip(gradients, params))


class RMOLearner(PPOTorchLearner):
    """learner_config_dict["rmo"] = {"theta": module id, "theta_hat": module id, "settings": RMOConfig fields}."""

    def build(self) -> None:
        super().build()
        spec = self.config.learner_config_dict["rmo"]
        self.rmo = from_dict(RMOConfig, spec["settings"], "rmo").validate()
        self.theta_id, self.hat_id = spec["theta"], spec["theta_hat"]
        config = self.config.get_config_for_module(self.theta_id)
        piece = RMOColumns(module_id=self.theta_id, gamma=config.gamma, lambda_=config.lambda_)
        self._learner_connector.insert_before(GeneralAdvantageEstimation, piece)
        names = [type(c).__name__ for c in self._learner_connector.connectors]
        assert names.index("RMOColumns") + 1 == names.index("GeneralAdvantageEstimation"), names

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """SGD (the paper) or Adam: theta's actor and theta-hat at mu_theta (training.lr), the critic at mu_phi."""
        module = self.module[module_id]
        make = torch.optim.SGD if self.rmo_settings().optimizer == "sgd" else torch.optim.Adam
        groups = [("actor", list(module.actor.parameters()), config.lr)]
        if getattr(module, "has_critic", False):
            groups.append(("critic", list(module.critic.parameters()), self.rmo_settings().critic_lr))
        for name, params, lr in groups:
            self.register_optimizer(module_id=module_id, optimizer_name=name, optimizer=make(params, lr=lr),
                                    params=params, lr_or_lr_schedule=lr)

    def rmo_settings(self) -> RMOConfig:
        """Available before build() finishes (optimisers are configured inside it)."""
        if not hasattr(self, "rmo"):
            return from_dict(RMOConfig, self.config.learner_config_dict["rmo"]["settings"], "rmo")
        return self.rmo

    def compute_losses(self, *, fwd_out, batch):
        if self.theta_id not in batch:
            return {}
        started = time.perf_counter()
        b, theta, hat = batch[self.theta_id], self.module[self.theta_id], self.module[self.hat_id]
        config = self.config.get_config_for_module(self.theta_id)
        clip = config.clip_param
        mask = b[Columns.LOSS_MASK].bool() if Columns.LOSS_MASK in b else torch.ones_like(b[Columns.REWARDS]).bool()
        rows = int(mask.sum())
        actions = b[Columns.ACTIONS].long()[mask]
        # Eq. 4: theta on the sparse reward (MAPPO's clipped surrogate), with the entropy bonus
        log_probs = torch.log_softmax(fwd_out[self.theta_id][Columns.ACTION_DIST_INPUTS][mask], dim=-1)
        logp = log_probs.gather(1, actions.unsqueeze(1)).squeeze(1)
        entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
        signal = self.rmo.training_signal
        advantages = b[SHAPED_ADVANTAGES if signal == "shaped" else Postprocessing.ADVANTAGES][mask]
        j_theta = clipped_surrogate(logp - b[Columns.ACTION_LOGP][mask], advantages, clip)
        scale = self.rmo.soft_update_scale(rows)
        loss_theta = -j_theta - self._entropy_coeff() * entropy
        # Eq. 20: the critic, both heads
        values = theta.values(b)[mask]
        targets = torch.stack([b[Postprocessing.VALUE_TARGETS][mask], b[SHAPED_TARGETS][mask]], dim=-1)
        vf_loss = (values - targets).pow(2).clamp(max=config.vf_clip_param).sum(-1).mean()
        if signal != "meta":  # Fig. 5's ablations: plain MAPPO on one reward, theta-hat and eta untouched
            hat_params = list(hat.actor.parameters())
            self.metrics.log_value((self.theta_id, "loss_theta"), float(loss_theta.detach()), window=1)
            self.metrics.log_value((self.theta_id, "vf_loss"), float(vf_loss.detach()), window=1)
            return {self.theta_id: scale * loss_theta + config.vf_loss_coeff * vf_loss,
                    self.hat_id: 0.0 * sum(p.sum() for p in hat_params)}
        # Eq. 5-7: theta-hat on the shaped reward, ratio against theta, and theta's meta-gradient
        hat_logits = hat.actor(b[Columns.OBS][mask])
        logp_hat = torch.log_softmax(hat_logits, dim=-1).gather(1, actions.unsqueeze(1)).squeeze(1)
        theta_params, hat_params = list(theta.actor.parameters()), list(hat.actor.parameters())
        terms = meta_terms(logp, logp_hat, b[SHAPED_ADVANTAGES][mask], theta_params, hat_params, clip,
                           self.rmo.inner_lr)
        finite = all(bool(torch.isfinite(g).all()) for g in [*terms.meta, *terms.grad_hat])
        if not finite:  # a minibatch whose second-order terms overflowed: theta learns from Eq. 4 alone here
            terms.meta = [torch.zeros_like(m) for m in terms.meta]
            terms.grad_hat = [torch.zeros_like(g) for g in terms.grad_hat]
            terms.advantage_weights = torch.zeros_like(terms.advantage_weights)
        # Eq. 8 with xi, and line 13's soft updates as a step scale
        xi = self.rmo.xi(int(theta.iterations))
        losses = {
            self.theta_id: scale * (loss_theta + xi * surrogate(terms.meta, theta_params))
            + config.vf_loss_coeff * vf_loss,
            self.hat_id: scale * surrogate(terms.grad_hat, hat_params),
        }
        # Eq. 14-19: eta
        alpha, beta = float(theta.eta[0]), float(theta.eta[1])
        gradient = eta_gradient(terms.advantage_weights, b[UTILITY][mask], b[MATCHED][mask], alpha, beta,
                                self.rmo.inner_lr)
        if self.rmo.learn_eta:
            alpha, beta = eta_step(alpha, beta, gradient, self.rmo.eta_lr)
            with torch.no_grad():
                theta.eta.copy_(torch.tensor([alpha, beta], dtype=theta.eta.dtype))
        meta_norm = torch.sqrt(sum((m ** 2).sum() for m in terms.meta))
        for key, value in {"alpha": alpha, "beta": beta, "xi": xi, "soft_update_scale": scale,
                           "loss_theta": float(loss_theta.detach()), "loss_theta_hat": float(terms.loss_hat),
                           "vf_loss": float(vf_loss.detach()), "meta_norm": float(meta_norm),
                           "eta_grad_alpha": float(gradient[0]), "eta_grad_beta": float(gradient[1]),
                           "non_finite_meta": float(not finite),
                           "meta_step_s": time.perf_counter() - started}.items():
            self.metrics.log_value((self.theta_id, key), value, window=1)
        return losses

    def _entropy_coeff(self) -> float:
        scheduler = self.entropy_coeff_schedulers_per_module[self.theta_id]
        return float(scheduler.get_current_value())

    def after_gradient_based_update(self, *, timesteps) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        with torch.no_grad():
            self.module[self.theta_id].iterations.add_(1.0)
