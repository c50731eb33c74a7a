"""Typed config -> RLlib PPOConfig for the learned reward-shaping methods: CAFE, CA-noFE, ICES, ReLara.

Each is IPPO's PPOConfig (rl_cs.experiment.ppo) on a world that fills its credit-assignment infos
(env_config "credit_facts"), plus one shaper RLModule in the MultiRLModule (no agent maps to it) and a
shaping learner that rewrites rewards before GAE and trains the shaper (policies.shaping). CAFE may swap the policy's critic for MAPPO's centralised one (cafe.critic).
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rl_cs.experiment.config import ExperimentConfig
from rl_cs.experiment.ppo import SHARED_MODULE, layout_of, module_spec, ppo_config


def shaped_ppo_config(config: ExperimentConfig, env_config: dict, seed, *, shaper_id: str, shaper_class,
                      shaper_model_config: dict, learner_class, learner_config: dict | None = None,
                      policy_class=None) -> PPOConfig:
    layout = layout_of(config)
    policy = module_spec(config) if policy_class is None else module_spec(config, policy_class)
    shaper = RLModuleSpec(
        module_class=shaper_class,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32),
        action_space=gym.spaces.Discrete(layout.num_actions),
        model_config={**config.policy_model_config(), "policy": SHARED_MODULE, "gamma": config.training.gamma,
                      "lambda_": config.training.lambda_, **shaper_model_config})
    shaping = {"policy": SHARED_MODULE, "shaper": shaper_id, "num_near_workers": config.world.num_near_workers}
    return (
        ppo_config(config, {**env_config, "credit_facts": True}, seed)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={SHARED_MODULE: policy, shaper_id: shaper}))
        .learners(learner_class=learner_class, learner_config_dict={"shaping": shaping, **(learner_config or {})})
    )


def cafe_config(config: ExperimentConfig, env_config: dict, seed, finetune: bool = True) -> PPOConfig:
    """CAFE (finetune=True) or CA-noFE (finetune=False), on IPPO or MAPPO (cafe.critic)."""
    from policies.cafe.credit_module import CreditModule
    from policies.cafe.learner import CAFELearner
    from policies.mappo import CentralCriticActorCritic

    cafe = config.cafe
    return shaped_ppo_config(
        config, env_config, seed, shaper_id="credit", shaper_class=CreditModule,
        shaper_model_config={"credit": dataclasses.asdict(cafe.credit), "phi": dataclasses.asdict(cafe.phi),
                             "finetune": finetune},
        learner_class=CAFELearner,
        learner_config={"cafe": {"implicit": dataclasses.asdict(cafe.implicit)}},
        policy_class=CentralCriticActorCritic if cafe.critic == "mappo" else None)


def ices_config(config: ExperimentConfig, env_config: dict, seed) -> PPOConfig:
    """ICES as a training-time intrinsic reward bonus (policies.ices)."""
    from policies.ices import ICESModule
    from policies.shaping.learner import ShapingPPOLearner

    return shaped_ppo_config(config, env_config, seed, shaper_id="ices", shaper_class=ICESModule,
                             shaper_model_config={"ices": dataclasses.asdict(config.ices)},
                             learner_class=ShapingPPOLearner)


def relara_config(config: ExperimentConfig, env_config: dict, seed) -> PPOConfig:
    """ReLara with an on-policy reward agent (policies.relara)."""
    from policies.relara import RewardAgent
    from policies.shaping.learner import ShapingPPOLearner

    return shaped_ppo_config(config, env_config, seed, shaper_id="relara", shaper_class=RewardAgent,
                             shaper_model_config={"relara": dataclasses.asdict(config.relara)},
                             learner_class=ShapingPPOLearner)
