"""CAFE's PPO learner (§4.4-4.6, Algorithm 1): the credit VAE, the bi-level phi update, fine-tuning.

On top of policies.shaping.ShapingPPOLearner (rewards rewritten by policies.cafe.connector before GAE, VAE
trained by Eq. 4 in the same update), after every PPO minibatch loss (Algorithm 1, line 12) phi takes one
step of its own Adam optimiser (rate phi_lr, 1e-3 in §5.1) along the Eq. 14 hypergradient

    dF/dphi ~ dJ_out/dphi - dJ_out/dtheta^l (d2J/dtheta^l2)^-1 d2J/(dtheta^l dphi) - dL_Lambda/dphi,

then is clipped into PhiConfig.phi_bounds. The pieces:
- J(theta^l, phi), the inner objective: PPO's clipped surrogate (§4.6) on this minibatch, whose advantages
  are the linear function of phi prepared by the connector (A = A_OFFSET + phi_1 D_1 + phi_2 D_2,
  standardised over the minibatch as PPO standardises them);
- J_out(theta^l), the outer objective (ImplicitGradConfig.outer = "payment", our reading): the same
  surrogate on the advantages of the true payments (eta rho at the critic's values). It does not depend on
  phi, so the direct term is 0 and phi moves only through the implicit term: how a change of phi moves the
  policy's optimum, scored by the payments. With outer = "inner" (Eq. 14 literally) J_out = J;
- L_Lambda, normalised (policies.cafe.regulariser), over the whole train batch's trajectories.
Only theta^l (the actor's last layers, by name) is differentiated: the rest of the actor enters J with
detached weights, so the Hessian-vector products of the inverse-HVP solve only run through theta^l. When
theta^l is the scoring layers (the default), J reads the actor tower's outputs from PPO's own forward on the
minibatch (policies.attention.ACTOR_CONTEXT) instead of running the tower a second time.
Newton fine-tuning (Eq. 19) happens once per iteration in the connector, when the schedule says so.
RLlib's GeneralAdvantageEstimation piece is replaced by GivenAdvantageEstimation, which leaves the policy's
batch alone when the connector already wrote its advantages and value targets (the connector needs the
critic's values on the whole batch anyway; RLlib's piece would run that critic pass a second time).

Reads learner_config_dict["cafe"] = {"implicit": ImplicitGradConfig fields}; phi's settings (PhiConfig) and
whether fine-tuning is on are the credit module's (policies.cafe.credit_module).
Logged under the credit module (each iteration's last minibatch): phi_1, phi_2, L_Lambda, the three Eq. 14
terms, implicit_damping / implicit_damping_increases / implicit_residual / implicit_products (the inverse-HVP
solve; its damping is carried across minibatches, policies.cafe.hypergradient.next_damping),
implicit_step_s, finetune_on, phi_before_finetune_1/2; from the VAE loss vae_loss, vae_reconstruction,
vae_kl, cmi_mean/std/max; from the connector (once per iteration) tau0_share, reward_change_abs_mean and
policies.cafe.connector.rewrite_metrics.
A NaN or infinite phi, CMI or Hessian-vector product raises NonFiniteError naming it, before any update
is applied, so the iteration fails and no checkpoint is written for it.
"""

from __future__ import annotations

import time

import torch
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.evaluation.postprocessing import Postprocessing

from policies.attention import ACTOR_CONTEXT, ACTOR_OPTION_ROWS, HEAD_LAYERS, ActionHead
from policies.cafe.config import ImplicitGradConfig
from policies.cafe.connector import A_OFFSET, A_PAY, D_PHI_1, D_PHI_2
from policies.cafe.finite import check_finite
from policies.cafe.hypergradient import implicit_hypergradient, next_damping, select_parameters
from policies.cafe.regulariser import linear_return_gap
from policies.shaping.connector import fact
from policies.shaping.learner import ShapingPPOLearner


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor,
                      clip: float) -> torch.Tensor:
    """PPO's clipped surrogate (§4.6) with the advantages standardised as PPO does: a pure function."""
    advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-4)
    ratio = torch.exp(logp - old_logp)
    return torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage).mean()


