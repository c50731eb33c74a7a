"""The collaborative spatial crowdsourcing (CSC) world (CAFE §3, §4.1) as an RLlib MultiAgentEnv.

Workers (agents) on a road network team up on skill-typed tasks. Several workers may work one task;
each on-site worker adds ``work_rate`` units per minute; a task finishes when its quantity q is done and
pays rho_max by t_e, decaying linearly by zeta to t_d, nothing after (it expires at t_d).

Decisions are event-driven: simulated time advances in decision intervals, and only workers that are
idle with at least one feasible task (skill match, within range, t_d still reachable) appear in the
observation dict, all together in one env step. Intervals in which nobody can decide are skipped inside
one ``step`` call, so RLlib only pays for steps with decisions. All internals are numpy arrays.

Each observed worker's infos carry what learned credit assignment needs (CAFE §4.3, ICES): ``state``, the
global state s_t (STATE_FEATURES), and two facts about the worker's *previous* decision, known only now:
``prev_neighbour_actions`` (the task each W_near worker of that decision held right after it, as a slot
1..x of that decision's own option list, 0 = none or a task outside it, -1 = no worker in that row) and
``prev_near_revenue`` (payments of tasks completed since then within ``credit_radius_m`` of the decision's
position and ``credit_window_s`` after it: 1.5 km and 10 minutes by default, see CSCConfig),
and ``events``: the completions the worker contributed to since then (task, its work, finish time, payment).
When the episode ends every worker that acted gets a last observation, so its last decision's facts arrive.
The infos are filled only when ``env_config["credit_facts"]`` is true (the reward-shaping methods set it), so
that methods which never read them do not pay for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.csc_config import CSCConfig
from envs.csc_observation import STATE_FEATURES, ObsLayout, nearest_rows
from envs.csc_view import DecisionView, frozen
from rl_cs.config import from_dict, to_dict
from rl_cs.data.scenario import Scenario, load_scenario
from rl_cs.data.tasks import NUM_SKILLS, TaskPool, payment, sample_worker_skills
from rl_cs.errors import require

IDLE, TRAVELLING, WORKING = 0, 1, 2
FUTURE, OPEN, DONE, EXPIRED = 0, 1, 2, 3
TIME_SCALE_S = 600.0


@lru_cache(maxsize=4)
def _scenario(data_dir: str | None, cache_dir: str | None, world_key: tuple) -> Scenario:
    config = CSCConfig(**dict(world_key))
    return load_scenario(data_dir, config.rules, config.city, config.synthetic_tasks,
                         Path(cache_dir) if cache_dir else None)


def scenario_for(config: CSCConfig, data_dir: str | None, cache_dir: str | None = None) -> Scenario:
    """The scenario of a world, loaded once per process (envs of one runner share it)."""
    key = (("rules", config.rules), ("city", config.city), ("synthetic_tasks", config.synthetic_tasks))
    return _scenario(str(data_dir) if data_dir else None, cache_dir, key)


def _gather(road: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``road[row, index[row]]``; zeros (padding only) when there are no open tasks (final obs at truncation)."""
    return np.take_along_axis(road, index, axis=1) if road.shape[1] else np.zeros(index.shape)


def worker_id(index: int) -> str:
    return f"worker_{index}"


@dataclass
class Completion:
    """One finished task, as the assignment log and credit assignment need it."""

    task: int
    workers: list[int]
    work: list[float]
    start: float
    finish: float
    payment: float


@dataclass
class EpisodeStats:
    revenue: float = 0.0
    completed: int = 0
    expired: int = 0
    lateness_s: float = 0.0
    travel_m: float = 0.0
    invalid_actions: int = 0
    decisions: int = 0
    waits: int = 0
    """Decisions that chose tau_0 (no task): their share shows whether a policy learned to idle."""
    log: list[Completion] = field(default_factory=list)


