"""The request of `rl-cs serve` (POST /assign): one JSON snapshot of the CSC world at a decision time.

Schema (times in seconds, distances in metres in the served city's frame, work in worker-minutes)::

    {
      "time": 1830.0,                     # now; >= 0 (the world's clock starts at 0)
      "horizon": 7200.0,                  # optional: end of the planning day, for the policy's time feature
                                          # (time / horizon); default: the latest task deadline posted
      "workers": [                        # at most --max-workers (default 1000); ids unique
        {"id": "w1", "location": {"node": 17}, "skills": [0, 3]},             # idle (the default state)
        {"id": "w2", "location": {"x": 812.5, "y": 1040.0}, "skills": [5],
         "state": "travelling", "task": "t9", "arrival": 1900.0},              # busy: heading to task t9
        {"id": "w3", "location": {"node": 42}, "skills": [1, 2, 7],
         "state": "working", "task": "t4", "arrival": 1700.0}                  # busy: on site at t4
      ],
      "tasks": [                          # the OPEN tasks; at most --max-tasks (default 5000); ids unique
        {"id": "t4", "location": {"node": 42}, "skill": 2, "expected": 2100.0, "deadline": 3300.0,
         "remaining": 6.5, "rho_max": 14.2}
      ]
    }

- ``id``: a string or an integer; answers use it (as a JSON object key: its string form, so ``1`` and ``"1"``
  are the same id).
- ``location``: ``{"node": n}``, a node of the served road network (0 .. nodes-1, as in the world's scenario),
  or ``{"x": .., "y": ..}``, metres in the city's projected frame (``GET /health`` gives its extent), or both.
  Road distances (feasibility, option order) run between nodes: coordinates alone mean the nearest node. A
  task stands at its node. A worker's coordinates are its position (what other workers see of it: a
  travelling worker is somewhere on its way); without them it stands at its node. Coordinates farther than
  MAP_MARGIN_M outside the network's bounding box are off the map and refused.
- ``skills`` (worker): the skills it has, indices 0..7 (rl_cs.data.tasks.NUM_SKILLS); ``skill`` (task): the
  one skill the task needs.
- ``state`` (worker): ``idle`` (default), ``travelling`` or ``working``. Only idle workers are assigned; busy
  ones are part of the picture the world shows each idle worker (nearby workers, crowding of tasks) and
  need ``task`` (the id of the posted task they are committed to, or null when that task is no longer open)
  and optionally ``arrival`` (when they arrive / arrived there; default ``time``).
- ``expected`` (t_e, full payment until then), ``deadline`` (t_d, nothing paid from then; must be after
  ``time``: an expired task is not open), ``remaining`` (work still to do, > 0), ``rho_max`` (full payment, >= 0).

The order of workers and of tasks matters only where distances tie exactly: ties go to the earlier one, as
the world's own index order breaks them (a snapshot exported by ``snapshot_of`` keeps that order).

Every field is checked; unknown fields are refused (a typo would otherwise be ignored). A bad request is a
``RequestError``: HTTP status 400 (malformed JSON, missing field, wrong type, NaN or infinity, unknown skill
or node, off the map, duplicate id, ...) or 413 (body over --max-body-kb, more workers or tasks than the
limits), with a message naming the field (``workers[3].skills[1]``) and the fix.

The answer is ``{"assignments": {worker id: task id or null, ...}, "policy": name}`` with one entry per idle
worker: the task the policy sends it to, or null (wait: the policy chose no task, or no open task is feasible
for it: skill match, within the world's range_m by road, reachable before t_d).

``snapshot_of(env)`` exports a running CSCEnv's current decision step as such a request (tests, benchmarks,
replaying a recorded episode against a service).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from rl_cs.data.tasks import NUM_SKILLS
from rl_cs.errors import InputError, closest

IDLE, TRAVELLING, WORKING = 0, 1, 2  # envs.csc's worker states (checked equal in tests/test_serve.py)
STATES = {"idle": IDLE, "travelling": TRAVELLING, "working": WORKING}
CLOSED_TASK = -2
"""``Snapshot.worker_task`` of a busy worker whose task is no longer open (``"task": null``)."""
MAP_MARGIN_M = 500.0
"""How far outside the road network's bounding box a coordinate may lie before it is off the map."""
MAX_ID_CHARS = 200

