"""RLlib view of the sensing world: one agent per participant, all deciding together each cycle.

Observation per participant: its cell (one-hot, X), the last cycle's IS of every cell and attribute
standardised by the field's mean and std (A*X, 0 before the first cycle), and the last cycle's sensed cells
(X). Action: the cell to sense next (Discrete(X)). Reward: -(the cycle's aggregated error + cost_weight *
the participant's distance / the mean inter-cell distance). An episode is the world's cycles; it ends by
truncation. ``info`` carries epsilon and the participant's cost in km.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.sensing import SensingObservation, SensingWorld, SensingWorldConfig, Trajectory
from rl_cs.config import from_dict, to_dict
from rl_cs.data.sensing_field import SyntheticFieldConfig, synthetic_field


def load_sensing_field(data_dir: str | None, synthetic: SyntheticFieldConfig):
    """The Piemonte data from ``data_dir``, else the embedded synthetic field."""
    if data_dir:
        from rl_cs.data.piemonte import load_piemonte

        return load_piemonte(data_dir)
    return synthetic_field(synthetic)


class SensingMultiAgentEnv(MultiAgentEnv):
    """env_config (plain data, as Tune passes it): ``{"world": SensingWorldConfig or its dict, "data_dir":
    Piemonte folder or None, "synthetic": SyntheticFieldConfig or its dict (used without data_dir)}``; in
    one process a loaded ``"field"`` (SensingField) may be passed instead of data_dir/synthetic."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        config = dict(config or {})
        world = from_dict(SensingWorldConfig, config.get("world"), "world")
        world.validate("world")
        sensing_field = config.get("field") or load_sensing_field(
            config.get("data_dir"), from_dict(SyntheticFieldConfig, config.get("synthetic"), "synthetic"))
        world.check_field(sensing_field)
        self.world = SensingWorld(sensing_field, world)
        cells, attributes = self.world.num_cells, len(self.world.config.attributes)
        values = self.world.truth.transpose(1, 0, 2).reshape(attributes, -1)
        self.mean, self.std = np.nanmean(values, 1), np.nanstd(values, 1)
        self.mean_distance = self.world.distances.sum() / max(cells * (cells - 1), 1)
        self.possible_agents = [f"participant_{p}" for p in range(self.world.config.num_participants)]
        self.agents = list(self.possible_agents)
        space = gym.spaces.Box(-np.inf, np.inf, (cells * (attributes + 2),), np.float32)
        self.observation_spaces = {agent: space for agent in self.possible_agents}
        self.action_spaces = {agent: gym.spaces.Discrete(cells) for agent in self.possible_agents}
        self._rng = np.random.default_rng()
        self._outcomes: list = []

    def reset(self, *, seed=None, options=None):
        """A seeded reset starts the world exactly as ``run_online(world, act, seed)`` does, so a scheme
        scores the same through this env as on the plain loop."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self.world.reset(seed)
        else:
            self.world.reset(int(self._rng.integers(2 ** 31)))
        self._outcomes = []
        self._sensed = np.zeros(self.world.num_cells, dtype=np.float32)
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, action_dict):
        cells = np.array([int(action_dict[agent]) for agent in self.possible_agents])
        outcome = self.world.step(cells)
        self._outcomes.append(outcome)
        self._sensed = np.zeros(self.world.num_cells, dtype=np.float32)
        self._sensed[cells] = 1.0
        penalty = outcome.epsilon + self.world.config.cost_weight * outcome.cost_km / self.mean_distance
        rewards = {agent: -float(penalty[p]) for p, agent in enumerate(self.possible_agents)}
        infos = {agent: {"epsilon": outcome.epsilon, "cost_km": float(outcome.cost_km[p])}
                 for p, agent in enumerate(self.possible_agents)}
        done = self.world.done
        terminateds = {agent: False for agent in self.possible_agents} | {"__all__": False}
        truncateds = {agent: done for agent in self.possible_agents} | {"__all__": done}
        return self._observations(), rewards, terminateds, truncateds, infos

    def decision_view(self) -> SensingObservation:
        """What a planner sees at this cycle (the world's SensingObservation: positions, IS/CS history,
        distances): read-only by construction (copies and slices of the world's history)."""
        return self.world.observation()

    def episode_metrics(self) -> dict[str, float]:
        """The paper's metrics over the cycles so far: epsilon (Eq. 15) and the average travel cost (Eq. 16)."""
        if not self._outcomes:
            return {"error": float("nan"), "cost_km": 0.0, "cycles": 0.0}
        trajectory = Trajectory.from_outcomes(self._outcomes, self.world)
        return {"error": trajectory.aggregated_error, "cost_km": trajectory.average_cost,
                "cycles": float(len(self._outcomes))}

    def episode_log(self) -> list[dict]:
        """One record per cycle and participant: the cell sensed and the distance travelled to it."""
        return [{"cycle": y, "participant": p, "cell": int(cell), "cost_km": float(outcome.cost_km[p])}
                for y, outcome in enumerate(self._outcomes) for p, cell in enumerate(outcome.cells)]

    def _observations(self) -> dict:
        world = self.world
        cells = world.num_cells
        if world.cycle > 0:
            inferred = (world.inferred[world.cycle - 1] - self.mean[:, None]) / np.where(self.std > 0, self.std, 1)[:, None]
            inferred = np.nan_to_num(inferred).ravel()
        else:
            inferred = np.zeros(len(self.mean) * cells)
        shared = np.concatenate([inferred, self._sensed]).astype(np.float32)
        observations = {}
        for p, agent in enumerate(self.possible_agents):
            position = np.zeros(cells, dtype=np.float32)
            position[world.positions[p]] = 1.0
            observations[agent] = np.concatenate([position, shared])
        return observations


def env_config(world: SensingWorldConfig, data_dir: str | None = None,
               synthetic: SyntheticFieldConfig | None = None) -> dict:
    """The RLlib env_config of a sensing world (plain data only, so it serialises into Tune's results)."""
    from pathlib import Path

    return {"world": to_dict(world), "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "synthetic": to_dict(synthetic or SyntheticFieldConfig())}
