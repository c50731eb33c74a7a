"""DyPS on the CSC world (CAFE's collaborative spatial crowdsourcing): DyPS's mapping over the CSC workers, a
combination neither paper has run. Everything DyPS-specific is the other worlds' code (policies.dyps.rllib:
selector, VLSTM, CVAE, callbacks, learner, Algorithm 1's order); what differs is the group policy and what an
agent's history is.

* Group policies: M copies of CSC's attention actor-critic (policies.attention.AttentionActorCritic, built by
  IPPO's own spec builder rl_cs.experiment.ppo.module_spec), ``group_0`` .. ``group_{M-1}``, trained by PPO on
  the decisions of the workers assigned to them, each on its own (split) payment as IPPO (DyPS+IPPO, the paper's
  default; DyPS+MAPPO is not wired here).
* Agents: the N = ``world.num_workers`` workers, agent n = ``worker_<n>``. The identity I_n of Eq. 13 is the
  worker index one-hot, as on the other worlds (the selector's W is (N + H) x Z: 350 workers cost 350 x 16
  floats, so no learned embedding is needed at the worker counts of CAFE's tables).
* Histories (ASSUMPTION, the natural event-driven reading): a worker acts only at the env steps where it is
  idle and has a feasible task, so its trajectory T_n (Eq. 5-12) is the sequence of its own decisions: s_t its
  observation at its t-th decision (the whole flat observation, envs.csc_observation.ObsLayout: own features,
  the four padded sets and the action mask), a_t the option it chose (tau_0 .. tau_x), r_t the reward it
  received between that decision and its next one (RLlib's per-agent episode: rewards that arrive while a
  worker travels or works are summed onto its next observation), ending with the observation the world gives
  every worker that acted when the episode ends. The time between decisions is not part of x_t.
* R (§3.3): the episode's rewards summed over all workers, i.e. the revenue paid out under the split payment
  (policies.dyps.rllib.episode_return). Its scale (about 500 on the quick world) is the ``dyps.return_scale``
  setting's business (tune_configs/csc_dyps.yaml: 0.002).
* The per-episode assignment is drawn at the episode's creation for all N workers, before any worker has
  appeared; a worker that first decides late in the episode is mapped by RLlib then, from the same draw, and
  stays with that group to the episode's end.

M is checked against the number of workers here, before Ray starts and before anything is written (exit 2
naming ``dyps.num_groups``; M < 1 is refused when the config loads), as is a grid over ``world.num_workers``.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from policies.dyps.config import DyPSConfig
from policies.sharing.schemes import group_mapping, group_module
from rl_cs.errors import require

HISTORIES = "decisions"
"""DyPSRLModule model_config ``histories`` on CSC: histories are the worker's decisions (module docstring); the
evaluation actor then reads the rewards from the env's steps (policies.dyps.actor)."""


def csc_spaces(config) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    """A worker's observation and action spaces, from the world's observation layout alone (as envs.csc builds
    them; no scenario is loaded)."""
    from rl_cs.experiment.ppo import layout_of

    layout = layout_of(config)
    return gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32), gym.spaces.Discrete(layout.num_actions)


def group_spec(config, observation_space, action_space) -> RLModuleSpec:
    """IPPO's attention actor-critic spec (rl_cs.experiment.ppo.module_spec) with explicit spaces: a group no
    worker maps to while RLlib infers spaces would otherwise get none."""
    from rl_cs.experiment.ppo import module_spec

    return dataclasses.replace(module_spec(config), observation_space=observation_space, action_space=action_space)


def csc_dyps_config(config, env_config: dict, seed, cfg: DyPSConfig):
    """The PPOConfig of DyPS on CSC (module docstring), from the validated ``cfg`` (the experiment's ``dyps``
    section with the method's ablation fields)."""
    from policies.dyps.rllib import DYPS, DyPSCallbacks, DyPSLearner, DyPSRLModule
    from rl_cs.experiment.ppo import multi_module_ppo

    workers = int(config.world.num_workers)
    cfg.validate("dyps", workers)
    require("world.num_workers" not in config.grid, "grid.world.num_workers",
            "world.num_workers sets N, the size of the selector's agent identities I_n: one value per experiment",
            "run one experiment per world.num_workers")
    require(cfg.group_policy == "ippo", "dyps.group_policy", f"'{cfg.group_policy}' is not wired on world 'csc'",
            "use ippo (the CSC workers' attention actor-critics, each on its own split payment)")
    observation_space, action_space = csc_spaces(config)
    state_dim = int(observation_space.shape[0])
    settings = {"dyps": dataclasses.asdict(cfg), "state_dim": state_dim}
    specs = {group_module(m): group_spec(config, observation_space, action_space) for m in range(cfg.num_groups)}
    specs[DYPS] = RLModuleSpec(module_class=DyPSRLModule, observation_space=observation_space,
                               action_space=action_space,
                               model_config={**settings, "num_agents": workers, "histories": HISTORIES})
    ppo = multi_module_ppo(config, env_config, seed, specs, group_mapping, DyPSCallbacks)
    return ppo.learners(learner_class=DyPSLearner, learner_config_dict=settings)
