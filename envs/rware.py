"""``rware``: the multi-robot warehouse from the PyPI package rware 2.0.0 (never re-implemented), as an RLlib
MultiAgentEnv, sized as in DyPS (paper 002) Table 1 (envs.rware_config).

env_config (plain data, as Tune passes it): ``{"world": RWAREConfig or its dict}``, plus the learned methods'
options ``agent_id``, ``global_state``, ``team_reward`` (envs.gridworld; all off by default).

The world (the package's ``Warehouse``, ``small`` layout: a 20 x 10 grid of shelf blocks and highways, two
goal cells in the middle of the bottom row): robots move shelves; ``request_queue_size`` shelves are
requested at any time, and a requested shelf brought onto a goal cell is delivered and replaced in the
queue by a random unrequested shelf. Agents: ``agent_0`` .. ``agent_{n-1}`` in the package's robot order;
all act every step.

Observation (per agent, the package's ``FLATTENED`` vector, no message bits; 71 floats for sensor range 1):

* self (8): x (column), y (row) -- absolute cell coordinates, not normalised --, carrying a shelf (0/1),
  facing direction one-hot (up, down, left, right), on a highway cell (0/1);
* then each cell of the (2 * sensor_range + 1)^2 window around the robot, row-major (7 each): a robot there
  (0/1), that robot's direction one-hot (the package writes [1, 0, 0, 0], i.e. "up", for an empty cell),
  a shelf there (0/1), that shelf requested (0/1). Cells outside the grid read as empty.

The observation space is the package's own Box(-inf, inf).

Action: Discrete(5), the package's ``Action``: 0 no-op, 1 forward (one cell in the facing direction),
2 left (turn counter-clockwise), 3 right (turn clockwise), 4 toggle load (lift the shelf under the robot, or
put the carried one down -- only off the highways). A loaded robot cannot move under another shelf; moves
that collide are resolved by the package (the longest chain or cycle of non-conflicting moves goes ahead,
the rest wait).

Reward (the package's, ``reward_type``): individual (default): +1 to the robot that brings a requested
shelf onto a goal cell; global: +1 to every robot per delivery; two_stage: 0.5 for the delivery and 0.5
for putting the delivered shelf back down. With individual rewards the episode return summed over robots
is the number of deliveries (DyPS Table 2's RWARE "Return").

Episode end: the package never terminates an episode; its ``done`` after ``max_steps`` (and after
``max_inactivity_steps`` steps without a delivery, when set) is a time limit, reported as truncated for every
agent and ``__all__``. Business numbers (``episode_metrics``): return, shelves delivered (counted from the
package's request queue: each delivery replaces one entry, whatever the reward type), steps.
"""

from __future__ import annotations

from envs.gridworld import PackageMultiAgentEnv
from envs.rware_config import RWAREConfig
from rl_cs.config import from_dict


def make_package_env(config: RWAREConfig):
    """The package's env for ``config`` (what the wrapper steps; also the raw baseline of `rl-cs bench`)."""
    from rware.warehouse import Warehouse

    return Warehouse(**config.package_kwargs())


class RWAREEnv(PackageMultiAgentEnv):
    """See the module docstring for observation, action, reward and episode end."""

    def __init__(self, config: dict | None = None):
        config = dict(config or {})
        self.config = from_dict(RWAREConfig, config.get("world"), "world").validate("world")
        super().__init__(make_package_env(self.config), self.config.num_agents, config)
        self._delivered = 0

    def _ends(self, done: bool) -> tuple[bool, bool]:
        return False, done

    def _begin(self) -> None:
        self._delivered = 0

    def _snapshot(self):
        return [shelf.id for shelf in self.raw.request_queue]

    def _count(self, before, rewards):
        delivered = sum(old != shelf.id for old, shelf in zip(before, self.raw.request_queue))
        self._delivered += delivered
        carrying = sum(agent.carrying_shelf is not None for agent in self.raw.agents)
        return {"delivered": delivered, "carrying": carrying}

    def _metrics(self) -> dict[str, float]:
        return {"shelves_delivered": float(self._delivered)}


def env_config(world: RWAREConfig) -> dict:
    """The RLlib env_config of an RWARE world (plain data only)."""
    from rl_cs.config import to_dict

    return {"world": to_dict(world)}
