"""DyPS on RLlib (new API stack): M group policy modules, a per-episode agent -> group assignment drawn from
the learned selector, and the training order of Algorithm 1.

Modules (one MultiRLModule, trained, synced to the env runners and checkpointed together):

* ``group_0`` .. ``group_{M-1}``: the group policies theta_m (policies.sharing.modules.MLPActorCritic; on CSC
  the attention actor-critic, policies.dyps.csc),
  trained by PPO on the steps of the agents assigned to them -- IPPO (each agent's own reward and
  observation) or MAPPO (``dyps.group_policy: mappo``: a centralised critic on [o_i, s], s every agent's
  observation, and the team reward; Table 4);
* ``dyps``: VLSTM (Eq. 5-12), CVAE (Eq. 4) and the group selector (Eq. 13) with its critic
  (policies.dyps.model.DyPSModules). No agent maps to it.

One episode (Alg. 1 lines 3-13), on an env runner (DyPSCallbacks):

* at the episode's creation -- before the env's reset, so before RLlib asks the mapping for any agent --
  h_n = VLSTM role of agent n's last ``history_steps`` steps of its previous episode on this env runner
  (zeros before it has one), z_m = the CVAE's group roles, P = Softmax_m([I_n, h_n]^T W z_m) (Eq. 13), and
  g_n ~ P[n] (seeded per env runner). The assignment is written to ``episode.custom_data``; the mapping
  (policies.sharing.schemes.group_mapping) reads it, and RLlib caches it for the episode: every step of
  agent n in this episode is acted and trained by ``group_<g_n>``. The next episode draws again, from the
  selector as it is then (its weights are synced from the learner after every iteration);
* at the episode's end its return R (the sum over agents and steps of the world's rewards, §3.3) is added
  to the same record, and each agent's trajectory becomes its history for the next episode.

One training iteration (Alg. 1 lines 14-18), on the learner (DyPSLearner), before PPO's minibatch loop:

1. the selector, one step per completed episode (line 14): the one-step actor-critic of
   policies.dyps.selector on (state (I_n, h_n, z_m) as drawn, action g, reward R x ``return_scale``), actor
   and critic with their own Adam (Table 6: 1e-5 each on LBF / RWARE); the group each agent was favoured for
   in the iteration's episodes is logged (``role_<n>``: the role maps of Fig. 6b);
2. the VLSTM by its ELBO (Eq. 12; line 16) and 3. the CVAE by its ELBO (Eq. 4; line 17), each
   ``representation_steps`` Adam steps on random windows / (group, state, action) pairs of the iteration's
   trajectories, the group of a pair being the group its agent was assigned;
4. the group policies by PPO (line 18): RLlib's own update, on the same episodes.

The parameter sets are disjoint and each has its own optimizer; PPO's steps never touch ``dyps``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule

from policies.dyps.config import DyPSConfig
from policies.dyps.model import DyPSModules
from policies.dyps.selector import one_step_actor_critic_loss
from policies.dyps.vlstm import trajectory_pairs
from policies.sharing.ppo import EPISODE_WINDOW, SharingCallbacks, gridworld_ppo, world_spaces
from policies.sharing.schemes import GROUPS, agent_index

DYPS = "dyps"
"""Module id of the selector / representation module."""
RECORD = "dyps"
"""Key of the episode's selection record in ``episode.custom_data`` (roles, group roles, P, return)."""
ROLE = "role_"
"""Learner metric ``dyps/role_<n>``: the group the selector favoured for agent n in the iteration's episodes
(role_map; progress.csv column ``learners/dyps/role_<n>``): DyPS Fig. 6b's role maps over training."""


class DyPSRLModule(TorchRLModule):
    """DyPSModules as an RLModule (model_config: ``dyps`` a DyPSConfig dict, ``num_agents``, ``state_dim``)."""

    def setup(self):
        self.config = DyPSConfig(**self.model_config["dyps"])
        self.num_agents = int(self.model_config["num_agents"])
        self.state_dim = int(self.model_config["state_dim"])
        self.num_actions = int(self.action_space.n)
        self.dyps = DyPSModules(self.config, self.num_agents, self.state_dim, self.num_actions)

    def _forward(self, batch, **kwargs):
        return {}

    @torch.no_grad()
    def select(self, histories: list, generator: torch.Generator | None = None, deterministic: bool = False) -> dict:
        """Alg. 1 lines 4-5 for one episode: ``histories`` one (obs, actions, rewards) or None per agent.
        Returns the selection record: groups (N,) ints, probs (N, M), roles (N, H) or None, group_roles
        (M, Z) or None."""
        x, a, mask = history_tensors(histories, self.state_dim, self.num_actions, self.config.history_steps)
        roles, group_roles = self.dyps.state(x, a, mask)
        groups, probs = self.dyps.selector.assign(roles, group_roles, generator, deterministic)
        return {"groups": groups.tolist(), "probs": probs.numpy().astype(np.float32),
                "roles": None if roles is None else roles.numpy().astype(np.float32),
                "group_roles": None if group_roles is None else group_roles.numpy().astype(np.float32)}


