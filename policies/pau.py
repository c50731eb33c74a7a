"""PAU (Zhao et al., VLDB J 2024) on the CSC world: worker coalitions as an exact potential game.

Only PAU's abstract and introduction were available (notes/baselines.md §3), so the algorithm below is a
reading of them, simplified as follows and marked GUESS where a value had to be chosen:

* **Per env step, over the current deciders.** PAU plans a batch of waiting workers; here the batch is the
  workers deciding in one env step, and each may join one of its x nearest feasible options (the world's
  action mask) or take none (tau_0, decide again next interval). Workers already travelling to or working
  on a task are fixed and count towards its coalition.
* **Coalition reward.** R(C_t) = pay_t(C_t plus the committed workers) - lambda * (road km travelled by
  C_t), where pay_t is CAFE §3's payment at the estimated finish time (every worker works from its arrival,
  at the world's one work rate; zero when the finish is not before t_d). lambda = ``travel_cost_per_km``,
  GUESS 0.1 per km (about 1% of a fare per km), a tie-breaker towards nearer tasks that also stops trips
  that add nothing. The committed workers' own payment is a constant of the game and cancels in every
  difference.
* **Exact potential game.** A worker's utility is its marginal contribution U_w = R(C_t) - R(C_t \\ {w})
  (0 for tau_0), so Phi = sum_t R(C_t) is an exact potential: a move changes Phi by exactly the mover's
  change in utility, and best-response dynamics terminate in a Nash equilibrium.
* **Arrival priority.** Workers are ordered by when they became idle (earliest first; ties by worker
  index): the greedy initialisation assigns them in that order, each to its best marginal option given the
  earlier ones, and best response always revisits the earliest worker whose utilities have changed.
* **Coalition founding (our addition).** Under marginal utilities no worker alone joins a task that needs
  two to finish before t_d, and annealing's random moves rarely pair the right workers (measured: two or
  three such tasks expired per episode on the default world). So in the greedy step a worker that no
  option pays alone founds the coalition worth most to Phi among its options, recruiting free workers
  (earliest arrival at the task first) until the task pays. The paper's "acceptance probability" in its
  greedy step is not reproduced: the greedy step is deterministic.
* **Simulated annealing** to escape poor equilibria (a task no single worker can finish in time but two
  can): each of I_max iterations moves a random worker to a random other option (tau_0 included), lets the
  others best-respond with that worker held, and accepts by Metropolis on Phi; temperature T0 = the mean
  rho_max of the candidate tasks, times alpha per iteration. GUESS: T0 = mean reward, alpha = 0.95,
  I_max = 100. The best assignment seen is refined by a last best response, so the result is an
  equilibrium at least as good as the best one annealing found. With a single decider, best response is
  already optimal and annealing is skipped.
* **Payments** to workers by marginal contribution are not modelled: the world pays and splits by itself.

Cost: the game is small Python lists (coalitions are a few workers); marginal utilities are cached per
(worker, option) and recomputed only when that task's coalition changes.
"""

from __future__ import annotations

import heapq
import math
from bisect import insort

import numpy as np

from envs.csc import IDLE
from envs.csc_view import DecisionView
from policies.heuristics import Heuristic

NONE = -1
"""Choice of a worker that joins no task (tau_0)."""
EPS = 1e-9
"""A move must raise the mover's utility by more than this (guards against float churn)."""


def finish_time(starts: list[float], work_s: float) -> float:
    """Finish of ``work_s`` worker-seconds when worker j works from ``starts[j]`` (sorted) at rate 1.

    The work done by time t is sum_j max(0, t - s_j), the maximum over k of the first k terms, so its root
    is min_k (work + s_1 + ... + s_k) / k; inf without workers.
    """
    best, total = math.inf, work_s
    for k, start in enumerate(starts, 1):
        total += start
        best = min(best, total / k)
    return best