TOP_FIELDS = ("time", "horizon", "workers", "tasks")
WORKER_FIELDS = ("id", "location", "skills", "state", "task", "arrival")
TASK_FIELDS = ("id", "location", "skill", "expected", "deadline", "remaining", "rho_max")


class RequestError(InputError):
    """A bad request: the field, what is wrong, how to fix it, and the HTTP status (400 or 413)."""

    def __init__(self, where: str, problem: str, fix: str = "", status: int = 400):
        super().__init__(where, problem, fix)
        self.status = status

    def __reduce__(self):
        return type(self), (self.where, self.problem, self.fix, self.status)

    def to_json(self) -> dict:
        return {"error": str(self), "field": self.where, "problem": self.problem, "fix": self.fix}


@dataclass(frozen=True)
class Limits:
    """What one request may hold; each is a `rl-cs serve` flag."""

    max_workers: int = 1000
    max_tasks: int = 5000
    max_body_bytes: int = 2 * 1024 * 1024

    def to_json(self) -> dict:
        return {"max_workers": self.max_workers, "max_tasks": self.max_tasks, "max_body_bytes": self.max_body_bytes}


class RoadMap:
    """The served road network as locations need it: its nodes, their extent, nearest-node snapping."""

    def __init__(self, node_xy: np.ndarray):
        self.node_xy = np.asarray(node_xy, dtype=np.float64)
        self.low, self.high = self.node_xy.min(axis=0), self.node_xy.max(axis=0)
        self._tree = cKDTree(self.node_xy)

    @property
    def num_nodes(self) -> int:
        return len(self.node_xy)

    def snap(self, xy: tuple[float, float]) -> int:
        return int(self._tree.query(np.asarray(xy, dtype=np.float64))[1])

    def to_json(self) -> dict:
        return {"nodes": self.num_nodes, "x": [float(self.low[0]), float(self.high[0])],
                "y": [float(self.low[1]), float(self.high[1])], "margin_m": MAP_MARGIN_M}


@dataclass(frozen=True)
class Snapshot:
    """A validated request as arrays: workers and tasks in posted order (their order breaks distance ties,
    as the world's index order does)."""

    time: float
    horizon: float
    worker_ids: list
    worker_node: np.ndarray
    """(W,) road node an idle worker's road distances start from (the posted node, else the nearest one)."""
    worker_xy: np.ndarray
    """(W, 2) current position, metres (the posted coordinates, else its node's)."""
    worker_state: np.ndarray
    """(W,) IDLE, TRAVELLING or WORKING."""
    worker_task: np.ndarray
    """(W,) row of the busy worker's task in ``task_*``, CLOSED_TASK if it is no longer open, -1 when idle."""
    worker_arrival: np.ndarray
    skills: np.ndarray
    """(W, NUM_SKILLS) bool."""
    task_ids: list
    task_node: np.ndarray
    task_skill: np.ndarray
    expected: np.ndarray
    deadline: np.ndarray
    remaining: np.ndarray
    rho_max: np.ndarray


# ------------------------------------------------------------------------------------------------ parsing
def parse_body(body: bytes, road: RoadMap, limits: Limits = Limits()) -> Snapshot:
    """The snapshot in a request body (bytes of JSON), or a RequestError naming what is wrong."""
    if len(body) > limits.max_body_bytes:
        raise too_large(len(body), limits)
    if not body.strip():
        raise RequestError("body", "empty request body", "POST a JSON object with time, workers and tasks")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError("body", f"not UTF-8 text (byte {error.start})", "send the snapshot as UTF-8 JSON") from None
    try:
        data = json.loads(text)  # NaN / Infinity parse here and are refused below, naming their field
    except json.JSONDecodeError as error:
        raise RequestError("body", f"malformed JSON ({error.msg} at line {error.lineno} column {error.colno})",
                           "send one JSON object; check quotes, commas and brackets") from None
    except RecursionError:
        raise RequestError("body", "malformed JSON (nested too deeply)", "send the documented flat schema") from None
    return parse_snapshot(data, road, limits)