def history_tensors(histories: list, state_dim: int, num_actions: int, length: int):
    """The VLSTM's inputs (x, a, mask) for one history per agent (None: no history yet -> all-zero rows,
    masked out, so the agent's h_n is the LSTM's initial state); (None, None, None) when no agent has one."""
    if all(h is None for h in histories):
        return None, None, None
    windows = [window(h, state_dim, length) if h is not None else None for h in histories]
    steps = max(len(w[1]) for w in windows if w is not None)
    n = len(histories)
    states = torch.zeros(n, steps + 1, state_dim)
    actions = torch.zeros(n, steps, dtype=torch.long)
    rewards = torch.zeros(n, steps)
    mask = torch.zeros(n, steps + 1, dtype=torch.bool)
    for i, w in enumerate(windows):
        if w is None:
            continue
        obs, act, rew = w
        t = len(act)
        states[i, : t + 1] = torch.tensor(obs)
        actions[i, :t], rewards[i, :t] = torch.tensor(act), torch.tensor(rew)
        mask[i, : t + 1] = True
    x, a = trajectory_pairs(states, actions, rewards, num_actions)
    return x, a, mask


def window(history, state_dim: int, length: int):
    """The last ``length`` steps of one trajectory (obs (T+1, >=S), actions (T,), rewards (T,)), the states
    cut to the agent's own observation (its first ``state_dim`` floats)."""
    obs, actions, rewards = history
    t = min(len(actions), length)
    return (np.asarray(obs, np.float32)[len(obs) - t - 1:, :state_dim], np.asarray(actions)[len(actions) - t:],
            np.asarray(rewards, np.float32)[len(rewards) - t:])


def episode_trajectories(chunks: list) -> dict:
    """agent id -> (obs (T+1, S), actions (T,), rewards (T,)) of a whole episode from its chunks (oldest first;
    RLlib cuts episodes into chunks between sampling calls, each chunk starting at its predecessor's last
    observation)."""
    parts: dict = {}
    for chunk in chunks:
        for agent_id, sa in chunk.agent_episodes.items():
            obs = np.asarray(sa.get_observations(), np.float32)
            actions, rewards = np.asarray(sa.get_actions()), np.asarray(sa.get_rewards(), np.float32)
            if agent_id in parts and len(obs) and sum(len(seen) for seen in parts[agent_id][0]):
                obs = obs[1:]  # (an agent that acts irregularly, CSC's, may have had no observation in a chunk)
            parts.setdefault(agent_id, ([], [], []))
            for store, values in zip(parts[agent_id], (obs, actions, rewards)):
                store.append(values)
    return {agent: tuple(np.concatenate(values) for values in stores) for agent, stores in parts.items()}


def episode_return(metrics: dict, trajectories: dict) -> float:
    """R of §3.3, the episode's reward summed over all agents: the world's own ``return`` counter where it keeps
    one (the package gridworlds, the cell worlds), else the sum of the rewards RLlib recorded for every agent
    over the whole episode (CSC, whose counters are business metrics: with the split payment this is the
    revenue paid out; with IR's reward, the remaining working time of the chosen tasks)."""
    if "return" in metrics:
        return float(metrics["return"])
    return float(sum(float(np.sum(rewards)) for _, _, rewards in trajectories.values()))