def head_only(theta_names: list[str]) -> bool:
    """Whether theta^l lies inside the scoring layers, so the actor tower's outputs do not depend on it."""
    return all(name.split(".")[0] in HEAD_LAYERS for name in theta_names)


def surrogates(policy, params: dict, theta_names: list[str], batch: dict, clip: float,
               features: tuple[torch.Tensor, torch.Tensor] | None = None):
    """(J, J_out) as functions of (theta^l, phi): the surrogate on A(phi) and on the payment advantages.

    ``features``: the actor tower's outputs (context, option rows) on the whole minibatch at ``params``, from
    PPO's training forward (ACTOR_CONTEXT, ACTOR_OPTION_ROWS); when given and theta^l lies in the scoring layers,
    log pi is computed from them through ActionHead (same values and theta^l-graph; the tower is not re-run)."""
    rows = batch[fact("valid")] & batch[Columns.LOSS_MASK].bool()
    obs, actions = batch[Columns.OBS][rows], batch[Columns.ACTIONS][rows].long()
    old_logp = batch[Columns.ACTION_LOGP][rows]
    d1, d2, offset, pay = (batch[key][rows] for key in (D_PHI_1, D_PHI_2, A_OFFSET, A_PAY))
    reuse = features is not None and head_only(theta_names)
    if reuse:
        head, head_inputs = ActionHead(policy), (features[0][rows], features[1][rows], policy.layout.split(obs)[2])

    last = [None, None]  # (theta_l, its log-probabilities): J and J_out at the same theta^l share one forward

    def logp(theta_l):
        """log pi(a | o) at theta^l; computed once per theta^l (the same tensors give the same values and graph,
        so implicit_hypergradient's J and J_out share the actor's forward pass instead of running it twice)."""
        if last[0] is not theta_l:
            if reuse:
                logits = torch.func.functional_call(
                    head, {f"module.{name}": value for name, value in zip(theta_names, theta_l)}, head_inputs)
            else:
                weights = {**params, **dict(zip(theta_names, theta_l))}
                logits = torch.func.functional_call(policy, weights, ({Columns.OBS: obs},))[Columns.ACTION_DIST_INPUTS]
            last[:] = theta_l, torch.log_softmax(logits, dim=-1).gather(1, actions.unsqueeze(1)).squeeze(1)
        return last[1]

    def inner(theta_l, phi):
        return clipped_surrogate(logp(theta_l), old_logp, offset + phi[0] * d1 + phi[1] * d2, clip)

    def outer(theta_l, phi):
        return clipped_surrogate(logp(theta_l), old_logp, pay, clip)

    return inner, outer


class GivenAdvantageEstimation(GeneralAdvantageEstimation):
    """RLlib's GeneralAdvantageEstimation for every module batch except those that already carry
    Postprocessing.ADVANTAGES and VALUE_TARGETS: CAFE's policy batch, for which policies.cafe.connector
    computed them with RLlib's recursion and standardisation from the critic values and rewritten rewards it
    already has (tested equal to RLlib's piece in tests/test_cafe_rllib.py). Saves one critic forward (with
    autograd graph) over the whole train batch per iteration."""

    def __call__(self, *, rl_module, batch: dict, episodes: list, **kwargs):
        given = {mid for mid, module_batch in batch.items()
                 if Postprocessing.ADVANTAGES in module_batch and Postprocessing.VALUE_TARGETS in module_batch}
        if not given:
            return super().__call__(rl_module=rl_module, batch=batch, episodes=episodes, **kwargs)
        rest = {mid: module_batch for mid, module_batch in batch.items() if mid not in given}
        if any(mid in rl_module and isinstance(rl_module[mid], ValueFunctionAPI) for mid in rest):
            batch.update(super().__call__(rl_module=rl_module, batch=rest, episodes=episodes, **kwargs))
        return batch