class CoalitionGame:
    """The potential game of one decision step: players (deciders in priority order) choose among options.

    Tasks are local indices 0..m-1; ``options[i]`` lists player i's (task, start time, travel cost) in
    option-slot order; a player's choice is a slot index or NONE.
    """

    def __init__(self, work_s, rho, expected, deadline, zeta: float, committed: list[list[float]],
                 options: list[list[tuple[int, float, float]]]):
        self.work_s, self.rho, self.expected, self.deadline = work_s, rho, expected, deadline
        self.zeta = zeta
        self.options = options
        self.starts = [sorted(c) for c in committed]
        self.cost = [0.0] * len(work_s)
        self.pay = [self._payment(t, self.starts[t]) for t in range(len(work_s))]
        self.version = [0] * len(work_s)
        self.choice = [NONE] * len(options)
        self.watchers: list[list[int]] = [[] for _ in work_s]
        self.slot_of = [{task: slot for slot, (task, _, _) in enumerate(slots)} for slots in options]
        for player, slots in enumerate(options):
            for task, _, _ in slots:
                self.watchers[task].append(player)
        self._cache: list[dict[int, tuple[int, float]]] = [{} for _ in options]
        self.phi = sum(self.pay)

    # ------------------------------------------------------------------ values
    def _payment(self, task: int, starts: list[float]) -> float:
        """CAFE §3 payment at the estimated finish (scalar form of rl_cs.data.tasks.payment, for speed)."""
        finish = finish_time(starts, self.work_s[task])
        if finish <= self.expected[task]:
            return self.rho[task]
        if finish < self.deadline[task]:
            return (1.0 - self.zeta * (finish - self.expected[task])) * self.rho[task]
        return 0.0

    def reward(self, task: int) -> float:
        """R(C_t): payment of the coalition with the committed workers, minus its members' travel cost."""
        return self.pay[task] - self.cost[task]

    def potential(self) -> float:
        """Phi = sum_t R(C_t), recomputed from scratch (``phi`` holds the running value)."""
        return sum(self.reward(t) for t in range(len(self.pay)))

    def utility(self, player: int, slot: int) -> float:
        """Marginal contribution of ``player`` to its coalition if it takes ``slot`` (others fixed)."""
        if slot == NONE:
            return 0.0
        task, start, cost = self.options[player][slot]
        cached = self._cache[player].get(slot)
        if cached is not None and cached[0] == self.version[task]:
            return cached[1]
        starts = self.starts[task]
        if self.choice[player] == slot:
            without = list(starts)
            without.remove(start)
            value = self.pay[task] - self._payment(task, without) - cost
        elif self.pay[task] >= self.rho[task]:
            value = -cost  # already paid in full: joining cannot add payment
        else:
            joined = list(starts)
            insort(joined, start)
            value = self._payment(task, joined) - self.pay[task] - cost
        self._cache[player][slot] = (self.version[task], value)
        return value

    def best_slot(self, player: int) -> int:
        """The best response of ``player``: its current choice unless another is better by more than EPS."""
        current = self.choice[player]
        best, best_value = current, self.utility(player, current) + EPS
        for slot in range(NONE, len(self.options[player])):
            value = self.utility(player, slot)
            if slot != current and value > best_value:
                best, best_value = slot, value
        return best

    # ------------------------------------------------------------------ moves
    def move(self, player: int, slot: int) -> list[int]:
        """Set ``player``'s choice, keeping coalitions, payments and Phi current; returns touched tasks."""
        touched = []
        old = self.choice[player]
        if old != NONE:
            task, start, cost = self.options[player][old]
            self.starts[task].remove(start)
            self._update(task, -cost)
            touched.append(task)
        self.choice[player] = slot
        if slot != NONE:
            task, start, cost = self.options[player][slot]
            insort(self.starts[task], start)
            self._update(task, cost)
            touched.append(task)
        return touched

    def _update(self, task: int, cost_change: float) -> None:
        before = self.reward(task)
        self.cost[task] += cost_change
        self.pay[task] = self._payment(task, self.starts[task])
        self.version[task] += 1
        self.phi += self.reward(task) - before

    # ------------------------------------------------------------------ dynamics
    def greedy(self) -> None:
        """Greedy initialisation. Players in priority order take their best option given the earlier ones;
        a player that no option pays alone founds the coalition worth most to Phi among its options, with
        the fewest free players (earliest arrival at the task first) that let the task finish before t_d."""
        hopeless: set[int] = set()  # tasks that even every free player could not finish in time
        for player in range(len(self.options)):
            if self.choice[player] != NONE:
                continue  # recruited by an earlier founder
            slot = self.best_slot(player)
            if slot != NONE:
                self.move(player, slot)
                continue
            best_gain, best_team = 0.0, []
            for slot, (task, _, _) in enumerate(self.options[player]):
                if self.pay[task] > 0.0 or task in hopeless:
                    continue  # joining a paid task did not help; a hopeless one cannot
                team, gain = self._team(player, slot)
                if not team:
                    hopeless.add(task)
                elif gain > best_gain:
                    best_gain, best_team = gain, team
            for member, member_slot in best_team:
                self.move(member, member_slot)

    def _team(self, founder: int, slot: int) -> tuple[list[tuple[int, int]], float]:
        """The founder plus free players, earliest start first, until task ``slot`` pays; and its gain in Phi.
        An empty team when all free players together cannot finish it before t_d."""
        task, start, cost = self.options[founder][slot]
        starts, team = list(self.starts[task]), [(founder, slot)]
        insort(starts, start)
        joiners = sorted((self.options[p][self.slot_of[p][task]][1], p) for p in self.watchers[task]
                         if p != founder and self.choice[p] == NONE)
        for joiner_start, player in joiners:
            if self._payment(task, starts) > 0.0:
                break
            insort(starts, joiner_start)
            team.append((player, self.slot_of[player][task]))
            cost += self.options[player][self.slot_of[player][task]][2]
        pay = self._payment(task, starts)
        return (team, pay - self.pay[task] - cost) if pay > 0.0 else ([], 0.0)

    def best_response(self, players=(), changed=(), held: int = NONE) -> list[tuple[int, int]]:
        """Best-response dynamics until no player can improve, starting from ``players`` and the players
        unsettled by the ``changed`` tasks; the earliest queued player moves first; ``held`` never moves.
        Returns the moves made as (player, previous slot), for undoing."""
        heap, moves = sorted(set(players) - {held}), []
        queued = set(heap)

        def push_unsettled(task: int) -> None:
            for other in self._unsettled(task):
                if other != held and other not in queued:
                    queued.add(other)
                    heapq.heappush(heap, other)

        for task in changed:
            push_unsettled(task)
        while heap:
            player = heapq.heappop(heap)
            queued.discard(player)
            slot = self.best_slot(player)
            if slot != self.choice[player]:
                moves.append((player, self.choice[player]))
                for task in self.move(player, slot):
                    push_unsettled(task)
        return moves

    def _unsettled(self, task: int):
        """Watchers of a changed task whose best response may have changed: its members, and those for
        whom joining it now beats their current choice (every other utility of theirs is unchanged)."""
        for player in self.watchers[task]:
            slot = self.slot_of[player][task]
            current = self.choice[player]
            if current == slot or self.utility(player, slot) > self.utility(player, current) + EPS:
                yield player

    def undo(self, moves: list[tuple[int, int]]) -> None:
        for player, slot in reversed(moves):
            self.move(player, slot)

    def anneal(self, rng: np.random.Generator, t0: float, alpha: float, iterations: int) -> list[int]:
        """Simulated annealing over equilibria (Metropolis on Phi); returns the best choices seen."""
        best, best_phi, temperature = list(self.choice), self.phi, t0
        for _ in range(iterations):
            player = int(rng.integers(len(self.options)))
            current = self.choice[player]
            others = [s for s in range(NONE, len(self.options[player])) if s != current]
            before = self.phi
            moves = [(player, current)]
            touched = self.move(player, others[int(rng.integers(len(others)))])
            moves += self.best_response(changed=touched, held=player)
            delta = self.phi - before
            if delta < 0 and rng.random() >= math.exp(delta / max(temperature, 1e-12)):
                self.undo(moves)
            elif self.phi > best_phi + EPS:
                best, best_phi = list(self.choice), self.phi
            temperature *= alpha
        return best

    def solve(self, rng: np.random.Generator, t0: float, alpha: float, iterations: int) -> list[int]:
        """Greedy start, best response, annealing, and a final best response from the best assignment."""
        everyone = range(len(self.options))
        self.greedy()
        self.best_response(everyone)
        if len(self.options) > 1 and iterations > 0:
            best = self.anneal(rng, t0, alpha, iterations)
            for player, slot in enumerate(best):
                if self.choice[player] != slot:
                    self.move(player, slot)
            self.best_response(everyone)
        return list(self.choice)


