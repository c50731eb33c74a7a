"""Typed experiment config -> RLlib PPO AlgorithmConfig (new API stack), for every PPO-based method.

One shared RLModule ("shared") serves all workers (CAFE §4.1: identical network and parameters).
Business metrics reach Tune through an episode-end callback reading the world's own counters.

Fault tolerance: Ray restarts a lost remote env runner and RLlib brings it back at the start of the next
iteration (its restarts are the ``env_runner_restarts`` metric). An iteration that sampled nothing (every
remote runner lost) is an error, not a result: the trial fails and Tune retries it from its last checkpoint
(experiment.max_failures).
"""

from __future__ import annotations

import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from envs.csc_observation import ObsLayout
from policies.attention import AttentionActorCritic
from rl_cs.experiment.config import ExperimentConfig
from rl_cs.experiment.env_runner import PerModuleMetricsEnvRunner

SHARED_MODULE = "shared"


def shared_module(agent_id, episode=None, **kwargs) -> str:
    """Every worker maps to the one shared module (also when RLlib calls with episode=None)."""
    return SHARED_MODULE


# RLlib's defaults restart a failed env runner up to 1000 times, but make a runner that raised sleep 60 s
# before it exits (to stream its logs): a minute of a stalled trial per failure. Two seconds suffice locally.
ENV_RUNNER_RESTART_DELAY_S = 2.0
MAX_ENV_RUNNER_RESTARTS = 100


class SampledNothing(RuntimeError):
    """A training iteration without a single env step (its env runners were lost): failing the trial makes
    Tune retry it from its last checkpoint instead of recording an untrained iteration as a result."""


class CSCMetrics(RLlibCallback):
    """Logs revenue, completion rate, lateness, travel and invalid actions of each finished episode, and
    pins torch's thread count in every process that samples or learns (see TrainingSettings.torch_threads).
    Each iteration's result gets ``env_runner_restarts`` (remote env runners Ray restarted and RLlib restored
    in this trial process) and ``healthy_env_runners``; an iteration that sampled nothing, or that ended with
    none of its remote env runners healthy, raises SampledNothing."""

    def on_algorithm_init(self, *, algorithm, **kwargs):
        torch.set_num_threads(algorithm.config.env_config["torch_threads"])
        # every checkpoint also gets the policy's weights alone, which `rl-cs evaluate` reads (no pickle)
        from rl_cs.evaluation import save_weights_with_checkpoints

        save_weights_with_checkpoints(algorithm, SHARED_MODULE)

    def on_environment_created(self, *, env_runner, **kwargs):
        torch.set_num_threads(env_runner.config.env_config["torch_threads"])

    def on_train_result(self, *, algorithm, result: dict, **kwargs):
        stats = result.get("fault_tolerance", {})
        remote = algorithm.config.num_env_runners
        healthy = stats.get("num_healthy_workers", remote)
        result["env_runner_restarts"] = stats.get("num_remote_worker_restarts", 0)
        result["healthy_env_runners"] = healthy
        sampled = result.get("env_runners", {}).get("num_env_steps_sampled", 0)
        if not sampled > 0 or (remote > 0 and healthy == 0):
            raise SampledNothing(
                f"iteration {result.get('training_iteration')} sampled {sampled if sampled > 0 else 0} env steps "
                f"with {healthy} of {remote} remote env runner(s) healthy (an env runner was lost)")

    def on_episode_end(self, *, episode, env=None, env_index: int = 0, metrics_logger=None, **kwargs):
        world = env.envs[env_index].unwrapped if hasattr(env, "envs") else env.unwrapped
        for key, value in world.episode_metrics().items():
            metrics_logger.log_value(key, float(value))


def layout_of(config: ExperimentConfig) -> ObsLayout:
    w = config.world
    return ObsLayout(w.num_optional_tasks, w.num_near_tasks, w.num_near_workers, w.num_idle_workers)


def module_spec(config: ExperimentConfig, module_class=AttentionActorCritic) -> RLModuleSpec:
    model = {"layout": layout_of(config).to_dict(), **vars(config.model)}
    return RLModuleSpec(module_class=module_class, model_config=model)


def ppo_config(config: ExperimentConfig, env_config: dict, seed=None) -> PPOConfig:
    return multi_module_ppo(config, env_config, seed, {SHARED_MODULE: module_spec(config)}, shared_module, CSCMetrics)


def multi_module_ppo(config, env_config: dict, seed, specs: dict, mapping, callbacks) -> PPOConfig:
    """The PPOConfig every RLlib method here starts from: the experiment's world and ``training`` section
    (PPO, sampling, learners), the modules ``specs`` with the agent->module ``mapping``, our env runner and
    its fault tolerance, ``callbacks``, the trial's seed. ``training.vf_clip_param`` where the section has
    one (RLlib's default 10 otherwise). Every world's actions are Discrete, so action normalising and clipping
    (on by default: a deep copy and a visit of every action each step) are switched off; they would change
    nothing (benchmarks/gridworld_overhead.py measured 3% of LBF sampling)."""
    t = config.training
    return (
        PPOConfig()
        .environment(type(config).world_name, env_config={**env_config, "torch_threads": t.torch_threads},
                     disable_env_checking=True, normalize_actions=False, clip_actions=False)
        .multi_agent(policies=set(specs), policy_mapping_fn=mapping)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .env_runners(env_runner_cls=PerModuleMetricsEnvRunner, num_env_runners=t.num_env_runners,
                     num_envs_per_env_runner=t.num_envs_per_env_runner,
                     rollout_fragment_length=t.rollout_fragment_length or "auto")
        .learners(num_learners=t.num_learners, num_gpus_per_learner=t.num_gpus_per_learner)
        .training(lr=t.lr, gamma=t.gamma, lambda_=t.lambda_, clip_param=t.clip_param,
                  entropy_coeff=t.entropy_coeff, vf_loss_coeff=t.vf_loss_coeff,
                  vf_clip_param=getattr(t, "vf_clip_param", 10.0),
                  train_batch_size_per_learner=t.train_batch_size, minibatch_size=t.minibatch_size,
                  num_epochs=t.num_epochs)
        .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=MAX_ENV_RUNNER_RESTARTS,
                         delay_between_env_runner_restarts_s=ENV_RUNNER_RESTART_DELAY_S)
        .callbacks(callbacks)
        .debugging(seed=seed)
    )
