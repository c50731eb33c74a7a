"""One evaluation path for every method: run an actor on seeded episodes of a world, collect metrics.

Actors are heuristics (policies.heuristics) or trained RLModules loaded from a checkpoint; both see the
same task stream (the episode seed fixes the task window, worker starts and skills) and are scored by
the world's own counters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ray.rllib.core.columns import Columns

from envs.csc_view import DecisionView
from policies.heuristics import Actor
from rl_cs import registry
from rl_cs.errors import InputError, closest, require

MODULE_DIR = Path("learner_group") / "learner" / "rl_module"


class ModuleActor:
    """A trained RLModule acting on every decider at once through RLlib's public inference API: its
    ``forward_inference`` output (action distribution inputs; AttentionActorCritic masks the actions the
    observation's action mask forbids) fed to its inference action distribution. Samples that distribution
    (seeded per episode, the policy PPO trained) or, if ``deterministic``, takes its deterministic version
    (the argmax). An undertrained policy's argmax is often tau_0 everywhere, which would score zero, so
    sampling is the default."""

    def __init__(self, module, name: str = "trained", deterministic: bool = False):
        self.module, self.name, self.deterministic = module, name, deterministic
        self.generator = torch.Generator()

    def reset(self, seed: int | None) -> None:
        self.generator.manual_seed(seed or 0)

    def act(self, view: DecisionView | None, obs: dict) -> dict:
        """Actions of the agents in ``obs``; the module sees only the observations (``view`` is unused)."""
        if not obs:
            return {}
        batch = torch.from_numpy(np.stack(list(obs.values())))
        with torch.no_grad():
            inputs = self.module.forward_inference({Columns.OBS: batch})[Columns.ACTION_DIST_INPUTS]
            dist = self.module.get_inference_action_dist_cls().from_logits(inputs)
            if self.deterministic:
                choice = dist.to_deterministic().sample()
            else:  # the distribution's probabilities of every action, (B, A), sampled with our own generator
                actions = torch.arange(self.module.action_space.n).unsqueeze(-1)
                probs = dist.logp(actions).exp().T
                choice = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        return dict(zip(obs, choice.numpy().tolist()))


def find_module_dir(path: Path) -> Path:
    """The shared-policy RLModule folder inside an algorithm checkpoint (or the folder itself)."""
    candidates = [path, *sorted(path.glob("**/rl_module/shared"))]
    for candidate in candidates:
        if (candidate / "module_state.pkl").exists() or (candidate / "module_state.pt").exists():
            return candidate
    raise InputError(str(path), "no trained RLModule found in this folder",
                     "give a checkpoint folder written by `rl-cs train` (checkpoint_00000N)")


def load_actor(policy: str, deterministic: bool = False, world: str = "csc") -> Actor:
    """A heuristic of ``world`` by method name (rl_cs.methods), or a trained module from a checkpoint path."""
    methods = {method.name: method for method in registry.methods_for(world)}
    if policy in methods and not methods[policy].learned:
        return methods[policy].make_heuristic()
    require(policy not in methods, "policy", f"'{policy}' is a learned method: evaluate a trained checkpoint",
            f"train it (rl-cs train {policy} --world {world}) and give its checkpoint folder")
    path = Path(policy).resolve()  # RLlib reads checkpoints through pyarrow, which takes no relative paths
    if not path.exists():
        heuristics = [name for name, method in methods.items() if not method.learned]
        raise InputError("policy", f"'{policy}' is neither a heuristic of world '{world}' nor an existing "
                         "checkpoint folder", closest(policy, heuristics))
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(find_module_dir(path))
    module.eval()
    return ModuleActor(module, name=path.name, deterministic=deterministic)


def run_episode(env, actor: Actor, seed: int) -> dict[str, float]:
    """One seeded episode of any registered world: the actor sees the env's decision view and the
    observations of the agents acting this step; the world's own counters score it."""
    obs, _ = env.reset(seed=seed)
    actor.reset(seed)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(actor.act(env.decision_view(), obs))
        done = terminated["__all__"] or truncated["__all__"]
    return env.episode_metrics()


def evaluate(env, actor: Actor, seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics per episode (``env.episode_metrics()``) and the episodes' logs (``env.episode_log()``: the
    CSC assignment log, the sensing world's cells per cycle), each row tagged with its seed."""
    rows, logs = [], []
    for seed in seeds:
        rows.append({"seed": seed, **run_episode(env, actor, seed)})
        logs.extend({**record, "seed": seed} for record in env.episode_log())
    return pd.DataFrame(rows), pd.DataFrame(logs)
