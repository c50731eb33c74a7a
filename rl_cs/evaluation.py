"""One evaluation path for every method: run an actor on seeded episodes of a world, collect metrics.

Actors are heuristics (policies.heuristics) or trained RLModules loaded from a checkpoint; both see the
same task stream (the episode seed fixes the task window, worker starts and skills) and are scored by
the world's own counters.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from envs.csc import CSCEnv
from policies.heuristics import Heuristic
from rl_cs.errors import InputError, closest
from rl_cs.experiment.methods import METHODS

MODULE_DIR = Path("learner_group") / "learner" / "rl_module"


class ModuleActor(Heuristic):
    """A trained RLModule acting on every decider at once: sampling its masked softmax (seeded per
    episode, the policy PPO trained) or, if ``deterministic``, taking the argmax. An undertrained policy's
    argmax is often tau_0 everywhere, which would score zero, so sampling is the default."""

    def __init__(self, module, name: str = "trained", deterministic: bool = False):
        self.module, self.name, self.deterministic = module, name, deterministic
        self.generator = torch.Generator()

    def reset(self, seed: int | None) -> None:
        self.generator.manual_seed(seed or 0)

    def act(self, env: CSCEnv, obs: dict) -> dict:
        batch = torch.from_numpy(np.stack(list(obs.values())))
        with torch.no_grad():
            logits = self.module.action_logits(batch)
            if self.deterministic:
                choice = logits.argmax(dim=-1)
            else:
                choice = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator).squeeze(-1)
        return dict(zip(obs, choice.numpy().tolist()))


def find_module_dir(path: Path) -> Path:
    """The shared-policy RLModule folder inside an algorithm checkpoint (or the folder itself)."""
    candidates = [path, *sorted(path.glob("**/rl_module/shared"))]
    for candidate in candidates:
        if (candidate / "module_state.pkl").exists() or (candidate / "module_state.pt").exists():
            return candidate
    raise InputError(str(path), "no trained RLModule found in this folder",
                     "give a checkpoint folder written by `rl-cs train` (checkpoint_00000N)")


def load_actor(policy: str, deterministic: bool = False) -> Heuristic:
    """A heuristic by method name (rl_cs.experiment.methods), or a trained module from a checkpoint path."""
    heuristics = {name: method.heuristic for name, method in METHODS.items() if method.heuristic}
    if policy in heuristics:
        return heuristics[policy]()
    path = Path(policy).resolve()  # RLlib reads checkpoints through pyarrow, which takes no relative paths
    if not path.exists():
        raise InputError("policy", f"'{policy}' is neither a heuristic nor an existing checkpoint folder",
                         closest(policy, heuristics))
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(find_module_dir(path))
    module.eval()
    return ModuleActor(module, name=path.name, deterministic=deterministic)


def run_episode(env: CSCEnv, actor: Heuristic, seed: int) -> dict[str, float]:
    obs, _ = env.reset(seed=seed)
    actor.reset(seed)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(actor.act(env, obs))
        done = terminated["__all__"] or truncated["__all__"]
    return env.episode_metrics()


def evaluate(env: CSCEnv, actor: Heuristic, seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics per episode, and the per-task assignment log (task, workers, start, finish, payment)."""
    rows, logs = [], []
    for seed in seeds:
        rows.append({"seed": seed, **run_episode(env, actor, seed)})
        for entry in env.stats.log:
            record = asdict(entry)
            record.update(seed=seed, expected=float(env.tasks.expected[entry.task]),
                          deadline=float(env.tasks.deadline[entry.task]), skill=int(env.tasks.skill[entry.task]),
                          rho_max=float(env.tasks.rho_max[entry.task]))
            logs.append(record)
    return pd.DataFrame(rows), pd.DataFrame(logs)