class CAFELearner(ShapingPPOLearner):
    def build(self) -> None:
        super().build()
        credit = self.module[self.shaping["shaper"]]
        gamma, lambda_ = credit.model_config["gamma"], credit.model_config["lambda_"]
        assert (gamma, lambda_) == (self.config.gamma, self.config.lambda_), (gamma, lambda_)
        self._learner_connector.insert_after(GeneralAdvantageEstimation,
                                             GivenAdvantageEstimation(gamma=gamma, lambda_=lambda_))
        self._learner_connector.remove(GeneralAdvantageEstimation)
        names = [type(c).__name__ for c in self._learner_connector.connectors]
        assert names.index("RewriteRewards") + 1 == names.index("GivenAdvantageEstimation"), names
        cafe = self.config.learner_config_dict["cafe"]
        self._implicit = ImplicitGradConfig(**cafe["implicit"])
        self._implicit.validate()
        policy = self.module[self.shaping["policy"]]
        self._theta_names = list(select_parameters(policy, self._implicit.theta_l_layers))
        self._phi = torch.nn.Parameter(credit.phi.detach().clone())
        self._phi_optimizer = torch.optim.Adam([self._phi], lr=credit.phi_config.phi_lr)
        # where the next inverse-HVP solve starts (hypergradient.next_damping): carried across minibatches and
        # iterations, not checkpointed (after a restore it starts at config.damping again)
        self._damping = float(self._implicit.damping)

    def compute_losses(self, *, fwd_out, batch):
        losses = super().compute_losses(fwd_out=fwd_out, batch=batch)
        policy = self.shaping["policy"]
        if policy in batch:
            out = fwd_out.get(policy, {})
            features = (out[ACTOR_CONTEXT], out[ACTOR_OPTION_ROWS]) if ACTOR_CONTEXT in out else None
            self.update_phi(batch[policy], features)
        return losses

    def update_phi(self, batch: dict, features: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """One Eq. 14 step of phi on a minibatch (Algorithm 1, line 12), clipped into phi_bounds. ``features``:
        the actor tower's outputs from PPO's forward on this minibatch (see surrogates)."""
        policy, credit = self.module[self.shaping["policy"]], self.module[self.shaping["shaper"]]
        if not bool(batch[fact("valid")].any()):
            return
        start = time.perf_counter()
        with torch.no_grad():
            self._phi.copy_(check_finite("phi", credit.phi))  # the connector's Newton step or a restore may move it
        params = {name: p.detach() for name, p in policy.named_parameters()}
        clip = self.config.get_config_for_module(self.shaping["policy"]).clip_param
        inner, outer = surrogates(policy, params, self._theta_names, batch, clip, features)
        regulariser = linear_return_gap(credit.last_returns, credit.phi_config.eta)
        grad = implicit_hypergradient(inner, [params[n] for n in self._theta_names], self._phi, self._implicit,
                                      regulariser=regulariser,
                                      outer=outer if self._implicit.outer == "payment" else None,
                                      damping=self._damping)
        self._damping = next_damping(self._implicit, grad.solve)
        self._phi_optimizer.zero_grad()
        self._phi.grad = -grad.total  # ascend F (Eq. 7)
        self._phi_optimizer.step()
        with torch.no_grad():
            self._phi.clamp_(*credit.phi_config.phi_bounds)
            credit.phi.copy_(check_finite("phi", self._phi))
            loss = regulariser(credit.phi)
        seconds = time.perf_counter() - start
        shaper = self.shaping["shaper"]
        solve = grad.solve
        for key, value in {"L_Lambda": loss, "dJ_dphi_1": grad.direct[0], "implicit_1": grad.implicit[0],
                           "dL_dphi_1": grad.regulariser[0], "dJ_dphi_2": grad.direct[1],
                           "implicit_2": grad.implicit[1], "dL_dphi_2": grad.regulariser[1],
                           "phi_1": credit.phi[0], "phi_2": credit.phi[1], "implicit_step_s": seconds,
                           "implicit_damping": solve.damping, "implicit_damping_increases": solve.increases,
                           "implicit_residual": solve.residual, "implicit_products": solve.products,
                           "finetune_on": credit.finetune_on.float(),
                           "phi_before_finetune_1": credit.phi_before_finetune[0],
                           "phi_before_finetune_2": credit.phi_before_finetune[1]}.items():
            self.metrics.log_value((shaper, key), value.item() if torch.is_tensor(value) else value, window=1)
