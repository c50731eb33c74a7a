"""The dependency-aware spatial crowdsourcing (DASC) world of RMO (paper 001) as an RLlib MultiAgentEnv.

**Data.** The city, distance oracle, worker model and task stream of the CSC world (rl_cs.data: the seeded
synthetic city by default, real Chengdu with ``data_dir``). An episode takes ``num_tasks`` consecutive
requests of the stream; each becomes a task q = (T, C, t_c, t_e, t_d, rho) (Problem Definition):

- T, C: a random seeded DAG of |T| ~ U{6..16} subtasks (envs.dasc_dag.random_dag);
- t_c: the request's creation time; each subtask lies near the request's pick-up (Gaussian offset of
  ``subtask_spread_m``, snapped to a road node), needs |K^tau| skills of 10 categories (count from the
  right-skewed normal mu 1.5, var 0.5, skew 10; categories uniform) and works ``duration`` seconds on site;
- t_e, t_d: by the critical path method (envs.dasc_dag.task_times): t_e = t_c + 1.3 CP, t_d = t_c + 2.5 CP
  where each activity weighs its duration plus ``cpm_travel_s``; a subtask's t_e^tau, t_d^tau are its
  latest finish times against t_e and t_d;
- rho = |T| x the request's fare (the CSC tariff, rl_cs.data.tasks.TaskRules): each subtask is worth about
  one ride. Workers start at request pick-ups; |K^w| ~ N(3.5, 1) rounded, clipped to [1, 10].

**Rules (enforced by the world).** A subtask is done by exactly one worker holding all its skills (skill
constraint), within L^w = 5 km by road, finishing strictly before t_d^tau (deadline constraint); it becomes
*ready* only when all its predecessors have finished (order constraint) and starts when its worker arrives.
A worker travels at 10 m/s, works the duration, and is then idle at the subtask's node. Profit of a task
completed at t_f (Eq. 1): (1 - zeta dt) rho - kappa x (metres its workers travelled), dt = max(0, t_f - t_e)
in **minutes** (zeta = 0.02 per minute: the paper leaves the unit open, and per second the payment would
vanish 50 s after t_e), kappa = 1e-3 per metre (Table 1's 1e-3 "per kilometre" would make travel free
next to rho; the paper's code charges 1e-4 per metre). A task *expires* when a ready subtask can no longer
finish before its t_d^tau even with a worker on the spot; its unassigned subtasks then fail, committed
workers finish their subtask, and the platform has paid their travel: the task's realised profit is
-kappa x that travel (Eq. 1 with nothing paid).

**Agents.** Agent ``subtask_<task>_<k>`` is subtask k of a task; ``possible_agents`` lists every id the
config allows (num_tasks x |T|_max). A subtask appears (is observed) at a decision step when it is ready,
unassigned and has at least one feasible idle worker; action 1 recommends it, 0 not. It leaves with
``terminated`` and a last observation when its subtask finishes (after a match) or fails (its task expired);
a subtask that never appeared leaves silently. No id comes back; ``__all__`` is sent every step.

**Decision intervals** (the CSC world's design, for RLlib's speed): simulated time advances by
``decision_interval_s``; events inside an interval (finishes, arrivals, readiness, expiry) are processed in
order and every decider of the interval's end acts in one env step. Intervals without deciders are skipped
inside one ``step`` call.

**Early matching** (opt-in, ``ready_when: assigned``, as the paper's public code): a subtask becomes ready
once every predecessor is assigned; its worker starts once the last of them finishes (known from their
matches), so feasibility, expiry and the finish time use start = max(arrival, predecessors' finish).

**Matching** each step (envs.dasc_matching): Kuhn-Munkres (``scipy.optimize.linear_sum_assignment``,
maximising) between the recommended subtasks and the idle workers on u = v1 u_skill + v2 u_dist + v3 u_time
(Eq. 9-12) with v from eta = {alpha, beta} (Eq. 13), held by the env and changed with ``set_eta``.
Infeasible pairs are never matched. With ``matching: greedy`` (REC) the recommended subtasks, in the order they
became ready, each take their nearest free feasible worker instead; ``set_matching`` switches the rule (a
trained REC policy brings its own). A planner may choose the matching itself: the action dict may hold
``PLANNER_ASSIGNMENT: {agent: worker index}``; then that assignment replaces Kuhn-Munkres for the step,
each pair checked against the same rules (a pair that breaks one, names a subtask not recommended, or
reuses a subtask or worker is refused and counted in ``invalid_actions``).

**Rewards**, both always computed (infos carry ``sparse`` and ``shaped`` for each observed agent; the reward
dict carries ``config.reward``'s), paid to a subtask agent in its next observation:

- sparse (the paper's first MDP): the task's realised profit (Eq. 1) to the subtask whose finish completes
  the task (its final subtask), when it finishes; -1 to a recommended subtask that finds no worker;
  otherwise 0.
- shaped (Eq. 3): a matched subtask finishing at t_tau earns rho_max / |T| - kappa d^M if t_tau <= t_e^tau,
  rho_min / |T| - kappa d^M if t_e^tau < t_tau < t_d^tau, else 0 (never, as the world refuses such a match),
  with rho_min = (1 - zeta (t_d - t_e)) rho, paid when it finishes; -1 to a recommended subtask that finds
  no worker; otherwise 0.

A matched subtask's infos (from the observation after its match on) also carry ``utility``: the [u_skill,
u_dist, u_time] of its pair (Eq. 9-11), which RMO's eta meta-gradient differentiates (Eq. 15).

Declining (action 0) earns exactly 0 in both signals, however often a subtask declines: no signal pays a
subtask for waiting (DESIGN.md, "Rewards in event-driven worlds").
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.csc_observation import nearest_rows
from envs.csc_view import frozen
from envs.dasc_config import MATCHING_RULES, DASCConfig
from envs.dasc_dag import descendants, random_dag, random_skill_sets, subtask_skill_counts, task_times
from envs.dasc_matching import (distance_utility, feasible_pairs, greedy_matching, kuhn_munkres, skill_utility,
                                time_utility, utility)
from envs.dasc_observation import TIME_SCALE_S, DASCObsLayout
from envs.dasc_view import DASCDecisionView
from rl_cs.config import from_dict, to_dict
from rl_cs.data.scenario import Scenario, load_scenario
from rl_cs.errors import closest, require

PLANNER_ASSIGNMENT = "__assignment__"
"""Key of the action dict under which a planner submits its own matching: ``{agent id: worker index}``."""
FUTURE, WAITING, READY, ASSIGNED, FINISHED, FAILED = range(6)
"""Subtask status: task not yet created; waiting for predecessors; ready; matched (travelling or working);
finished; failed (its task expired first)."""
TASK_FUTURE, TASK_OPEN, TASK_DONE, TASK_EXPIRED = range(4)
STATE_BASE = 9
"""Global state (``global_state()``): time (/max_episode_s); idle workers, ready, assigned and finished
subtasks (shares); open, done and expired tasks (shares); revenue / max payable; then per skill category the
idle workers having it (/N_w) and the ready subtasks needing it (/ready subtasks)."""


@lru_cache(maxsize=4)
def _scenario(data_dir: str | None, cache_dir: str | None, key: tuple) -> Scenario:
    config = DASCConfig(**dict(key))
    return load_scenario(data_dir, config.rules, config.city, config.synthetic_tasks,
                         Path(cache_dir) if cache_dir else None)


def scenario_for(config: DASCConfig, data_dir: str | None, cache_dir: str | None = None) -> Scenario:
    """The scenario (city + task stream, shared with the CSC world), loaded once per process."""
    key = (("rules", config.rules), ("city", config.city), ("synthetic_tasks", config.synthetic_tasks))
    return _scenario(str(data_dir) if data_dir else None, cache_dir, key)


def agent_id(task: int, position: int) -> str:
    return f"subtask_{task}_{position}"


@dataclass
class EpisodeStats:
    revenue: float = 0.0
    completed: int = 0
    expired: int = 0
    lateness_s: float = 0.0
    travel_m: float = 0.0
    matched: int = 0
    recommendations: int = 0
    failed_recommendations: int = 0
    decisions: int = 0
    invalid_actions: int = 0
    matching_steps: int = 0
    matching_s: float = 0.0
    matching_sizes: list = field(default_factory=list)
    log: list = field(default_factory=list)


class DASCEnv(MultiAgentEnv):
    """env_config: ``{"world": DASCConfig or dict, "data_dir": folder or None, "cache_dir": folder or None,
    "global_state": bool (default False: put ``global_state()`` in every observed agent's infos)}``."""

    metadata = {"render_modes": []}

    def __init__(self, env_config: dict | None = None):
        super().__init__()
        env_config = dict(env_config or {})
        self.config: DASCConfig = from_dict(DASCConfig, env_config.get("world"), "world").validate()
        self.scenario = scenario_for(self.config, env_config.get("data_dir"), env_config.get("cache_dir"))
        c = self.config
        require(len(self.scenario.tasks) >= c.num_tasks, "world.num_tasks",
                f"{c.num_tasks} tasks asked but the scenario has only {len(self.scenario.tasks)}",
                "lower num_tasks or use a larger task stream")
        self.layout = DASCObsLayout(c.num_skill_categories, c.max_subtasks, c.num_near_workers, c.num_near_subtasks)
        self._obs_size = self.layout.size
        m = c.max_subtasks
        self.possible_agents = [agent_id(q, k) for q in range(c.num_tasks) for k in range(m)]
        self._index_of = {agent: index for index, agent in enumerate(self.possible_agents)}
        self.agents = []
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self._obs_size,), np.float32)
        act_space = gym.spaces.Discrete(2)
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        city = self.scenario.city
        self._low, self._high = city.node_xy.min(axis=0), city.node_xy.max(axis=0)
        self._extent = np.maximum(self._high - self._low, 1.0)
        self._rho_scale = float(self.scenario.tasks.rho_max.mean())
        self._bits = np.int64(1) << np.arange(c.num_skill_categories, dtype=np.int64)
        self.alpha, self.beta = float(c.alpha), float(c.beta)
        self.matching = c.matching
        self._rng = np.random.default_rng(env_config.get("seed"))
        self._global_state = bool(env_config.get("global_state", False))

    # ------------------------------------------------------------------ eta (Eq. 13)
    def set_eta(self, alpha: float, beta: float) -> None:
        """Set the matching utility's eta = {alpha, beta} (Eq. 13), each in [0, 1] (InputError otherwise);
        a learner syncs its meta-learned eta to the env runners through this."""
        for name, value in (("alpha", alpha), ("beta", beta)):
            require(np.isfinite(value) and 0.0 <= float(value) <= 1.0, f"eta.{name}",
                    f"must be in [0, 1] (Eq. 13), got {value}")
        self.alpha, self.beta = float(alpha), float(beta)

    @property
    def eta(self) -> tuple[float, float]:
        return self.alpha, self.beta

    def set_matching(self, rule: str) -> None:
        """The matching stage's rule (world.matching): ``km`` or ``greedy`` (InputError otherwise)."""
        require(rule in MATCHING_RULES, "matching", f"unknown matching rule '{rule}'", closest(str(rule), MATCHING_RULES))
        self.matching = rule

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._generate(self._rng)
        self.stats = EpisodeStats()
        self.time = 0.0
        self._open_tasks(0.0)
        self._update_ready()
        deciders, _ = self._advance_until_decision(first=True)
        obs, rewards, infos = self._emit(deciders, np.zeros(0, dtype=np.int64))
        self.agents = list(obs)
        return obs, infos

    def _generate(self, rng: np.random.Generator) -> None:
        """The episode's tasks (DAGs, subtasks, times, payments) and workers, all from ``rng``."""
        c, pool, city = self.config, self.scenario.tasks, self.scenario.city
        q_count, m = c.num_tasks, c.max_subtasks
        start = int(rng.integers(0, len(pool) - q_count + 1))
        window = pool.window(start, q_count)
        self.created = window.created.astype(np.float64)
        sizes = rng.integers(c.min_subtasks, c.max_subtasks + 1, q_count)
        self.size = sizes
        self.adjacency = np.zeros((q_count, m, m), dtype=bool)
        for q in range(q_count):
            self.adjacency[q, :sizes[q], :sizes[q]] = random_dag(int(sizes[q]), c.edge_probability, rng)
        valid = np.arange(m)[None, :] < sizes[:, None]
        self.valid = valid.ravel()
        count = int(sizes.sum())
        task_of = np.repeat(np.arange(q_count), m)
        anchor = city.node_xy[window.node][task_of[self.valid]]
        xy = np.clip(anchor + rng.normal(0.0, c.subtask_spread_m, (count, 2)), self._low, self._high)
        nodes, _ = city.snap(xy)
        skill_counts = subtask_skill_counts(count, c.subtask_skills_mean, c.subtask_skills_var,
                                            c.subtask_skills_skew, int(c.skills_per_subtask[0]),
                                            int(c.skills_per_subtask[1]), rng)
        skills = random_skill_sets(skill_counts, c.num_skill_categories, rng)
        duration = rng.uniform(c.duration_s[0], c.duration_s[1], count)
        s_count = q_count * m
        self.task_of = task_of
        self.position = np.tile(np.arange(m), q_count)
        self.sub_node = np.zeros(s_count, dtype=np.int64)
        self.sub_node[self.valid] = nodes
        self.sub_xy = city.node_xy[self.sub_node]
        self.sub_skills = np.zeros((s_count, c.num_skill_categories), dtype=bool)
        self.sub_skills[self.valid] = skills
        self.sub_mask = self.sub_skills.astype(np.int64) @ self._bits
        self.sub_count = self.sub_skills.sum(axis=1)
        self.duration = np.zeros(s_count)
        self.duration[self.valid] = duration
        self.sub_expected = np.zeros(s_count)
        self.sub_deadline = np.zeros(s_count)
        self.descendants = np.zeros(s_count, dtype=np.int64)
        self.expected = np.zeros(q_count)
        self.deadline = np.zeros(q_count)
        for q in range(q_count):
            n, rows = int(sizes[q]), slice(q * m, q * m + int(sizes[q]))
            adj = self.adjacency[q, :n, :n]
            self.expected[q], self.deadline[q], self.sub_expected[rows], self.sub_deadline[rows], _ = task_times(
                adj, self.duration[rows], self.created[q], c.cpm_travel_s, c.expected_factor, c.deadline_factor)
            self.descendants[rows] = descendants(adj, np.arange(n))  # nodes are numbered in a topological order
        self.rho = window.rho_max * sizes
        late_factor = np.maximum(0.0, 1.0 - c.zeta * (self.deadline - self.expected) / 60.0)
        self.share_on_time = (self.rho / sizes)[task_of]
        self.share_late = (self.rho * late_factor / sizes)[task_of]
        # workers: CSC's model (start at request pick-ups), with the paper's skill counts
        n_w = c.num_workers
        self.w_node = rng.choice(pool.node, size=n_w)
        counts = np.clip(np.rint(rng.normal(c.worker_skills_mean, c.worker_skills_std, n_w)), 1,
                         c.num_skill_categories).astype(np.int64)
        self.w_skills = random_skill_sets(counts, c.num_skill_categories, rng)
        self.w_mask = self.w_skills.astype(np.int64) @ self._bits
        self.w_count = self.w_skills.sum(axis=1)
        self.w_free_at = np.zeros(n_w)
        # dynamic state
        self.status = np.full(s_count, FUTURE, dtype=np.int8)
        self.task_status = np.full(q_count, TASK_FUTURE, dtype=np.int8)
        self.ready_at = np.full(s_count, np.nan)
        self.worker = np.full(s_count, -1, dtype=np.int64)
        self.matched_at = np.full(s_count, np.nan)
        self.arrival = np.full(s_count, np.nan)
        self.finish = np.full(s_count, np.nan)
        self.sub_travel = np.zeros(s_count)
        self.match_utility = np.zeros((s_count, 3))
        self.shaped_value = np.zeros(s_count)
        self.fails = np.zeros(s_count, dtype=np.int64)
        self.seen = np.zeros(s_count, dtype=bool)
        self.left = np.zeros(s_count, dtype=bool)
        self.pending = {"sparse": np.zeros(s_count), "shaped": np.zeros(s_count)}
        self.task_travel = np.zeros(q_count)
        self.task_finish = np.full(q_count, np.nan)
        self.task_profit = np.full(q_count, np.nan)
        self.task_closed_at = np.full(q_count, np.nan)
        self._empty_decision()

    # ------------------------------------------------------------------ stepping
    def step(self, action_dict: dict):
        action_dict = dict(action_dict)
        assignment = action_dict.pop(PLANNER_ASSIGNMENT, None)
        recommended = []
        for agent, action in action_dict.items():
            row = self._decider_row.get(agent)
            if row is None:
                continue  # not deciding now (RLlib sends only observed agents; a planner may send more)
            self.stats.decisions += 1
            try:
                choice = int(action)
            except (TypeError, ValueError):
                choice = -1
            if choice not in (0, 1):
                self.stats.invalid_actions += 1
                continue
            if choice == 1:
                recommended.append(row)
        self._match(np.array(sorted(recommended), dtype=np.int64), assignment)
        deciders, over = self._advance_until_decision()
        truncated = not over and self.time >= self.config.max_episode_s
        leaving = np.flatnonzero(self.seen & ~self.left & ((self.status == FINISHED) | (self.status == FAILED)))
        if truncated:  # a last observation of every agent still in the episode (RLlib bootstraps from it)
            leaving = np.flatnonzero(self.seen & ~self.left)
            deciders = np.zeros(0, dtype=np.int64)
        obs, rewards, infos = self._emit(deciders, leaving)
        terminateds = {"__all__": over}
        truncateds = {"__all__": truncated}
        for index in leaving:
            (truncateds if truncated else terminateds)[self.possible_agents[index]] = True
        self.agents = [agent for agent in obs if not (terminateds.get(agent) or truncateds.get(agent))]
        return obs, rewards, terminateds, truncateds, infos

    def _match(self, rows: np.ndarray, assignment) -> None:
        """Bind recommended decider ``rows`` to idle workers (Kuhn-Munkres on u(eta), or a planner's pairs);
        recommended subtasks left without a worker get -1 in both signals."""
        c, stats = self.config, self.stats
        stats.recommendations += len(rows)
        pairs: list[tuple[int, int]] = []
        if assignment is None:
            if len(rows):
                started = clock.perf_counter()
                if self.matching == "greedy":  # REC: in the order they became ready, nearest free worker first
                    order = np.lexsort((np.arange(len(rows)), self.ready_at[self._deciders[rows]]))
                    r, cols = greedy_matching(self._road[rows], self._feasible[rows], order)
                else:
                    weights = utility(self._u_skill[rows], self._u_dist[rows], self._u_time[rows], self.alpha,
                                      self.beta)
                    r, cols = kuhn_munkres(weights, self._feasible[rows], c.max_cardinality)
                stats.matching_s += clock.perf_counter() - started
                stats.matching_steps += 1
                stats.matching_sizes.append((len(rows), len(self._idle)))
                pairs = list(zip(rows[r].tolist(), cols.tolist()))
        else:
            pairs = self._planner_pairs(rows, assignment)
        matched_rows = set()
        for row, col in pairs:
            self._assign(row, col)
            matched_rows.add(row)
        for row in rows.tolist():
            if row not in matched_rows:
                subtask = self._deciders[row]
                self.pending["sparse"][subtask] -= 1.0
                self.pending["shaped"][subtask] -= 1.0
                self.fails[subtask] += 1
                stats.failed_recommendations += 1

    def _planner_pairs(self, rows: np.ndarray, assignment) -> list[tuple[int, int]]:
        """A planner's ``{agent: worker}`` as checked (row, column) pairs; every refused pair is counted."""
        recommended, pairs, used_rows, used_cols = set(rows.tolist()), [], set(), set()
        if not isinstance(assignment, dict):
            self.stats.invalid_actions += 1
            return pairs
        for agent, worker in assignment.items():
            row = self._decider_row.get(agent)
            try:
                col = self._idle_col.get(int(worker))
            except (TypeError, ValueError):
                col = None
            if (row is None or col is None or row not in recommended or row in used_rows or col in used_cols
                    or not self._feasible[row, col]):
                self.stats.invalid_actions += 1
                continue
            used_rows.add(row)
            used_cols.add(col)
            pairs.append((row, col))
        return sorted(pairs)

    def _assign(self, row: int, col: int) -> None:
        c, stats = self.config, self.stats
        subtask, worker = int(self._deciders[row]), int(self._idle[col])
        road = float(self._road[row, col])
        arrival = self.time + road / c.speed_mps
        finish = max(arrival, float(self._earliest[row])) + self.duration[subtask]
        self.status[subtask] = ASSIGNED
        self.worker[subtask] = worker
        self.matched_at[subtask], self.arrival[subtask], self.finish[subtask] = self.time, arrival, finish
        self.sub_travel[subtask] = road
        self.w_free_at[worker] = finish
        self.w_node[worker] = self.sub_node[subtask]
        task = self.task_of[subtask]
        self.task_travel[task] += road
        stats.travel_m += road
        stats.matched += 1
        if finish <= self.sub_expected[subtask]:  # Eq. 3, paid when the subtask finishes
            self.shaped_value[subtask] = self.share_on_time[subtask] - c.kappa * road
        elif finish < self.sub_deadline[subtask]:
            self.shaped_value[subtask] = self.share_late[subtask] - c.kappa * road
        else:  # pragma: no cover - feasibility refuses such a pair
            self.shaped_value[subtask] = 0.0
        u = (float(self._u_skill[row, col]), float(self._u_dist[row, col]), float(self._u_time[row]))
        self.match_utility[subtask] = u
        stats.log.append({"task": int(task), "subtask": int(self.position[subtask]),
                          "agent": self.possible_agents[subtask], "worker": worker, "matched_at": self.time,
                          "ready_at": float(self.ready_at[subtask]), "travel_m": road, "arrival": arrival,
                          "finish": finish, "expected": float(self.sub_expected[subtask]),
                          "deadline": float(self.sub_deadline[subtask]), "u_skill": u[0], "u_dist": u[1],
                          "u_time": u[2], "alpha": self.alpha, "beta": self.beta})

    # ------------------------------------------------------------------ time
    def _resolved(self) -> bool:
        """Every task done or expired and every committed worker finished."""
        return bool(np.all(self.task_status >= TASK_DONE) and not np.any(self.status == ASSIGNED))

    def _advance_until_decision(self, first: bool = False):
        """Advance whole decision intervals until some subtask can decide or the episode is over."""
        while True:
            if not first:
                self._advance_interval()
            first = False
            over = self._resolved()
            if over or self.time >= self.config.max_episode_s:
                self._empty_decision()
                return self._deciders, over
            deciders = self._find_deciders()
            if len(deciders):
                return deciders, False

    def _advance_interval(self) -> None:
        """Process one interval (t, t + dt]: finishes (and task completions), arrivals, readiness, expiry."""
        t1 = self.time + self.config.decision_interval_s
        finished = np.flatnonzero((self.status == ASSIGNED) & (self.finish <= t1))
        if len(finished):
            self.status[finished] = FINISHED
            self.pending["shaped"][finished] += self.shaped_value[finished]
            self._complete_tasks(np.unique(self.task_of[finished]))
        self.time = t1
        self._open_tasks(t1)
        self._update_ready()
        self._expire()

    def _complete_tasks(self, tasks: np.ndarray) -> None:
        """Tasks whose every subtask has finished: Eq. 1 profit, paid (sparse) to the last one to finish."""
        c, m, stats = self.config, self.config.max_subtasks, self.stats
        for q in tasks.tolist():
            rows = slice(q * m, q * m + int(self.size[q]))
            if self.task_status[q] != TASK_OPEN or not np.all(self.status[rows] == FINISHED):
                continue
            finishes = self.finish[rows]
            last = q * m + int(len(finishes) - 1 - np.argmax(finishes[::-1]))  # latest finish; ties: highest k
            t_f = float(finishes.max())
            late_min = max(0.0, t_f - self.expected[q]) / 60.0
            profit = max(0.0, 1.0 - c.zeta * late_min) * self.rho[q] - c.kappa * self.task_travel[q]  # Eq. 1
            self.task_status[q] = TASK_DONE
            self.task_finish[q], self.task_profit[q], self.task_closed_at[q] = t_f, profit, t_f
            self.pending["sparse"][last] += profit
            stats.revenue += profit
            stats.completed += 1
            stats.lateness_s += max(0.0, t_f - self.expected[q])

    def _open_tasks(self, now: float) -> None:
        arriving = np.flatnonzero((self.task_status == TASK_FUTURE) & (self.created <= now))
        if len(arriving):
            self.task_status[arriving] = TASK_OPEN
            members = np.isin(self.task_of, arriving) & self.valid
            self.status[members] = WAITING

    def _update_ready(self) -> None:
        """Waiting subtasks whose predecessors have all finished become ready (the order constraint)."""
        m, q_count = self.config.max_subtasks, self.config.num_tasks
        status = self.status.reshape(q_count, m)
        waiting = status == WAITING
        if not waiting.any():
            return
        early = self.config.ready_when == "assigned"
        unfinished = (status != FINISHED) & ~(early & (status == ASSIGNED))
        blocked = (self.adjacency & unfinished[:, :, None]).any(axis=1)
        newly = (waiting & ~blocked).ravel()
        if newly.any():
            finish = (self.matched_at if early else self.finish).reshape(q_count, m)
            latest_pred = np.where(self.adjacency, np.nan_to_num(finish, nan=-np.inf)[:, :, None], -np.inf).max(axis=1)
            ready_at = np.maximum(latest_pred, self.created[:, None]).ravel()
            self.status[newly] = READY
            self.ready_at[newly] = ready_at[newly]

    def _expire(self) -> None:
        """Open tasks with a ready subtask that cannot finish before its t_d^tau even with a worker on the
        spot expire: their waiting and ready subtasks fail; realised profit -kappa x travel so far."""
        c = self.config
        start = np.maximum(self.time, self.predecessors_finish(np.arange(len(self.status))))
        hopeless = (self.status == READY) & (start + self.duration >= self.sub_deadline)
        if not hopeless.any():
            return
        tasks = np.unique(self.task_of[hopeless])
        tasks = tasks[self.task_status[tasks] == TASK_OPEN]
        for q in tasks.tolist():
            members = (self.task_of == q) & ((self.status == WAITING) | (self.status == READY))
            self.status[members] = FAILED
            self.task_status[q] = TASK_EXPIRED
            self.task_profit[q] = -c.kappa * self.task_travel[q]
            self.task_closed_at[q] = self.time
            self.stats.revenue += self.task_profit[q]
            self.stats.expired += 1

    # ------------------------------------------------------------------ decisions
    def _empty_decision(self) -> None:
        self._deciders = np.zeros(0, dtype=np.int64)
        self._idle = np.flatnonzero(self.w_free_at <= getattr(self, "time", 0.0)) if hasattr(self, "w_free_at") \
            else np.zeros(0, dtype=np.int64)
        self._idle_col = {}
        self._decider_row = {}
        self._road = np.zeros((0, 0))
        self._feasible = np.zeros((0, 0), dtype=bool)
        self._u_skill = self._u_dist = np.zeros((0, 0))
        self._u_time = np.zeros(0)
        self._earliest = np.zeros(0)
        self._ready = np.zeros(0, dtype=np.int64)
        self._ready_feasible = np.zeros(0, dtype=np.int64)

    def _pair_data(self, subtasks: np.ndarray, workers: np.ndarray):
        """Road distances worker -> subtask (D, W) and the world's feasibility of each pair."""
        c = self.config
        if len(subtasks) == 0 or len(workers) == 0:
            return np.zeros((len(subtasks), len(workers))), np.zeros((len(subtasks), len(workers)), dtype=bool)
        road = self.scenario.city.distance.between(self.w_node[workers], self.sub_node[subtasks]).T.astype(np.float64)
        feasible = feasible_pairs(self.time, self.sub_mask[subtasks], self.w_mask[workers], road,
                                  self.duration[subtasks], self.sub_deadline[subtasks], c.range_m, c.speed_mps,
                                  self.predecessors_finish(subtasks))
        return road, feasible

    def predecessors_finish(self, subtasks: np.ndarray) -> np.ndarray:
        """(len,) the latest finish time of each subtask's predecessors (-inf for none or none assigned):
        the earliest its work may start. Before its predecessors have all finished (early matching) it is
        in the future; otherwise it is in the past and arrival alone sets the start."""
        subtasks = np.asarray(subtasks, dtype=np.int64)
        if len(subtasks) == 0:
            return np.zeros(0)
        m = self.config.max_subtasks
        q, k = self.task_of[subtasks], self.position[subtasks]
        predecessor = self.adjacency[q, :, k]  # (len, m): member j precedes the subtask
        finish = np.nan_to_num(self.finish.reshape(-1, m)[q], nan=-np.inf)
        return np.where(predecessor, finish, -np.inf).max(axis=1)

    def _find_deciders(self) -> np.ndarray:
        """Ready subtasks with at least one feasible idle worker; caches what matching and planners need."""
        c = self.config
        ready = np.flatnonzero(self.status == READY)
        idle = np.flatnonzero(self.w_free_at <= self.time)
        road, feasible = self._pair_data(ready, idle)
        counts = feasible.sum(axis=1)
        has = counts > 0
        self._ready, self._ready_feasible = ready, counts
        self._deciders = ready[has]
        self._earliest = self.predecessors_finish(self._deciders)
        self._idle = idle
        self._idle_col = {int(w): col for col, w in enumerate(idle.tolist())}
        self._road, self._feasible = road[has], feasible[has]
        d = self._deciders
        self._u_skill = skill_utility(self.sub_count[d], self.w_count[idle])
        self._u_dist = distance_utility(self._road, c.range_m)
        self._u_time = time_utility(self.time, self.sub_expected[d], self.sub_deadline[d])
        self._decider_row = {self.possible_agents[s]: row for row, s in enumerate(d.tolist())}
        return self._deciders

    def decision_view(self) -> DASCDecisionView:
        """A read-only snapshot of the current decision step for planners (envs.dasc_view); taking it
        changes nothing in the world."""
        d = self._deciders
        return DASCDecisionView(
            time=float(self.time), config=self.config, alpha=self.alpha, beta=self.beta,
            agents=tuple(self.possible_agents[s] for s in d.tolist()), subtask=frozen(d),
            task=frozen(self.task_of[d]), ready_since=frozen(self.ready_at[d]), duration=frozen(self.duration[d]),
            expected=frozen(self.sub_expected[d]), deadline=frozen(self.sub_deadline[d]),
            num_skills=frozen(self.sub_count[d]), descendants=frozen(self.descendants[d]),
            share_on_time=frozen(self.share_on_time[d]), share_late=frozen(self.share_late[d]),
            workers=frozen(self._idle), worker_skills=frozen(self.w_count[self._idle]),
            feasible=frozen(self._feasible), road=frozen(self._road), u_skill=frozen(self._u_skill),
            u_dist=frozen(self._u_dist), u_time=frozen(self._u_time),
            payment_bound=float((self.rho / self.size).max()), total_subtasks=int(self.size.sum()),
            earliest_start=frozen(self._earliest))

    # ------------------------------------------------------------------ observations
    def _emit(self, deciders: np.ndarray, leaving: np.ndarray):
        """Observations of ``deciders`` (fresh) and ``leaving`` agents (last ones), with the rewards and
        infos accumulated for each since its previous observation."""
        indices = np.concatenate([deciders, leaving]).astype(np.int64)
        if len(indices) == 0:
            return {}, {}, {}
        road_d, feasible_d = self._road, self._feasible
        if len(leaving):
            road_l, feasible_l = self._pair_data(leaving, self._idle)
            road_d = np.concatenate([road_d.reshape(len(deciders), len(self._idle)), road_l])
            feasible_d = np.concatenate([feasible_d.reshape(len(deciders), len(self._idle)), feasible_l])
        flat = self._observe(indices, road_d, feasible_d)
        self.seen[indices] = True
        self.left[leaving] = True
        signal = self.config.reward
        state = self.global_state() if self._global_state else None
        obs, rewards, infos = {}, {}, {}
        for row, index in enumerate(indices.tolist()):
            agent = self.possible_agents[index]
            obs[agent] = flat[row]
            paid = {"sparse": float(self.pending["sparse"][index]), "shaped": float(self.pending["shaped"][index])}
            rewards[agent] = paid[signal]
            info = paid if state is None else {**paid, "state": state}
            if self.worker[index] >= 0:  # matched: its pair's utility terms (Eq. 9-11)
                info["utility"] = self.match_utility[index].tolist()
            infos[agent] = info
        for values in self.pending.values():
            values[indices] = 0.0
        return obs, rewards, infos

    def _observe(self, indices: np.ndarray, road: np.ndarray, feasible: np.ndarray) -> np.ndarray:
        """Flat observations (envs.dasc_observation) of the subtasks ``indices``, vectorised."""
        c, m = self.config, self.config.max_subtasks
        n, t = len(indices), self.time
        xy = self.sub_xy[indices]
        q = self.task_of[indices]
        status = self.status.reshape(-1, m)
        finished_share = (status[q] == FINISHED).sum(axis=1) / self.size[q]
        feasible_count = feasible.sum(axis=1) if feasible.size else np.zeros(n)
        own = np.concatenate([
            (xy - self._low) / self._extent,
            np.stack([
                self.duration[indices] / TIME_SCALE_S, (self.sub_expected[indices] - t) / TIME_SCALE_S,
                (self.sub_deadline[indices] - t) / TIME_SCALE_S,
                time_utility(t, self.sub_expected[indices], self.sub_deadline[indices]),
                feasible_count / 10.0, finished_share, self.share_on_time[indices] / self._rho_scale,
                self.size[q] / m, self.descendants[indices] / m, self.position[indices] / m,
                self.fails[indices] / 5.0, np.full(n, t / c.max_episode_s),
                np.maximum(self.predecessors_finish(indices) - t, 0.0) / TIME_SCALE_S], axis=1),
            self.sub_skills[indices]], axis=1)
        # the task's DAG
        members = q[:, None] * m + np.arange(m)[None, :]
        member_status = self.status[members]
        onehot = np.stack([member_status == WAITING, member_status == READY, member_status == ASSIGNED,
                           member_status == FINISHED], axis=-1).astype(np.float64)
        max_skills = max(int(c.skills_per_subtask[1]), 1)
        nodes = np.concatenate([
            onehot, (members == indices[:, None])[..., None],
            np.stack([self.duration[members] / TIME_SCALE_S, (self.sub_expected[members] - t) / TIME_SCALE_S,
                      (self.sub_deadline[members] - t) / TIME_SCALE_S,
                      (self.sub_xy[members, 0] - xy[:, None, 0]) / c.range_m,
                      (self.sub_xy[members, 1] - xy[:, None, 1]) / c.range_m,
                      self.sub_count[members] / max_skills], axis=-1)], axis=-1)
        dag_mask = self.valid[members]
        nodes *= dag_mask[..., None]
        adjacency = self.adjacency[q].reshape(n, -1)
        # nearest feasible idle workers
        w_index, w_mask = nearest_rows(road, feasible, c.num_near_workers)
        workers = self._idle[w_index] if len(self._idle) else np.zeros_like(w_index)
        w_road = np.take_along_axis(road, w_index, axis=1) if road.shape[1] else np.zeros(w_index.shape)
        w_xy = self.scenario.city.node_xy[self.w_node[workers]]
        start = np.maximum(t + w_road / c.speed_mps, self.predecessors_finish(indices)[:, None])
        slack = self.sub_deadline[indices][:, None] - (start + self.duration[indices][:, None])
        worker_block = np.stack([
            (w_xy[..., 0] - xy[:, None, 0]) / c.range_m, (w_xy[..., 1] - xy[:, None, 1]) / c.range_m,
            w_road / c.range_m, self.w_count[workers] / c.num_skill_categories,
            self.sub_count[indices][:, None] / np.maximum(self.w_count[workers], 1),
            (c.range_m - w_road) / c.range_m, slack / TIME_SCALE_S], axis=-1) * w_mask[..., None]
        # nearest other ready subtasks
        ready = self._ready
        gaps = np.linalg.norm(self.sub_xy[ready][None, :, :] - xy[:, None, :], axis=-1)
        others = ready[None, :] != indices[:, None]
        s_index, s_mask = nearest_rows(gaps, others, c.num_near_subtasks)
        near = ready[s_index] if len(ready) else np.zeros_like(s_index)
        near_gap = np.take_along_axis(gaps, s_index, axis=1) if gaps.shape[1] else np.zeros(s_index.shape)
        near_feasible = self._ready_feasible[s_index] if len(ready) else np.zeros(s_index.shape)
        subtask_block = np.stack([
            (self.sub_xy[near, 0] - xy[:, None, 0]) / c.range_m, (self.sub_xy[near, 1] - xy[:, None, 1]) / c.range_m,
            near_gap / c.range_m, self.sub_count[near] / max_skills, self.duration[near] / TIME_SCALE_S,
            (self.sub_deadline[near] - t) / TIME_SCALE_S, (self.task_of[near] == q[:, None]).astype(np.float64),
            near_feasible / 10.0], axis=-1) * s_mask[..., None]
        flat = np.concatenate([own, nodes.reshape(n, -1), dag_mask, adjacency, worker_block.reshape(n, -1), w_mask,
                               subtask_block.reshape(n, -1), s_mask], axis=1).astype(np.float32)
        assert flat.shape[1] == self._obs_size, (flat.shape, self._obs_size)
        return flat

    def global_state(self) -> np.ndarray:
        """The global state s_t (STATE_BASE + 2 x categories floats; see STATE_BASE)."""
        c = self.config
        total = max(int(self.size.sum()), 1)
        idle = self.w_free_at <= self.time
        ready = self.status == READY
        state = np.concatenate([
            [self.time / c.max_episode_s, idle.mean(), ready.sum() / total, (self.status == ASSIGNED).sum() / total,
             (self.status == FINISHED).sum() / total, (self.task_status == TASK_OPEN).mean(),
             (self.task_status == TASK_DONE).mean(), (self.task_status == TASK_EXPIRED).mean(),
             self.stats.revenue / max(float(self.rho.sum()), 1e-9)],
            self.w_skills[idle].sum(axis=0) / c.num_workers,
            self.sub_skills[ready].sum(axis=0) / max(int(ready.sum()), 1)]).astype(np.float32)
        return state

    # ------------------------------------------------------------------ metrics
    def episode_metrics(self) -> dict[str, float]:
        """Business metrics of the episode so far: revenue (the realised profit of Eq. 1 summed over tasks,
        expired tasks counting their travel cost), ``max_payable`` (sum of rho: finishing every task by t_e
        with no travel; no method can earn more) and revenue as a share of it, task completion rate, subtask
        match rate (matched subtasks / all subtasks), recommendation success (matched / recommended), travel,
        mean lateness of completed tasks, failed recommendations, invalid actions, decisions."""
        s = self.stats
        max_payable = float(self.rho.sum())
        revenue = float(s.revenue)
        return {
            "revenue": revenue,
            "max_payable": max_payable,
            "revenue_share": revenue / max_payable if max_payable > 0 else 0.0,
            "completion_rate": s.completed / self.config.num_tasks,
            "expired_rate": s.expired / self.config.num_tasks,
            "subtask_match_rate": s.matched / max(int(self.size.sum()), 1),
            "recommendation_success": s.matched / max(s.recommendations, 1),
            "travel_km": s.travel_m / 1000.0,
            "mean_lateness_s": s.lateness_s / max(s.completed, 1),
            "failed_recommendations": float(s.failed_recommendations),
            "invalid_actions": float(s.invalid_actions),
            "decisions": float(s.decisions),
        }

    def matching_timing(self) -> dict[str, float]:
        """Time spent in Kuhn-Munkres (utility matrix + linear_sum_assignment) this episode."""
        s = self.stats
        sizes = np.array(s.matching_sizes or [(0, 0)], dtype=np.float64)
        return {"matching_steps": float(s.matching_steps),
                "ms_per_matching_step": 1000.0 * s.matching_s / max(s.matching_steps, 1),
                "mean_recommended": float(sizes[:, 0].mean()), "mean_idle_workers": float(sizes[:, 1].mean())}

    def episode_log(self) -> list[dict]:
        """One record per matched subtask (task, subtask, agent, worker, match / arrival / finish times, its
        t_e^tau and t_d^tau, the utility terms and eta of the match) with its task's outcome (status, finish
        time, realised profit)."""
        names = {TASK_FUTURE: "future", TASK_OPEN: "open", TASK_DONE: "done", TASK_EXPIRED: "expired"}
        return [{**entry, "task_status": names[int(self.task_status[entry["task"]])],
                 "task_finish": float(self.task_finish[entry["task"]]),
                 "task_profit": float(self.task_profit[entry["task"]])} for entry in self.stats.log]


def env_config(world: DASCConfig, data_dir: str | None = None, cache_dir: str | None = None) -> dict:
    """The RLlib env_config of a world (plain dicts only; the data folder made absolute)."""
    return {"world": to_dict(world), "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "cache_dir": cache_dir}