def too_large(size: int, limits: Limits) -> RequestError:
    return RequestError("body", f"{size:,} bytes is over this service's limit of {limits.max_body_bytes:,}",
                        "send fewer workers and tasks per request, or start the service with a larger --max-body-kb",
                        status=413)


def parse_snapshot(data, road: RoadMap, limits: Limits = Limits()) -> Snapshot:
    """Validate a decoded request (see the module docstring) against the served road network."""
    _object(data, "body", TOP_FIELDS, required=("time", "workers", "tasks"), noun="request")
    time = _number(data["time"], "time")
    if time < 0:
        raise RequestError("time", f"must be >= 0 seconds, got {time}", "the world's clock starts at 0")
    workers, tasks = data["workers"], data["tasks"]
    for name, items, cap, flag in (("workers", workers, limits.max_workers, "--max-workers"),
                                   ("tasks", tasks, limits.max_tasks, "--max-tasks")):
        if not isinstance(items, list):
            raise RequestError(name, f"expected a list of {name}, got {_kind(items)}", f"e.g. \"{name}\": [...]")
        if len(items) > cap:
            raise RequestError(name, f"{len(items):,} {name} is over this service's limit of {cap:,}",
                               f"split the snapshot into several requests, or start the service with a larger {flag}",
                               status=413)

    task_ids, task_row = _ids(tasks, "tasks")
    columns = {name: [] for name in ("node", "skill", "expected", "deadline", "remaining", "rho_max")}
    for row, task in enumerate(tasks):
        where = f"tasks[{row}]"
        _object(task, where, TASK_FIELDS, required=TASK_FIELDS, noun="task")
        columns["node"].append(_location(task["location"], f"{where}.location", road)[0])  # a task is at its node
        columns["skill"].append(_skill(task["skill"], f"{where}.skill"))
        values = {name: _number(task[name], f"{where}.{name}") for name in ("expected", "deadline", "remaining",
                                                                             "rho_max")}
        if values["deadline"] <= time:
            raise RequestError(f"{where}.deadline", f"{values['deadline']} is not after time {time}: the task has "
                               "expired and is not open", "leave expired tasks out of the snapshot")
        if values["expected"] > values["deadline"]:
            raise RequestError(f"{where}.expected", f"t_e {values['expected']} is after the deadline t_d "
                               f"{values['deadline']}", "expected must be <= deadline")
        if values["remaining"] <= 0:
            raise RequestError(f"{where}.remaining", f"must be > 0 worker-minutes, got {values['remaining']}",
                               "a finished task is not open: leave it out")
        if values["rho_max"] < 0:
            raise RequestError(f"{where}.rho_max", f"must be >= 0, got {values['rho_max']}")
        for name, value in values.items():
            columns[name].append(value)

    worker_ids, _ = _ids(workers, "workers")
    node, xy, state, held, arrival = [], [], [], [], []
    skills = np.zeros((len(workers), NUM_SKILLS), dtype=bool)
    for row, worker in enumerate(workers):
        where = f"workers[{row}]"
        _object(worker, where, WORKER_FIELDS, required=("id", "location", "skills"), noun="worker")
        kind = worker.get("state", "idle")
        if kind not in STATES:
            raise RequestError(f"{where}.state", f"unknown state {_show(kind)}",
                               closest(str(kind), STATES) if isinstance(kind, str) else f"valid: {', '.join(STATES)}")
        code = STATES[kind]
        at_node, position = _location(worker["location"], f"{where}.location", road)
        node.append(at_node)
        xy.append(position)
        state.append(code)
        if not isinstance(worker["skills"], list):
            raise RequestError(f"{where}.skills", f"expected a list of skill indices, got {_kind(worker['skills'])}",
                               f"e.g. \"skills\": [0, 3] (skills are 0..{NUM_SKILLS - 1})")
        for index, skill in enumerate(worker["skills"]):
            skills[row, _skill(skill, f"{where}.skills[{index}]")] = True
        if code == IDLE:
            if worker.get("task") is not None or "arrival" in worker:
                field = "task" if worker.get("task") is not None else "arrival"
                raise RequestError(f"{where}.{field}", "an idle worker has no task and no arrival",
                                   "leave them out, or give the worker's state (travelling or working)")
            held.append(-1)
            arrival.append(time)
            continue
        if "task" not in worker:
            raise RequestError(f"{where}.task", f"missing: a {kind} worker needs the id of its task",
                               "give the task's id, or null if that task is no longer open")
        task = worker["task"]
        if task is None:
            held.append(CLOSED_TASK)
        else:
            key = _id_key(task, f"{where}.task")
            if key not in task_row:
                raise RequestError(f"{where}.task", f"no posted task has id {_show(task)}",
                                   "give the id of one of the posted (open) tasks, or null if its task is no longer "
                                   "open")
            held.append(task_row[key])
        arrival.append(_number(worker["arrival"], f"{where}.arrival") if "arrival" in worker else time)

    if "horizon" in data:
        horizon = _number(data["horizon"], "horizon")
        if horizon <= 0:
            raise RequestError("horizon", f"must be > 0 seconds, got {horizon}",
                               "leave it out to use the latest deadline")
    else:
        horizon = max(columns["deadline"], default=max(time, 1.0))
    return Snapshot(
        time=time, horizon=horizon, worker_ids=worker_ids, worker_node=np.array(node, dtype=np.int64),
        worker_xy=np.array(xy, dtype=np.float64).reshape(-1, 2), worker_state=np.array(state, dtype=np.int8),
        worker_task=np.array(held, dtype=np.int64), worker_arrival=np.array(arrival, dtype=np.float64), skills=skills,
        task_ids=task_ids, task_node=np.array(columns["node"], dtype=np.int64),
        task_skill=np.array(columns["skill"], dtype=np.int64),
        **{name: np.array(columns[name], dtype=np.float64)
           for name in ("expected", "deadline", "remaining", "rho_max")})


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value, where: str, fields: tuple[str, ...], required: tuple[str, ...], noun: str) -> None:
    if not isinstance(value, dict):
        raise RequestError(where, f"expected a JSON object, got {_kind(value)}",
                           "see the schema: GET /health, or the README's 'Serving a policy'")
    prefix = "" if where == "body" else f"{where}."
    for key in value:
        if key not in fields:
            raise RequestError(f"{prefix}{key}", "unknown field", closest(str(key), fields))
    for key in required:
        if key not in value:
            raise RequestError(f"{prefix}{key}", "missing", f"every {noun} needs: {', '.join(required)}")


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(where, f"expected a number, got {_kind(value)} {_show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise RequestError(where, f"must be a finite number, got {value}", "NaN and infinities are not allowed")
    return value


def _integer(value, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(where, f"expected {what} (an integer), got {_kind(value)} {_show(value)}")
    return value


def _skill(value, where: str) -> int:
    skill = _integer(value, where, "a skill index")
    if not 0 <= skill < NUM_SKILLS:
        raise RequestError(where, f"unknown skill {skill}", f"skills are 0..{NUM_SKILLS - 1}")
    return skill


def _location(value, where: str, road: RoadMap) -> tuple[int, tuple[float, float]]:
    """(road node, position) of a location object: ``{"node"}`` (at the node), ``{"x", "y"}`` (there, nearest
    node) or all three (there, at that node)."""
    if not isinstance(value, dict) or not value:
        raise RequestError(where, f"expected {{\"node\": n}} or {{\"x\": .., \"y\": ..}}, got {_kind(value)}")
    keys = set(value)
    extra = sorted(keys - {"node", "x", "y"})
    if extra:
        raise RequestError(f"{where}.{extra[0]}", "unknown field",
                           "a location is {\"node\": n} or {\"x\": .., \"y\": ..}")
    if keys not in ({"node"}, {"x", "y"}, {"node", "x", "y"}):
        raise RequestError(where, f"has only {', '.join(sorted(keys))}",
                           "give {\"node\": n} or {\"x\": .., \"y\": ..} (both x and y)")
    node = None
    if "node" in value:
        node = _integer(value["node"], f"{where}.node", "a road node")
        if not 0 <= node < road.num_nodes:
            raise RequestError(f"{where}.node", f"unknown node {node}: the served road network has nodes "
                               f"0..{road.num_nodes - 1}", "give a node of the served city, or x/y coordinates")
    if "x" not in value:
        return node, (float(road.node_xy[node, 0]), float(road.node_xy[node, 1]))
    x, y = _number(value["x"], f"{where}.x"), _number(value["y"], f"{where}.y")
    low, high = road.low - MAP_MARGIN_M, road.high + MAP_MARGIN_M
    if not (low[0] <= x <= high[0] and low[1] <= y <= high[1]):
        raise RequestError(where, f"({x:g}, {y:g}) is off the map: the road network spans x "
                           f"{road.low[0]:.0f}..{road.high[0]:.0f}, y {road.low[1]:.0f}..{road.high[1]:.0f} metres",
                           "give coordinates in the served city's frame (GET /health shows its extent)")
    return (road.snap((x, y)) if node is None else node), (x, y)


def _id_key(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestError(where, f"expected an id (a string or an integer), got {_kind(value)} {_show(value)}")
    key = str(value)
    if not key or len(key) > MAX_ID_CHARS:
        raise RequestError(where, f"an id must have 1..{MAX_ID_CHARS} characters, got {len(key)}")
    return key


def _ids(items: list, name: str) -> tuple[list, dict[str, int]]:
    """The ids of ``items`` (as given) and the row of each (by its string form); duplicates refused."""
    ids, row_of = [], {}
    for row, item in enumerate(items):
        where = f"{name}[{row}]"
        if not isinstance(item, dict):
            raise RequestError(where, f"expected a JSON object, got {_kind(item)}",
                               "see the schema: GET /health, or the README's 'Serving a policy'")
        if "id" not in item:
            raise RequestError(f"{where}.id", "missing", f"every entry of {name} needs a unique id")
        key = _id_key(item["id"], f"{where}.id")
        if key in row_of:
            raise RequestError(f"{where}.id", f"duplicate id {_show(item['id'])} (also {name}[{row_of[key]}])",
                               f"ids must be unique within {name}")
        row_of[key] = row
        ids.append(item["id"])
    return ids, row_of


# ------------------------------------------------------------------------------------------------ export
def snapshot_of(env, worker_ids=None, task_ids=None) -> dict:
    """The current decision step of a CSCEnv (after ``reset`` or ``step``) as a request: every worker in the
    world's order (ids ``worker_<i>`` unless given), the open tasks in the world's order (ids: their index in
    the episode's task window unless given), the time and the episode's horizon. Posting it makes the service
    see exactly what the world's deciders saw."""
    from envs.csc import IDLE as ENV_IDLE, OPEN, TRAVELLING as ENV_TRAVELLING

    worker_ids = worker_ids or [f"worker_{i}" for i in range(env.config.num_workers)]
    task_ids = task_ids or list(range(env.config.num_tasks))
    open_tasks = np.flatnonzero(env.status == OPEN)
    tasks = [{"id": task_ids[t], "location": {"node": int(env.tasks.node[t])}, "skill": int(env.tasks.skill[t]),
              "expected": float(env.tasks.expected[t]), "deadline": float(env.tasks.deadline[t]),
              "remaining": float(env.remaining[t]), "rho_max": float(env.tasks.rho_max[t])} for t in open_tasks]
    positions = env.worker_xy()
    names = {code: name for name, code in STATES.items()}
    workers = []
    for w in range(env.config.num_workers):
        entry = {"id": worker_ids[w], "skills": np.flatnonzero(env.skills[w]).tolist()}
        state = int(env.w_state[w])
        entry["location"] = {"x": float(positions[w, 0]), "y": float(positions[w, 1])}  # the world's own position
        if state != ENV_TRAVELLING:  # (of an idle or working worker: its node, up to rounding) and its node
            entry["location"] = {"node": int(env.w_node[w]), **entry["location"]}
        if state != ENV_IDLE:
            task = int(env.w_task[w])
            entry.update(state=names[state], arrival=float(env.w_arrive[w]),
                         task=task_ids[task] if env.status[task] == OPEN else None)
        workers.append(entry)
    return {"time": float(env.time), "horizon": float(env.horizon), "workers": workers, "tasks": tasks}