class DyPSCallbacks(SharingCallbacks):
    """The env-runner half of DyPS (module docstring): a selection at each episode's creation, the return and
    the agents' histories at its end."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._history: dict[int, tuple] = {}
        self._episodes = 0
        self._generator = None

    def on_episode_created(self, *, episode, env_runner=None, rl_module=None, **kwargs):
        if rl_module is None or DYPS not in rl_module:
            return
        module: DyPSRLModule = rl_module[DYPS]
        if self._generator is None:
            seed = getattr(getattr(env_runner, "config", None), "seed", None) or 0
            index = getattr(env_runner, "worker_index", 0) or 0
            self._generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index) * 7_919 + 17)
        record = module.select([self._history.get(i) for i in range(module.num_agents)], self._generator)
        episode.custom_data[GROUPS] = record["groups"]
        episode.custom_data[RECORD] = record

    def on_episode_end(self, *, episode, env=None, env_index: int = 0, metrics_logger=None,
                       prev_episode_chunks=None, **kwargs):
        super().on_episode_end(episode=episode, env=env, env_index=env_index, metrics_logger=metrics_logger, **kwargs)
        record = episode.custom_data.get(RECORD)
        if record is None:
            return
        world = env.envs[env_index].unwrapped if hasattr(env, "envs") else env.unwrapped
        trajectories = episode_trajectories([*(prev_episode_chunks or []), episode])
        record["return"] = episode_return(world.episode_metrics(), trajectories)
        for agent_id, trajectory in trajectories.items():
            self._history[agent_index(agent_id)] = trajectory
        if metrics_logger is not None:
            groups = record["groups"]
            metrics_logger.log_value("dyps_groups_used", float(len(set(groups))), window=EPISODE_WINDOW)
            metrics_logger.log_value("dyps_max_probability", float(np.max(record["probs"], -1).mean()),
                                     window=EPISODE_WINDOW)


def role_map(episodes) -> list[int]:
    """The group the selector favoured for each agent over ``episodes``: argmax_m of P[n, m] averaged over the
    completed episodes' selection records (as drawn at their start); [] when none completed."""
    probs = [np.asarray(e.custom_data[RECORD]["probs"]) for e in episodes
             if e.is_done and e.custom_data.get(RECORD) is not None]
    if not probs:
        return []
    return np.mean(probs, axis=0).argmax(-1).tolist()


class CollectEpisodes(ConnectorV2):
    """First learner-connector piece: hands the iteration's episodes to DyPSLearner.dyps_update (selector,
    VLSTM, CVAE) before PPO's batch is built; the batch passes unchanged."""

    def __init__(self, learner, **kwargs):
        super().__init__(**kwargs)
        self.learner = learner

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        self.learner.dyps_update(episodes)
        return batch


