"""The service's decision, without Ray: the CSC world set to a posted snapshot, and a policy acting on it.

``SnapshotWorld`` is the CSC world (envs.csc.CSCEnv) whose state is set from a snapshot instead of stepped
to (and whose workers stand where the snapshot puts them, ``worker_xy``): its own ``_find_deciders``
(feasibility: skill match, within range_m by road, t_d reachable; the x nearest feasible tasks as the action
slots and their mask), ``_observe`` (the flat observations) and ``decision_view`` then run unchanged, so a
served policy sees exactly what it saw in training and evaluation. ``Assigner`` turns the policy's actions
(option slots) back into the posted task ids.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.csc import DONE, IDLE, OPEN, CSCEnv
from envs.csc_config import CSCConfig
from envs.csc_view import DecisionView
from rl_cs.data.tasks import NUM_SKILLS, TaskPool
from rl_cs.errors import require
from rl_cs.serve.snapshot import (CLOSED_TASK, Limits, RequestError, RoadMap, Snapshot, parse_body,
                                   parse_snapshot)


class SnapshotWorld(CSCEnv):
    """The CSC world of ``config`` (its scenario: road network, distance oracle, the task pool's scales), set
    to one posted snapshot per ``decide``. The episode machinery (reset, step) is not used."""

    def __init__(self, config: CSCConfig, data_dir: str | None = None, cache_dir: str | None = None):
        super().__init__({"world": config, "data_dir": data_dir, "cache_dir": cache_dir})
        self.served = self.config
        self.road = RoadMap(self.scenario.city.node_xy)

    def decide(self, snapshot: Snapshot) -> tuple[DecisionView, dict]:
        """The world at the snapshot: its decision view and the observation of each decider (idle workers
        with at least one feasible task), as ``reset``/``step`` would return them. Agent ``worker_<i>`` is the
        snapshot's worker row i. One extra task, closed, stands for the task of busy workers whose task is no
        longer open (``"task": null``), as the world keeps such tasks in its window."""
        s = snapshot
        workers, tasks = len(s.worker_ids), len(s.task_ids)
        closed = tasks  # the extra, closed task
        self.config = dataclasses.replace(self.served, num_workers=workers, num_tasks=tasks + 1)
        self.tasks = TaskPool(
            created=np.full(tasks + 1, s.time), expected=np.append(s.expected, s.time),
            deadline=np.append(s.deadline, s.time), node=np.append(s.task_node, 0), skill=np.append(s.task_skill, 0),
            quantity=np.append(s.remaining, 0.0), rho_max=np.append(s.rho_max, 0.0), zeta=self.scenario.tasks.zeta)
        self.task_xy = self.scenario.city.node_xy[self.tasks.node]
        self.status = np.full(tasks + 1, OPEN, dtype=np.int8)
        self.status[closed] = DONE
        self.remaining = self.tasks.quantity.copy()
        self.first_arrival = np.full(tasks + 1, np.nan)
        self.skills = s.skills
        self.w_node = s.worker_node.copy()
        self.w_state = s.worker_state.copy()
        self.w_task = np.where(s.worker_task == CLOSED_TASK, closed, s.worker_task)
        self.w_from_xy = s.worker_xy.copy()
        self.w_depart = np.full(workers, s.time)
        self.w_arrive = s.worker_arrival.copy()
        self.w_work = np.zeros(workers)
        self.has_acted = np.zeros(workers, dtype=bool)
        self._neighbour_slots = np.full((workers, self.config.num_near_workers), -1, dtype=np.int64)
        self._near_revenue = np.zeros(workers)
        self._decision_xy = np.full((workers, 2), np.inf)
        self._decision_time = np.zeros(workers)
        self._events = {}
        self.time, self.horizon = s.time, s.horizon
        deciders = self._find_deciders()
        return self.decision_view(), self._observe(deciders)

    def worker_xy(self) -> np.ndarray:
        """The posted positions: a snapshot says where workers are, the world does not move them there."""
        return self.w_from_xy


class Assigner:
    """A policy (a heuristic's name or a trained checkpoint folder, rl_cs.evaluation.load_actor) answering
    snapshots of the CSC world of ``world`` (and ``data_dir``). Trained policies act deterministically (their
    most likely allowed action) and every request starts the policy afresh (``reset(0)``: a heuristic's
    per-episode memory, such as PAU's order of idle workers, does not carry over from another request), so
    one snapshot always gets one answer."""

    def __init__(self, policy: str, world: CSCConfig, data_dir: str | None = None, limits: Limits = Limits(),
                 cache_dir: str | None = None):
        from rl_cs.evaluation import load_actor

        self.actor = load_actor(policy, deterministic=True, world="csc")
        self.world = SnapshotWorld(world, data_dir, cache_dir)
        trained = getattr(getattr(self.actor, "module", None), "layout", None)
        require(trained is None or trained == self.world.layout, "--config",
                f"the policy was trained on observations {trained and trained.to_dict()}, the served world gives "
                f"{self.world.layout.to_dict()}",
                "serve with the experiment's own YAML, or --set the world's num_* observation sizes to match")
        prepare = getattr(self.actor, "prepare", None)
        if prepare is not None:
            prepare(self.world)
        self.actor.reset(0)
        self.limits = limits
        self.name = self.actor.name
        self.kind = "trained" if hasattr(self.actor, "module") else "heuristic"

    @property
    def road(self) -> RoadMap:
        return self.world.road

    def assign(self, snapshot: Snapshot) -> dict:
        """{worker id (str): task id or None} for every idle worker of the snapshot, in posted order."""
        answer = {str(wid): None for wid, state in zip(snapshot.worker_ids, snapshot.worker_state) if state == IDLE}
        if not answer or not snapshot.task_ids:
            return answer
        view, obs = self.world.decide(snapshot)
        if not obs:
            return answer
        self.actor.reset(0)  # nothing carries over between requests (PAU's idle order, random's generator)
        actions = self.actor.act(view, obs)
        slots = self.world.config.num_optional_tasks
        for row, agent in enumerate(view.agents):
            slot = int(actions.get(agent, 0))
            if 0 < slot <= slots and view.option_mask[row, slot - 1]:  # the world takes anything else as tau_0
                worker, task = int(view.deciders[row]), int(view.option_task[row, slot - 1])
                answer[str(snapshot.worker_ids[worker])] = snapshot.task_ids[task]
        return answer

    def warm_up(self) -> None:
        """Answer one small made-up snapshot, so that the first real request does not pay for first-call costs
        (torch's lazy set-up: hundreds of milliseconds)."""
        one = {"time": 0.0, "workers": [{"id": "w", "location": {"node": 0}, "skills": list(range(NUM_SKILLS))}],
               "tasks": [{"id": "t", "location": {"node": 0}, "skill": 0, "expected": 60.0, "deadline": 120.0,
                          "remaining": 1.0, "rho_max": 1.0}]}
        self.assign(parse_snapshot(one, self.road, self.limits))

    def respond(self, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON answer) of a POST /assign body: 200 with the assignments, or a RequestError's
        4xx with its message."""
        try:
            snapshot = parse_body(body, self.road, self.limits)
        except RequestError as error:
            return error.status, error.to_json()
        return 200, {"assignments": self.assign(snapshot), "policy": self.name}

    def info(self) -> dict:
        """GET /health: what is served and what a request may hold."""
        c = self.world.served
        return {"status": "ok", "world": "csc", "policy": self.name, "kind": self.kind,
                "scenario": self.world.scenario.source, "map": self.road.to_json(), "skills": NUM_SKILLS,
                "range_m": c.range_m, "speed_mps": c.speed_mps, "options_per_worker": c.num_optional_tasks,
                "limits": self.limits.to_json(),
                "endpoints": {"POST /assign": "a world snapshot (JSON) -> {assignments: {worker id: task id or null}}",
                              "GET /health": "this"}}
