"""World conformance suite: does an RLlib MultiAgentEnv keep the contracts RLlib and PettingZoo rely on?

``check_world(make_env, ...)`` runs each check on fresh envs from ``make_env`` and returns one ``CheckResult``
per check, in this order (every check catches its own exceptions: a crash is a failed check whose detail names
the exception, its message and the frame that raised it):

1. ``pettingzoo_parallel_api``: PettingZoo's ``parallel_api_test`` on ``envs.pettingzoo_view.ParallelView``.
2. ``rllib_env_checker``: RLlib's ``check_multiagent_environments`` (one reset and one step), then a full
   seeded episode replayed into RLlib's ``MultiAgentEpisode`` as the EnvRunner does, which raises on what the
   checker never sees (data for an agent already done, a truncated agent that acted without a last
   observation, an observed agent that acted without a reward).
3. ``seeded_determinism``: two fresh envs, same seed, same seeded actions: identical observations (and their
   order), rewards, terminateds, truncateds and the numeric leaves of infos over a full episode; then the
   first env, reset with the same seed after its episode, must replay it too (RLlib reuses envs).
4. ``action_mask``: every mask allows some action and masked actions are accepted (and, for worlds with
   ``episode_metrics()["invalid_actions"]``, not counted invalid); then, in a second episode, one agent per
   step takes an action outside its mask and the world must still step.
5. ``spaces_contain``: every observation is in its agent's observation space, every action in its action space.
6. ``agents_come_and_go`` (when declared): agents appear and leave mid-episode, no id comes back after leaving,
   every reward the world pays reaches an agent through ParallelView, and ``__all__`` is sent every step.

Actions are drawn from a ``numpy`` generator seeded with ``seed`` (uniformly among allowed actions when
``action_mask`` is given; ``action_mask(env, agent, obs)`` returns a boolean array over a Discrete action
space). Episodes are capped at ``max_steps`` steps; details say when a cap was hit.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from envs.pettingzoo_view import ParallelView

CHECKS = ("pettingzoo_parallel_api", "rllib_env_checker", "seeded_determinism", "action_mask", "spaces_contain",
          "agents_come_and_go")

ActionMask = Callable[[Any, str, Any], np.ndarray]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    """What was checked (passed) or what failed, one or two lines."""


class CheckFailed(Exception):
    """Raised inside a check to fail it with a prepared detail (no traceback in the detail)."""


# ---------------------------------------------------------------------------------------------- helpers
def _crash_detail(error: BaseException) -> str:
    def one(e: BaseException) -> str:
        frames = traceback.extract_tb(e.__traceback__)
        where = ""
        if frames:
            f = frames[-1]
            where = f" at {f.filename.rsplit('/', 2)[-1] if '/' in f.filename else f.filename}:{f.lineno} in " \
                    f"{f.name}: {(f.line or '').strip()[:100]}"
        message = str(e).replace("\n", " ")
        message = message if len(message) <= 300 else message[:297] + "..."
        return f"{type(e).__name__}: {message}{where}"

    detail = "crashed: " + one(error)
    cause = error.__cause__ or error.__context__
    if cause is not None and not isinstance(error, CheckFailed):
        detail += "; caused by " + one(cause)
    return detail


def _space(env, agent, kind: str) -> gym.Space:
    getter = getattr(env, f"get_{kind}_space", None)
    return getter(agent) if getter else getattr(env, f"{kind}_spaces")[agent]


def _mask(action_mask: ActionMask, env, agent, obs, where: str) -> np.ndarray:
    space = _space(env, agent, "action")
    if not isinstance(space, gym.spaces.Discrete):
        raise CheckFailed(f"{where}: action masks are supported for Discrete action spaces only, got {space}")
    mask = np.asarray(action_mask(env, agent, obs)).astype(bool)
    if mask.shape != (int(space.n),):
        raise CheckFailed(f"{where}: mask of {agent} has shape {mask.shape}, action space {space} needs ({space.n},)")
    return mask


class _Policy:
    """Seeded random actions, uniformly among allowed ones when a mask is declared."""

    def __init__(self, seed: int, action_mask: ActionMask | None):
        self.rng = np.random.default_rng(seed)
        self.action_mask = action_mask

    def __call__(self, env, agent, obs, where: str = ""):
        space = _space(env, agent, "action")
        if self.action_mask is not None:
            mask = _mask(self.action_mask, env, agent, obs, where)
            allowed = np.flatnonzero(mask)
            if len(allowed) == 0:
                raise CheckFailed(f"{where}: the action mask of {agent} allows no action")
            return np.int64(space.start + self.rng.choice(allowed))
        space.seed(int(self.rng.integers(2 ** 31 - 1)))
        return space.sample()


@dataclass
class _Step:
    t: int
    actions: dict | None  # None at reset
    obs: dict
    rewards: dict
    terminateds: dict
    truncateds: dict
    infos: dict

    @property
    def over(self) -> bool:
        return bool(self.terminateds.get("__all__", False) or self.truncateds.get("__all__", False))


def _rollout(env, seed: int, choose: Callable[[int, str, Any], Any], max_steps: int) -> Iterator[_Step]:
    """reset(seed) then step until ``__all__`` or ``max_steps``; ``choose(t, agent, obs)`` gives each action."""
    obs, infos = env.reset(seed=seed)
    yield _Step(0, None, obs, {}, {}, {}, infos)
    done: set = set()
    for t in range(1, max_steps + 1):
        # like RLlib's EnvRunner: observed agents act, except those whose observation was their last
        actions = {agent: choose(t, agent, o) for agent, o in obs.items() if agent not in done}
        obs, rewards, terminateds, truncateds, infos = env.step(actions)
        done = {agent for flags in (terminateds, truncateds) for agent, flag in flags.items() if flag}
        step = _Step(t, actions, obs, rewards, terminateds, truncateds, infos)
        yield step
        if step.over:
            return


def _ending(last: _Step, max_steps: int) -> str:
    if last.over:
        how = "terminated" if last.terminateds.get("__all__") else "truncated"
        return f"episode {how} (__all__) after {last.t} steps"
    return f"episode CAPPED at max_steps={max_steps} before __all__"


def _is_number(x) -> bool:
    return isinstance(x, (bool, int, float, np.number, np.bool_)) or (isinstance(x, np.ndarray) and x.dtype.kind in "biuf")


def _numeric_leaves(x, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(x, dict):
        return [leaf for key in x for leaf in _numeric_leaves(x[key], f"{path}/{key}")]
    if isinstance(x, (list, tuple)):
        return [leaf for i, v in enumerate(x) for leaf in _numeric_leaves(v, f"{path}[{i}]")]
    return [(path, x)] if _is_number(x) else []


def _difference(a, b) -> str | None:
    """None when ``a`` and ``b`` are identical (structure, dtype, values; NaN equals NaN), else why not."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or list(a) != list(b):
            return f"keys {list(a) if isinstance(a, dict) else type(a).__name__} vs " \
                   f"{list(b) if isinstance(b, dict) else type(b).__name__}"
        for key in a:
            why = _difference(a[key], b[key])
            if why:
                return f"[{key!r}] {why}"
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            why = _difference(x, y)
            if why:
                return f"[{i}] {why}"
        return None
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.dtype != y.dtype:
        return f"shape/dtype {x.shape} {x.dtype} vs {y.shape} {y.dtype}"
    if x.dtype.kind in "biufc":
        same = np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
        if not same:
            diff = np.abs(x.astype(np.float64) - y.astype(np.float64)).ravel()
            i = int(np.nanargmax(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0
            return f"values differ (first run {x.ravel()[i]}, second {y.ravel()[i]} at flat index {i})"
        return None
    return None if bool(np.all(x == y)) else f"{a!r:.60} vs {b!r:.60}"


def _why_not_in(space: gym.Space, value) -> str:
    if isinstance(space, gym.spaces.Dict) and isinstance(value, dict):
        for key, sub in space.spaces.items():
            if key not in value:
                return f"key {key!r} missing"
            if not sub.contains(value[key]):
                return f"[{key!r}] {_why_not_in(sub, value[key])}"
        return f"keys {sorted(value)} vs {sorted(space.spaces)}"
    if isinstance(space, gym.spaces.Box):
        if not isinstance(value, np.ndarray):
            return f"a {type(value).__name__}, not a numpy array"
        if value.shape != space.shape:
            return f"shape {value.shape}, space wants {space.shape}"
        if not np.can_cast(value.dtype, space.dtype):
            return f"dtype {value.dtype} does not cast safely to the space's {space.dtype}"
        bad = ~((value >= space.low) & (value <= space.high))
        if bad.any():
            i = tuple(int(k) for k in np.argwhere(bad)[0])
            return f"entry {i} = {value[i]} outside [{space.low[i]}, {space.high[i]}] ({int(bad.sum())} entries out)"
    return f"{value!r:.80} not in {space}"


def _float(x) -> float:
    return float(np.asarray(x, dtype=np.float64))


# ---------------------------------------------------------------------------------------------- the checks
def _check_pettingzoo(make_env, max_steps: int, **_) -> str:
    from pettingzoo.test import parallel_api_test

    view = ParallelView(make_env())
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        parallel_api_test(view, num_cycles=max_steps)
    messages = sorted({str(w.message).splitlines()[0][:80] for w in caught
                       if "pettingzoo" in (w.filename or "") or "parallel_test" in (w.filename or "")})
    note = f"; PettingZoo warned: {'; '.join(messages[:3])}" if messages else ", no PettingZoo warnings"
    return f"parallel_api_test(ParallelView(env), num_cycles={max_steps}) passed{note}"


def _check_rllib(make_env, seed: int, max_steps: int, action_mask, **_) -> str:
    from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
    from ray.rllib.utils.error import MultiAgentEnvError
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    env = make_env()
    if not hasattr(env, "_agent_ids"):
        raise CheckFailed("the env lacks MultiAgentEnv's base attributes (super().__init__() not called?): "
                          "RLlib's checker would skip it with only a log warning")
    for agent in env.possible_agents:  # the checker samples its one step's actions: make that reproducible
        _space(env, agent, "action").seed(seed)
    try:
        check_multiagent_environments(env)
    except ValueError as error:
        raise CheckFailed("RLlib's check_multiagent_environments: " + _crash_detail(error)[len("crashed: "):])

    env = make_env()
    episode = MultiAgentEpisode(
        observation_space={a: _space(env, a, "observation") for a in env.possible_agents},
        action_space={a: _space(env, a, "action") for a in env.possible_agents})
    policy = _Policy(seed, action_mask)
    last = None
    for step in _rollout(env, seed, lambda t, a, o: policy(env, a, o, f"step {t}"), max_steps):
        try:
            if step.actions is None:
                episode.add_env_reset(observations=step.obs, infos=step.infos)
            else:
                episode.add_env_step(step.obs, step.actions, step.rewards, step.infos,
                                     terminateds=step.terminateds, truncateds=step.truncateds)
        except MultiAgentEnvError as error:
            raise CheckFailed(f"RLlib's MultiAgentEpisode rejects step {step.t}: {str(error)[:300]}")
        last = step
    episode.validate()
    return (f"check_multiagent_environments passed; {_ending(last, max_steps)} replayed into MultiAgentEpisode "
            f"without error ({len(episode.agent_episodes)} agents stepped)")


def _compare_runs(first: Iterator[_Step], second: Iterator[_Step], seed: int, what_runs: str) -> list[_Step]:
    """Step two runs in lockstep; fail at the first difference. Returns the first run's steps."""
    steps: list[_Step] = []
    while True:
        a, b = next(first, None), next(second, None)
        if a is None and b is None:
            return steps
        if a is None or b is None:
            raise CheckFailed(f"{what_runs}, seed {seed}: one run ended after step {steps[-1].t if steps else 0}, "
                              "the other did not")
        where = "reset" if a.actions is None else f"step {a.t}"
        for name in ("obs", "rewards", "terminateds", "truncateds"):
            why = _difference(getattr(a, name), getattr(b, name))
            if why:
                raise CheckFailed(f"{what_runs}, seed {seed}, same actions: {name} differ at {where}: {why}")
        why = _difference(_numeric_leaves(a.infos), _numeric_leaves(b.infos))
        if why:
            raise CheckFailed(f"{what_runs}, seed {seed}, same actions: numeric infos differ at {where}: {why}")
        steps.append(copy.deepcopy(a))  # a world may reuse its arrays; the reused-env run compares to these


def _check_determinism(make_env, seed: int, max_steps: int, action_mask, **_) -> str:
    def run(env):
        policy = _Policy(seed, action_mask)
        return _rollout(env, seed, lambda t, a, o: policy(env, a, o, f"step {t}"), max_steps)

    first_env = make_env()
    steps = _compare_runs(run(first_env), run(make_env()), seed, "two fresh envs")
    # RLlib reuses an env across episodes: reset(seed) must also reproduce the episode on a used env
    _compare_runs(iter(steps), run(first_env), seed, "the first env reset again after its episode")
    return (f"two fresh envs and a reused one, seed {seed}: identical obs, rewards, dones, numeric infos; "
            f"{_ending(steps[-1], max_steps)}")


def _check_action_mask(make_env, seed: int, max_steps: int, action_mask, **_) -> str:
    if action_mask is None:
        return "no action mask declared"

    def invalid_count(env) -> float | None:
        metrics = env.episode_metrics() if callable(getattr(env, "episode_metrics", None)) else None
        return _float(metrics["invalid_actions"]) if isinstance(metrics, dict) and "invalid_actions" in metrics \
            else None

    env, policy, masks = make_env(), _Policy(seed, action_mask), 0

    def masked(t, agent, obs):
        nonlocal masks
        masks += 1
        return policy(env, agent, obs, f"episode 1 step {t}")

    last = None
    for last in _rollout(env, seed, masked, max_steps):
        pass
    invalid = invalid_count(env)
    if invalid:
        raise CheckFailed(f"{masks} actions drawn from masks, but the world counted {invalid:.0f} invalid actions "
                          "(episode_metrics()['invalid_actions']): mask and world disagree")
    first = f"{masks} masks non-empty and accepted over {last.t} steps"

    env, rng, outside = make_env(), np.random.default_rng(seed + 1), 0

    def one_outside(t, agent, obs):
        nonlocal outside, current
        current = t
        mask = _mask(action_mask, env, agent, obs, f"episode 2 step {t}")
        if chosen.get(t) is None and not mask.all():
            chosen[t] = agent
            outside += 1
            return np.int64(_space(env, agent, "action").start + rng.choice(np.flatnonzero(~mask)))
        return np.int64(_space(env, agent, "action").start + rng.choice(np.flatnonzero(mask)))

    chosen: dict = {}
    current = 0
    try:
        for step in _rollout(env, seed, one_outside, max_steps):
            for name in ("obs", "rewards", "terminateds", "truncateds", "infos"):
                if not isinstance(getattr(step, name), dict):
                    raise CheckFailed(f"episode 2 step {step.t} (after an out-of-mask action): {name} is "
                                      f"{type(getattr(step, name)).__name__}, not a dict")
            last = step
    except (CheckFailed, KeyboardInterrupt):
        raise
    except Exception as error:
        what = (f"an out-of-mask action for {chosen[current]} crashed the world" if current in chosen
                else "the world crashed (no out-of-mask action this step)")
        raise CheckFailed(f"episode 2 step {current}: {what}: " + _crash_detail(error)[len("crashed: "):]) from error
    invalid = invalid_count(env)
    counted = f", world counted {invalid:.0f} invalid" if invalid is not None else ""
    if outside == 0:
        return first + "; no mask ever excluded an action, so out-of-mask handling was not exercised"
    return first + f"; {outside} out-of-mask actions (one per step, {last.t} steps) handled without error{counted}"


def _check_spaces(make_env, seed: int, max_steps: int, action_mask, **_) -> str:
    env, policy = make_env(), _Policy(seed, action_mask)
    observations = actions = 0
    last = None
    for step in _rollout(env, seed, lambda t, a, o: policy(env, a, o, f"step {t}"), max_steps):
        where = "reset" if step.actions is None else f"step {step.t}"
        for agent, action in (step.actions or {}).items():
            space = _space(env, agent, "action")
            if not space.contains(action):
                raise CheckFailed(f"{where}: action of {agent} not in {space}: {_why_not_in(space, action)}")
            actions += 1
        for agent, obs in step.obs.items():
            if agent not in env.possible_agents:
                raise CheckFailed(f"{where}: observation for {agent!r}, which is not in possible_agents")
            space = _space(env, agent, "observation")
            if not space.contains(obs):
                raise CheckFailed(f"{where}: observation of {agent} not in its space {space}: {_why_not_in(space, obs)}")
            observations += 1
        last = step
    return f"{observations} observations and {actions} actions in their spaces; {_ending(last, max_steps)}"


class _Recorder:
    """Forwards everything to ``env``; keeps the world's own reset and step returns."""

    def __init__(self, env):
        self.env = env
        self.steps: list[_Step] = []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, *, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self.steps = [_Step(0, None, obs, {}, {}, {}, infos)]
        return obs, infos

    def step(self, actions):
        result = self.env.step(actions)
        self.steps.append(_Step(len(self.steps), dict(actions), *result))
        return result


def _come_and_go_report(steps: list[_Step], possible: list) -> tuple[list[str], dict, dict]:
    """Problems in the world's own stream, with first appearance and leaving step per agent."""
    problems, first_seen, left = [], {}, {}
    for step in steps:
        for agent in step.obs:
            if agent in left:
                problems.append(f"id {agent!r} reused: left at step {left[agent]}, observed again at step {step.t}")
            first_seen.setdefault(agent, step.t)
            if agent not in possible:
                problems.append(f"{agent!r} observed at step {step.t} is not in possible_agents")
        for agent, reward in step.rewards.items():
            if agent in left and agent != "__all__" and _float(reward) != 0.0:
                problems.append(f"reward {_float(reward):.6g} for {agent!r} at step {step.t}, after it left at step "
                                f"{left[agent]}: lost (PettingZoo has no live agent to deliver it to)")
        if step.actions is not None and "__all__" not in step.terminateds:
            problems.append(f"step {step.t}: terminateds has no '__all__' key")
        for flags in (step.terminateds, step.truncateds):
            for agent, flag in flags.items():
                if agent != "__all__" and flag and agent not in left:
                    left[agent] = step.t
    return problems, first_seen, left


def _check_come_and_go(make_env, seed: int, max_steps: int, action_mask, agents_come_and_go: bool, **_) -> str:
    if not agents_come_and_go:
        return "not declared (agents_come_and_go=False): skipped"
    recorder = _Recorder(make_env())
    view = ParallelView(recorder)
    policy = _Policy(seed, action_mask)
    delivered: dict = {}
    crash = None
    try:
        obs, infos = view.reset(seed=seed)
        for t in range(1, max_steps + 1):
            # every live agent answers, as PettingZoo users do; the view forwards only acting agents' actions
            actions = {agent: policy(recorder.env, agent, obs[agent], f"step {t}") for agent in view.agents}
            obs, rewards, terminateds, truncateds, infos = view.step(actions)
            for agent, reward in rewards.items():
                delivered[agent] = delivered.get(agent, 0.0) + _float(reward)
            if recorder.steps[-1].over:
                break
    except CheckFailed:
        raise
    except Exception as error:  # diagnose from the world's stream first: a reused id makes the view raise
        crash = error
    steps = recorder.steps
    problems, first_seen, left = _come_and_go_report(steps, list(recorder.env.possible_agents))
    if problems:
        raise CheckFailed("; ".join(problems[:2]) + (f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""))
    if crash is not None:
        raise crash
    paid: dict = {}
    for step in steps:
        for agent, reward in step.rewards.items():
            if agent != "__all__":
                paid[agent] = paid.get(agent, 0.0) + _float(reward)
    lost = []
    for agent in sorted(set(paid) | set(delivered), key=str):
        world, seen = paid.get(agent, 0.0), delivered.get(agent, 0.0)
        if not math.isclose(world, seen, rel_tol=1e-9, abs_tol=1e-9):
            why = " (never observed)" if agent not in first_seen else ""
            lost.append(f"{agent}: world paid {world:.6g}, ParallelView delivered {seen:.6g}{why}")
    if lost:
        raise CheckFailed("rewards lost: " + "; ".join(lost[:3]) + (f" (+{len(lost) - 3} more)" if len(lost) > 3 else ""))
    last = steps[-1]
    if not last.over:
        raise CheckFailed(f"no __all__ within max_steps={max_steps} steps: cannot confirm the episode ends")
    joined = sorted((a for a, t in first_seen.items() if t > 0), key=str)
    quit_early = sorted((a for a, t in left.items() if t < last.t), key=str)
    if not joined or not quit_early:
        raise CheckFailed(f"declared agents_come_and_go, but over {last.t} steps "
                          f"{'no agent appeared after reset' if not joined else 'no agent left before the end'}")
    return (f"{len(joined)} agents appeared and {len(quit_early)} left mid-episode, no id reused; all rewards "
            f"({sum(paid.values()):.6g} in total) delivered through ParallelView; {_ending(last, max_steps)}")


_RUNNERS = {
    "pettingzoo_parallel_api": (_check_pettingzoo, "PettingZoo parallel_api_test on ParallelView"),
    "rllib_env_checker": (_check_rllib, "RLlib check_multiagent_environments + MultiAgentEpisode replay"),
    "seeded_determinism": (_check_determinism, "two envs, same seed, same actions, full episode"),
    "action_mask": (_check_action_mask, "masks non-empty, masked actions accepted, out-of-mask actions survived"),
    "spaces_contain": (_check_spaces, "observations and actions in their spaces"),
    "agents_come_and_go": (_check_come_and_go, "agents appear/leave, no reused id, no lost reward, __all__ sent"),
}


def check_world(make_env: Callable[[], Any], *, action_mask: ActionMask | None = None,
                agents_come_and_go: bool = False, seed: int = 0, max_steps: int = 2000,
                progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run every check (module docstring) on fresh envs from ``make_env``; never raises for a world's fault."""
    results = []
    for index, name in enumerate(CHECKS, 1):
        runner, what = _RUNNERS[name]
        if progress is not None:
            progress(f"[{index}/{len(CHECKS)}] {name}: {what}")
        try:
            detail = runner(make_env, seed=seed, max_steps=max_steps, action_mask=action_mask,
                            agents_come_and_go=agents_come_and_go)
            results.append(CheckResult(name, True, detail))
        except CheckFailed as failure:
            results.append(CheckResult(name, False, str(failure)))
        except Exception as error:
            results.append(CheckResult(name, False, _crash_detail(error)))
    return results