class DyPSLearner(PPOTorchLearner):
    """PPO on the group modules plus DyPS's selector / representation updates (module docstring)."""

    def build(self) -> None:
        super().build()
        settings = self.config.learner_config_dict
        self._dyps = DyPSConfig(**settings["dyps"])
        self._state_dim = int(settings["state_dim"])
        self._rng = np.random.default_rng(int(self.config.seed or 0) + 101)
        self._learner_connector.prepend(CollectEpisodes(self))

    def rl_module_is_compatible(self, module) -> bool:
        return isinstance(module, DyPSRLModule) or super().rl_module_is_compatible(module)

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        if module_id != DYPS:
            return super().configure_optimizers_for_module(module_id, config)
        modules: DyPSModules = self.module[DYPS].dyps
        cfg = DyPSConfig(**self.config.learner_config_dict["dyps"])
        groups = {"selector_actor": (modules.selector.actor_parameters(), cfg.selector_actor_lr),
                  "selector_critic": (modules.selector.critic_parameters(), cfg.selector_critic_lr)}
        if modules.vlstm is not None:
            groups["vlstm"] = (list(modules.vlstm.parameters()), cfg.representation_lr)
        if modules.cvae is not None:
            groups["cvae"] = (list(modules.cvae.parameters()), cfg.representation_lr)
        for name, (params, lr) in groups.items():
            self.register_optimizer(module_id=DYPS, optimizer_name=name, optimizer=torch.optim.Adam(params),
                                    params=params, lr_or_lr_schedule=lr)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.get_optimizer(DYPS, name)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ Alg. 1 lines 14-17
    def dyps_update(self, episodes) -> None:
        modules: DyPSModules = self.module[DYPS].dyps
        cfg = self._dyps
        metrics: dict[str, list[float]] = {}
        # line 14: the selector, one step per completed episode, in the order they were sampled
        for episode in episodes:
            record = episode.custom_data.get(RECORD)
            if not episode.is_done or record is None or "return" not in record:
                continue
            roles = None if record["roles"] is None else torch.tensor(np.array(record["roles"]))
            group_roles = None if record["group_roles"] is None else torch.tensor(np.array(record["group_roles"]))
            logits = modules.selector.logits(roles, group_roles)
            values = modules.selector.value(roles, group_roles)
            loss = one_step_actor_critic_loss(logits, torch.as_tensor(record["groups"]),
                                              torch.tensor(record["return"] * cfg.return_scale), values,
                                              cfg.selector_entropy_coeff)
            for part in ("actor", "critic"):
                optimizer = self.get_optimizer(DYPS, f"selector_{part}")
                optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            self.get_optimizer(DYPS, "selector_actor").step()
            self.get_optimizer(DYPS, "selector_critic").step()
            for part in ("actor", "critic"):
                self.get_optimizer(DYPS, f"selector_{part}").zero_grad(set_to_none=True)
            for key, value in (("selector_actor_loss", loss.actor), ("selector_critic_loss", loss.critic),
                               ("selector_entropy", loss.entropy), ("episode_return", torch.tensor(record["return"]))):
                metrics.setdefault(key, []).append(float(value.detach()))
        trajectories, pairs = self._trajectories(episodes)
        # line 16: VLSTM by its ELBO (Eq. 12) on windows of the agents' trajectories
        if modules.vlstm is not None and trajectories:
            sequences = max(cfg.representation_batch // cfg.history_steps, 1)
            for _ in range(cfg.representation_steps):
                chosen = [trajectories[i] for i in self._rng.integers(len(trajectories), size=sequences)]
                x, a, mask = history_tensors([self._random_window(t) for t in chosen], self._state_dim,
                                             modules.num_actions, cfg.history_steps)
                loss = modules.vlstm.loss(x, a, mask, cfg.vlstm_kl_weight)
                self._step("vlstm", loss)
                metrics.setdefault("vlstm_elbo", []).append(-loss.item())
        # line 17: CVAE by its ELBO (Eq. 4) on (group, state, action) of the iteration's steps
        if modules.cvae is not None and pairs is not None:
            groups, states, actions = pairs
            for _ in range(cfg.representation_steps):
                rows = self._rng.integers(len(groups), size=min(cfg.representation_batch, len(groups)))
                loss = modules.cvae.loss(torch.as_tensor(groups[rows]), torch.as_tensor(states[rows]),
                                         torch.as_tensor(actions[rows]), cfg.cvae_kl_weight)
                self._step("cvae", loss)
                metrics.setdefault("cvae_elbo", []).append(-loss.item())
        metrics.setdefault("selector_updates", []).append(float(len(metrics.get("selector_actor_loss", []))))
        for agent, group in enumerate(role_map(episodes)):
            metrics[f"{ROLE}{agent}"] = [float(group)]
        for key, values in metrics.items():
            self.metrics.log_value((DYPS, key), float(np.mean(values)) if key != "selector_updates" else values[0],
                                   window=1)

    def _random_window(self, trajectory):
        obs, actions, rewards = trajectory
        length = min(self._dyps.history_steps, len(actions))
        start = int(self._rng.integers(len(actions) - length + 1))
        return obs[start:start + length + 1], actions[start:start + length], rewards[start:start + length]

    def _trajectories(self, episodes):
        """Per agent and episode chunk: (obs, actions, rewards) for the VLSTM, and the (group, state, action)
        pairs of every step for the CVAE (states cut to the agent's own observation)."""
        trajectories, groups, states, actions = [], [], [], []
        for episode in episodes:
            assignment = episode.custom_data.get(GROUPS)
            for agent_id, sa in episode.agent_episodes.items():
                act = np.asarray(sa.get_actions())
                if len(act) == 0:
                    continue
                obs = np.asarray(sa.get_observations(), np.float32)[:, : self._state_dim]
                trajectories.append((obs, act, np.asarray(sa.get_rewards(), np.float32)))
                if assignment is not None:
                    groups.append(np.full(len(act), assignment[agent_index(agent_id)]))
                    states.append(obs[:-1])
                    actions.append(act)
        pairs = None
        if groups:
            pairs = (np.concatenate(groups), np.concatenate(states), np.concatenate(actions).astype(np.int64))
        return trajectories, pairs


def dyps_config(config, env_config: dict, seed, **overrides):
    """DyPS on the experiment's world (section ``dyps``); ``overrides`` are the ablations' fields (rl_cs.methods:
    use_vlstm, use_cvae, group_policy). On CSC the group policies are attention actor-critics (policies.dyps.csc)."""
    cfg = dataclasses.replace(config.dyps, **overrides)
    if getattr(type(config), "world_name", None) == "csc":  # attention group policies over irregular deciders
        from policies.dyps.csc import csc_dyps_config

        return csc_dyps_config(config, env_config, seed, cfg)
    observation_space, action_space, agents = world_spaces(config, {})
    cfg.validate("dyps", agents)
    state_dim = int(observation_space.shape[0])
    mappo = cfg.group_policy == "mappo"
    helper = RLModuleSpec(module_class=DyPSRLModule, observation_space=observation_space, action_space=action_space,
                          model_config={"dyps": dataclasses.asdict(cfg), "num_agents": agents, "state_dim": state_dim})
    return gridworld_ppo(config, env_config, seed, scheme="dyps", num_groups=cfg.num_groups,
                         env_options={"global_state": True, "team_reward": True} if mappo else {},
                         helpers={DYPS: helper}, learner_class=DyPSLearner,
                         learner_config={"dyps": dataclasses.asdict(cfg), "state_dim": state_dim},
                         callbacks=DyPSCallbacks, actor_inputs=state_dim if mappo else None)