class CSCEnv(MultiAgentEnv):
    """env_config: ``{"world": CSCConfig or dict, "data_dir": folder or None, "cache_dir": folder or None,
    "credit_facts": bool (default False)}``."""

    metadata = {"render_modes": []}

    def __init__(self, env_config: dict | None = None):
        super().__init__()
        env_config = dict(env_config or {})
        self.config: CSCConfig = from_dict(CSCConfig, env_config.get("world"), "world").validate()
        self.scenario = scenario_for(self.config, env_config.get("data_dir"), env_config.get("cache_dir"))
        require(len(self.scenario.tasks) >= self.config.num_tasks, "world.num_tasks",
                f"{self.config.num_tasks} tasks asked but the scenario has only {len(self.scenario.tasks)}",
                "lower num_tasks or use a larger task stream")
        c = self.config
        self.layout = ObsLayout(c.num_optional_tasks, c.num_near_tasks, c.num_near_workers, c.num_idle_workers)
        self.possible_agents = [worker_id(i) for i in range(c.num_workers)]
        self.agents = []
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.layout.size,), np.float32)
        act_space = gym.spaces.Discrete(self.layout.num_actions)
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        city = self.scenario.city
        self._origin = city.node_xy.min(axis=0)
        self._extent = np.maximum(city.node_xy.max(axis=0) - self._origin, 1.0)
        pool = self.scenario.tasks
        self._q_scale, self._rho_scale = float(pool.quantity.mean()), float(pool.rho_max.mean())
        self._rng = np.random.default_rng(env_config.get("seed"))
        self._credit_facts = bool(env_config.get("credit_facts", False))

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        c, pool, rng = self.config, self.scenario.tasks, self._rng
        start = int(rng.integers(0, len(pool) - c.num_tasks + 1))
        self.tasks: TaskPool = pool.window(start, c.num_tasks)
        self.task_xy = self.scenario.city.node_xy[self.tasks.node]
        self.status = np.full(c.num_tasks, FUTURE, dtype=np.int8)
        self.remaining = self.tasks.quantity.astype(np.float64).copy()
        self.first_arrival = np.full(c.num_tasks, np.nan)
        n = c.num_workers
        self.skills = sample_worker_skills(n, rng)
        self.w_node = rng.choice(pool.node, size=n)  # CAFE §5.1: workers start at request locations
        self.w_state = np.full(n, IDLE, dtype=np.int8)
        self.w_task = np.full(n, -1, dtype=np.int64)
        self.w_from_xy = self.scenario.city.node_xy[self.w_node].copy()
        self.w_depart = np.zeros(n)
        self.w_arrive = np.zeros(n)
        self.w_work = np.zeros(n)
        self.has_acted = np.zeros(n, dtype=bool)
        self._neighbour_slots = np.full((n, c.num_near_workers), -1, dtype=np.int64)
        self._near_revenue = np.zeros(n)
        self._decision_xy = np.full((n, 2), np.inf)
        self._decision_time = np.zeros(n)
        self._events: dict[int, list] = {}
        self.time = 0.0
        self.horizon = float(self.tasks.deadline.max())
        self.stats = EpisodeStats()
        self._open_new_tasks()
        rewards = np.zeros(n)
        deciders, done = self._advance_until_decision(rewards, first=True)
        obs = self._observe(deciders)
        self.agents = list(obs)
        return obs, self._infos(deciders)

    # ------------------------------------------------------------------ stepping
    def step(self, action_dict: dict):
        rewards = np.zeros(self.config.num_workers)
        self._apply_actions(action_dict, rewards)
        if self._credit_facts:
            self._note_neighbour_actions()
        deciders, done = self._advance_until_decision(rewards)
        truncated = done and self.time >= self.config.max_episode_s
        if done:  # a last observation of every agent that acted: RLlib bootstraps its value at truncation,
            # and its infos carry the facts of its last decision (module docstring)
            deciders = self._find_deciders(np.flatnonzero(self.has_acted))
        obs = self._observe(deciders)
        self.agents = list(obs)
        reward_dict = {worker_id(i): float(rewards[i]) for i in np.flatnonzero(self.has_acted & (rewards != 0))}
        for agent in obs:
            reward_dict.setdefault(agent, 0.0)
        return (obs, reward_dict, {"__all__": done and not truncated}, {"__all__": truncated},
                self._infos(deciders))

    def _apply_actions(self, action_dict: dict, rewards: np.ndarray) -> None:
        """Send each deciding worker to its chosen optional task; unknown or masked actions mean tau_0."""
        c = self.config
        for agent, action in action_dict.items():
            row = self._decider_row.get(agent)
            if row is None:
                continue
            worker = self._deciders[row]
            self.has_acted[worker] = True
            self.stats.decisions += 1
            action = int(action)
            if action == 0:
                self.stats.waits += 1
                continue
            if not (0 < action <= c.num_optional_tasks) or not self._option_mask[row, action - 1]:
                self.stats.invalid_actions += 1
                continue
            task = self._open[self._option_index[row, action - 1]]
            distance = float(self._option_road[row, action - 1])
            self.w_state[worker] = TRAVELLING
            self.w_task[worker] = task
            self.w_from_xy[worker] = self.scenario.city.node_xy[self.w_node[worker]]
            self.w_node[worker] = self.tasks.node[task]
            self.w_depart[worker] = self.time
            self.w_arrive[worker] = self.time + distance / c.speed_mps
            self.w_work[worker] = 0.0
            self.stats.travel_m += distance
            if c.reward == "ir":
                rewards[worker] += self.remaining[task] / c.work_rate  # remaining working time, minutes

    def _advance_until_decision(self, rewards: np.ndarray, first: bool = False):
        """Advance whole decision intervals until some worker can decide or the episode is over."""
        while True:
            if not first:
                self._advance_interval(rewards)
            first = False
            done = self._episode_over()
            deciders = np.zeros(0, dtype=np.int64) if done else self._find_deciders()
            if done or len(deciders):
                return deciders, done

    def _episode_over(self) -> bool:
        no_tasks_left = not np.any((self.status == FUTURE) | (self.status == OPEN))
        return no_tasks_left or self.time >= self.config.max_episode_s

    def _open_new_tasks(self) -> None:
        self.status[(self.status == FUTURE) & (self.tasks.created <= self.time)] = OPEN

    def _advance_interval(self, rewards: np.ndarray) -> None:
        """Simulate [t, t + dt]: arrivals, work, completions (exact finish times), expiries, new tasks."""
        c, t0 = self.config, self.time
        t1 = t0 + c.decision_interval_s
        revenue_before = self.stats.revenue
        rate = c.work_rate / 60.0
        arrived = (self.w_state == TRAVELLING) & (self.w_arrive <= t1)
        closed_on_arrival = arrived & (self.status[np.maximum(self.w_task, 0)] != OPEN)
        self._release(closed_on_arrival)
        arrived &= ~closed_on_arrival
        self.w_state[arrived] = WORKING
        for task in np.unique(self.w_task[arrived]):
            if np.isnan(self.first_arrival[task]):
                self.first_arrival[task] = self.w_arrive[arrived & (self.w_task == task)].min()

        on_site = np.flatnonzero(self.w_state == WORKING)
        tasks_on_site = self.w_task[on_site]
        start = np.maximum(self.w_arrive[on_site], t0)
        end = np.minimum(t1, self.tasks.deadline[tasks_on_site])
        work = rate * np.maximum(0.0, end - start)
        total = np.bincount(tasks_on_site, weights=work, minlength=c.num_tasks)
        finishing = np.flatnonzero((total >= self.remaining - 1e-9) & (self.status == OPEN) & (total > 0))
        finishing_set = np.isin(tasks_on_site, finishing)
        self.w_work[on_site[~finishing_set]] += work[~finishing_set]
        self.remaining -= np.where(np.isin(np.arange(c.num_tasks), finishing), 0.0, total)
        for task in finishing:
            rows = tasks_on_site == task
            self._complete(task, on_site[rows], start[rows], rate, rewards)

        expiring = np.flatnonzero((self.status == OPEN) & (self.tasks.deadline <= t1))
        if len(expiring):
            self.status[expiring] = EXPIRED
            self.stats.expired += len(expiring)
            self._release((self.w_state == WORKING) & np.isin(self.w_task, expiring))
        if c.reward == "team":
            rewards[self.has_acted] += self.stats.revenue - revenue_before
        self.time = t1
        self._open_new_tasks()

    def _complete(self, task: int, workers: np.ndarray, start: np.ndarray, rate: float, rewards: np.ndarray):
        """Finish ``task``: solve the exact finish time of the piecewise-linear work curve, pay, split."""
        order = np.argsort(start)
        starts = start[order]
        remaining, finish = self.remaining[task], starts[-1]
        for k in range(len(starts)):  # k + 1 workers on site between starts[k] and the next start
            segment_end = starts[k + 1] if k + 1 < len(starts) else np.inf
            capacity = (k + 1) * rate * (segment_end - starts[k])
            if capacity >= remaining:
                finish = starts[k] + remaining / ((k + 1) * rate)
                break
            remaining -= capacity
        contributed = rate * np.maximum(0.0, finish - start)
        self.w_work[workers] += contributed
        total_work = self.w_work[workers]
        paid = float(payment(self.tasks.rho_max[task], finish, self.tasks.expected[task],
                             self.tasks.deadline[task], self.tasks.zeta))
        self.status[task] = DONE
        self.remaining[task] = 0.0
        stats = self.stats
        stats.revenue += paid
        stats.completed += 1
        stats.lateness_s += max(0.0, finish - self.tasks.expected[task])
        worked = total_work > 0  # workers arriving after the finish (same interval) did nothing: not contributors
        if self._credit_facts:
            c = self.config
            near = np.linalg.norm(self._decision_xy - self.task_xy[task], axis=1) <= (c.credit_radius_m or c.range_m)
            if c.credit_window_s > 0:
                near &= finish <= self._decision_time + c.credit_window_s
            self._near_revenue[near] += paid
            for worker, work in zip(workers[worked].tolist(), total_work[worked].tolist()):
                self._events.setdefault(worker, []).append(
                    {"task": int(task), "work": work, "finish": float(finish), "payment": paid})
        stats.log.append(Completion(int(task), workers[worked].tolist(), total_work[worked].tolist(),
                                    float(self.first_arrival[task]), float(finish), paid))
        if self.config.reward == "split" and total_work.sum() > 0:
            rewards[workers] += paid * total_work / total_work.sum()
        released = np.zeros(self.config.num_workers, dtype=bool)
        released[workers] = True
        self._release(released)

    def _release(self, mask: np.ndarray) -> None:
        """Workers in ``mask`` become idle where they stand (their task's node)."""
        self.w_state[mask] = IDLE
        self.w_task[mask] = -1
        self.w_work[mask] = 0.0

    # ------------------------------------------------------------------ decisions and observations
    def _find_deciders(self, workers: np.ndarray | None = None) -> np.ndarray:
        """Idle workers with at least one feasible open task (or exactly ``workers``, for final
        observations at truncation); caches the option sets for ``step``."""
        c = self.config
        self._open = np.flatnonzero(self.status == OPEN)
        idle = np.flatnonzero(self.w_state == IDLE) if workers is None else workers
        road = self.scenario.city.distance.between(self.w_node[idle], self.tasks.node[self._open])
        feasible = (self.skills[idle][:, self.tasks.skill[self._open]] & (road <= c.range_m)
                    & (self.time + road / c.speed_mps < self.tasks.deadline[self._open])
                    & (self.w_state[idle] == IDLE)[:, None])
        has_option = feasible.any(axis=1) if workers is None else np.ones(len(idle), dtype=bool)
        self._deciders = idle[has_option]
        self._road = road[has_option]
        self._feasible = feasible[has_option]
        self._option_index, self._option_mask = nearest_rows(self._road, self._feasible, c.num_optional_tasks)
        self._option_road = _gather(self._road, self._option_index)
        self._decider_row = {worker_id(w): row for row, w in enumerate(self._deciders)}
        return self._deciders

    def decision_view(self) -> DecisionView:
        """A read-only snapshot of the current decision step for planners (envs.csc_view): the deciders of
        the last ``reset``/``step`` in observation order, their option slots, and the task and worker state
        the heuristics plan with. Taking it changes nothing in the world."""
        t = self.tasks
        option_task = (np.where(self._option_mask, self._open[self._option_index], -1) if len(self._open)
                       else np.full(self._option_index.shape, -1, dtype=np.int64))
        return DecisionView(
            time=float(self.time), config=self.config, expected=frozen(t.expected), deadline=frozen(t.deadline),
            rho_max=frozen(t.rho_max), zeta=float(t.zeta), remaining=frozen(self.remaining),
            worker_state=frozen(self.w_state), worker_task=frozen(self.w_task), worker_arrival=frozen(self.w_arrive),
            deciders=frozen(self._deciders), agents=tuple(worker_id(w) for w in self._deciders),
            option_task=frozen(option_task), option_mask=frozen(self._option_mask),
            option_road=frozen(self._option_road))

    def worker_xy(self) -> np.ndarray:
        """Current positions; travelling workers are placed on the straight line by elapsed time."""
        target = self.scenario.city.node_xy[self.w_node]
        duration = np.maximum(self.w_arrive - self.w_depart, 1e-9)
        progress = np.clip((self.time - self.w_depart) / duration, 0.0, 1.0)
        progress = np.where(self.w_state == TRAVELLING, progress, 1.0)[:, None]
        return self.w_from_xy + (target - self.w_from_xy) * progress

    def _task_features(self, rows: np.ndarray, index: np.ndarray, present: np.ndarray, road: np.ndarray,
                       own_xy: np.ndarray) -> np.ndarray:
        """(B, k, TASK_FEATURES) for open-task columns ``index`` of the deciders ``rows``."""
        c = self.config
        task = self._open[index] if len(self._open) else index  # no open task: all rows are padding
        heading, on_site = self._task_crowd
        arrival = self.time + road / c.speed_mps
        features = np.stack([
            (self.task_xy[task, 0] - own_xy[:, None, 0]) / c.range_m,
            (self.task_xy[task, 1] - own_xy[:, None, 1]) / c.range_m,
            road / c.range_m,
            (self.tasks.expected[task] - arrival) / TIME_SCALE_S,
            (self.tasks.deadline[task] - arrival) / TIME_SCALE_S,
            self.remaining[task] / self._q_scale,
            self.tasks.rho_max[task] / self._rho_scale,
            self.skills[self._deciders[rows]][np.arange(len(rows))[:, None], self.tasks.skill[task]],
            heading[task] / 4.0,
            on_site[task] / 4.0,
        ], axis=-1)
        return features * present[..., None]

    def _worker_features(self, index: np.ndarray, present: np.ndarray, positions: np.ndarray,
                         own_xy: np.ndarray, own_skills: np.ndarray) -> np.ndarray:
        c = self.config
        state = np.eye(3)[self.w_state[index]]
        shared = (self.skills[index] & own_skills[:, None, :]).sum(axis=-1) / NUM_SKILLS
        features = np.concatenate([
            (positions[index] - own_xy[:, None, :]) / c.range_m, state, shared[..., None]], axis=-1)
        return features * present[..., None]

    def _observe(self, deciders: np.ndarray) -> dict:
        """Flat observations (see envs.csc_observation) for every decider, in one vectorised pass."""
        if len(deciders) == 0:
            return {}
        c, layout = self.config, self.layout
        rows = np.arange(len(deciders))
        positions = self.worker_xy()
        own_xy = positions[deciders]
        own_skills = self.skills[deciders]
        own = np.concatenate([
            (own_xy - self._origin) / self._extent, own_skills,
            np.full((len(deciders), 1), self.time / self.horizon),
            np.full((len(deciders), 1), len(self._open) / 100.0)], axis=1)
        self._task_crowd = (np.bincount(self.w_task[self.w_state != IDLE], minlength=c.num_tasks),
                            np.bincount(self.w_task[self.w_state == WORKING], minlength=c.num_tasks))
        optional = self._task_features(rows, self._option_index, self._option_mask, self._option_road, own_xy)
        straight = np.linalg.norm(self.task_xy[self._open][None, :, :] - own_xy[:, None, :], axis=-1)
        near_index, near_mask = nearest_rows(straight, np.ones_like(straight, dtype=bool), c.num_near_tasks)
        near_road = _gather(self._road, near_index)
        near = self._task_features(rows, near_index, near_mask, near_road, own_xy)
        gaps = np.linalg.norm(positions[None, :, :] - own_xy[:, None, :], axis=-1)
        others = np.ones_like(gaps, dtype=bool)
        others[rows, deciders] = False
        w_index, w_mask = nearest_rows(gaps, others, c.num_near_workers)
        self._near_index, self._near_mask = w_index, w_mask
        self._decision_xy[deciders] = own_xy
        self._decision_time[deciders] = self.time
        i_index, i_mask = nearest_rows(gaps, others & (self.w_state == IDLE)[None, :], c.num_idle_workers)
        near_workers = self._worker_features(w_index, w_mask, positions, own_xy, own_skills)
        idle_workers = self._worker_features(i_index, i_mask, positions, own_xy, own_skills)
        action_mask = np.concatenate([np.ones((len(deciders), 1)), self._option_mask], axis=1)
        flat = np.concatenate([
            own, optional.reshape(len(rows), -1), near.reshape(len(rows), -1),
            near_workers.reshape(len(rows), -1), idle_workers.reshape(len(rows), -1),
            self._option_mask, near_mask, w_mask, i_mask, action_mask], axis=1).astype(np.float32)
        assert flat.shape[1] == layout.size, (flat.shape, layout.size)
        return {worker_id(w): flat[row] for row, w in enumerate(deciders)}

    # ------------------------------------------------------------------ facts for credit assignment
    def _note_neighbour_actions(self) -> None:
        """After the deciders acted: each one's W_near workers' tasks, as slots of its own option list."""
        if len(self._deciders) == 0:
            return
        held = np.where(self._near_mask, self.w_task[self._near_index], -1)
        options = np.where(self._option_mask, self._open[self._option_index] if len(self._open) else -2, -2)
        match = held[:, :, None] == options[:, None, :]
        slots = np.where(match.any(axis=2), match.argmax(axis=2) + 1, 0)
        self._neighbour_slots[self._deciders] = np.where(self._near_mask, slots, -1)

    def global_state(self) -> np.ndarray:
        """s_t as STATE_FEATURES floats (see envs.csc_observation.STATE_FEATURES)."""
        c, open_ = self.config, self.status == OPEN
        skill = self.tasks.skill[open_]
        state = np.concatenate([
            np.bincount(skill, minlength=NUM_SKILLS) * (NUM_SKILLS / c.num_tasks),
            np.bincount(skill, weights=self.remaining[open_], minlength=NUM_SKILLS)
            * (NUM_SKILLS / (c.num_tasks * self._q_scale)),
            self.skills[self.w_state == IDLE].sum(axis=0) / c.num_workers,
            [self.time / self.horizon], np.bincount(self.w_state, minlength=3) / c.num_workers,
            [self.stats.completed / c.num_tasks, self.stats.expired / c.num_tasks,
             self.stats.revenue / (c.num_tasks * self._rho_scale)]]).astype(np.float32)
        assert state.shape == (STATE_FEATURES,)
        return state

    def _infos(self, deciders: np.ndarray) -> dict:
        """Per observed worker: the global state and the facts of its previous decision (module docstring)."""
        if not self._credit_facts:
            return {worker_id(w): {} for w in deciders}
        if len(deciders) == 0:
            return {}
        state = self.global_state()
        slots, revenue = self._neighbour_slots[deciders], self._near_revenue[deciders].tolist()
        self._near_revenue[deciders] = 0.0
        return {worker_id(w): {"state": state, "prev_neighbour_actions": slots[row], "prev_near_revenue": revenue[row],
                               "events": self._events.pop(int(w), [])}
                for row, w in enumerate(deciders)}

    # ------------------------------------------------------------------ metrics
    def episode_log(self) -> list[dict]:
        """The episode's assignment log: one record per completed task (task, workers, work, start, finish,
        payment) with its t_e, t_d, skill and rho_max."""
        t = self.tasks
        return [{**asdict(entry), "expected": float(t.expected[entry.task]), "deadline": float(t.deadline[entry.task]),
                 "skill": int(t.skill[entry.task]), "rho_max": float(t.rho_max[entry.task])}
                for entry in self.stats.log]

    def episode_metrics(self) -> dict[str, float]:
        """Business metrics of the episode so far (CAFE §5: revenue; plus completion, lateness, travel) and
        ``max_payable``: the sum of rho_max over the episode's task window, what finishing every task by its
        t_e would pay. No method can earn more, so revenue / max_payable says how much room a world leaves."""
        s = self.stats
        return {
            "revenue": s.revenue,
            "max_payable": float(self.tasks.rho_max.sum()),
            "completion_rate": s.completed / self.config.num_tasks,
            "mean_lateness_s": s.lateness_s / max(s.completed, 1),
            "travel_km": s.travel_m / 1000.0,
            "invalid_actions": float(s.invalid_actions),
            "decisions": float(s.decisions),
            "tau0_share": s.waits / max(s.decisions, 1),
        }


def env_config(world: CSCConfig, data_dir: str | None = None, cache_dir: str | None = None) -> dict:
    """The RLlib env_config of a world (plain dicts only, so it serialises into Tune's results). The data
    folder is made absolute: Tune runs each trial in its own working directory."""
    return {"world": to_dict(world), "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "cache_dir": cache_dir}