class PAU(Heuristic):
    """PAU as a heuristic: one coalition game per env step over the deciders and their masked options."""

    name = "pau"

    def __init__(self, travel_cost_per_km: float = 0.1, alpha: float = 0.95, iterations: int = 100):
        self.travel_cost_per_km, self.alpha, self.iterations = travel_cost_per_km, alpha, iterations
        self.reset(None)

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)
        self.idle_since: np.ndarray | None = None

    def _priority(self, view: DecisionView, deciders: np.ndarray) -> np.ndarray:
        """Order of ``deciders``: by when they became idle (first seen idle by this planner), then index."""
        if self.idle_since is None or len(self.idle_since) != view.config.num_workers:
            self.idle_since = np.full(view.config.num_workers, np.nan)
        self.idle_since[view.worker_state != IDLE] = np.nan
        fresh = deciders[np.isnan(self.idle_since[deciders])]
        self.idle_since[fresh] = view.time
        return np.lexsort((deciders, self.idle_since[deciders]))

    def game(self, view: DecisionView, rows: np.ndarray) -> tuple[CoalitionGame, list[np.ndarray]]:
        """The coalition game of decider ``rows`` (in priority order) and each player's option slots."""
        c = view.config
        slots = [np.flatnonzero(view.option_mask[row]) for row in rows]
        chosen = [view.option_task[row, s] for row, s in zip(rows, slots)]
        candidates, local = np.unique(np.concatenate(chosen), return_inverse=True)
        busy = np.flatnonzero((view.worker_state != IDLE) & np.isin(view.worker_task, candidates))
        committed = [[] for _ in candidates]
        for task, start in zip(np.searchsorted(candidates, view.worker_task[busy]),
                               np.maximum(view.worker_arrival[busy], view.time)):
            committed[task].append(float(start))
        options, cursor = [], 0
        for row, s in zip(rows, slots):
            road = view.option_road[row, s]
            starts = view.time + road / c.speed_mps
            costs = self.travel_cost_per_km * road / 1000.0
            options.append(list(zip(local[cursor:cursor + len(s)].tolist(), starts.tolist(), costs.tolist())))
            cursor += len(s)
        game = CoalitionGame((view.remaining[candidates] * 60.0 / c.work_rate).tolist(),
                             view.rho_max[candidates].tolist(), view.expected[candidates].tolist(),
                             view.deadline[candidates].tolist(), view.zeta, committed, options)
        return game, slots

    def act(self, view: DecisionView, obs: dict) -> dict:
        if not obs:
            return {}
        rows = view.rows(obs)
        rows = rows[self._priority(view, view.deciders[rows])]
        game, slots = self.game(view, rows)
        choice = game.solve(self.rng, float(np.mean(game.rho)), self.alpha, self.iterations)
        return {view.agents[row]: 0 if pick == NONE else int(s[pick]) + 1
                for row, pick, s in zip(rows, choice, slots)}
