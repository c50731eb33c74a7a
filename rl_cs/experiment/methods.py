"""The methods and baselines `rl-cs` knows, by name: what they train with and how they are built.

A learned method provides ``build(config, env_config, seed) -> AlgorithmConfig`` and the world reward it
trains on; a heuristic provides its class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from policies.heuristics import Greedy, Heuristic, RandomPolicy
from policies.pau import PAU
from rl_cs.errors import InputError, closest


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    reward: str = "split"
    """World reward mode the method trains on (envs.csc_config.REWARD_MODES)."""
    build: Callable | None = None
    """(ExperimentConfig, env_config, seed) -> RLlib AlgorithmConfig, for learned methods."""
    heuristic: type[Heuristic] | None = None
    """Heuristic class, for planners evaluated without training."""

    @property
    def learned(self) -> bool:
        return self.build is not None


def _ppo(config, env_config, seed):
    from rl_cs.experiment.ppo import ppo_config

    return ppo_config(config, env_config, seed)


def _cafe(config, env_config, seed, finetune: bool = True):
    from rl_cs.experiment.shaping import cafe_config

    return cafe_config(config, env_config, seed, finetune=finetune)


def _ca_nofe(config, env_config, seed):
    return _cafe(config, env_config, seed, finetune=False)


def _ices(config, env_config, seed):
    from rl_cs.experiment.shaping import ices_config

    return ices_config(config, env_config, seed)


def _relara(config, env_config, seed):
    from rl_cs.experiment.shaping import relara_config

    return relara_config(config, env_config, seed)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ippo", "IPPO: PPO with one shared attention actor-critic, individual (split) payment reward", build=_ppo),
    Method("cafe", "CAFE: CMI reward redistribution, implicit bi-level phi updates, Newton fine-tuning", build=_cafe),
    Method("ca-nofe", "CA-noFE: CAFE without the Newton fine-tuning of phi", build=_ca_nofe),
    Method("ir", "IR: PPO on the remaining working time of the chosen task (CAFE §5.1)", reward="ir", build=_ppo),
    Method("ices", "ICES: payment reward + CVAE Bayesian-surprise intrinsic bonus, training only", build=_ices),
    Method("relara", "ReLara: payment reward + beta * a learned reward agent's proposal in [-1, 1]", build=_relara),
    Method("greedy", "Greedy: nearest feasible skill-matching task not yet covered", heuristic=Greedy),
    Method("random", "Random: uniform over allowed actions", heuristic=RandomPolicy),
    Method("pau", "PAU: worker coalitions as an exact potential game (greedy, best response, annealing)",
           heuristic=PAU),
)}


def get_method(name: str) -> Method:
    key = name.lower()
    if key not in METHODS:
        raise InputError("method", f"unknown method '{name}'", closest(key, METHODS))
    return METHODS[key]
