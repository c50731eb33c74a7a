"""Per-step facts of the CSC world's infos as numeric columns aligned with a module's train batch.

The world puts into every observed worker's infos the global state s_t and facts about the worker's
*previous* decision (envs.csc module docstring): its neighbours' actions, the revenue realised near it, and
the completions it contributed to (``events``). So the facts of the decision taken at agent step t are
read from the infos that came with the observation at t + 1, and s_t from those at t. Rows follow
RLlib's learner-batch order (``single_agent_episode_iterator(..., agents_that_stepped_only=False)``, one
row per step of each episode chunk, including the artificial bootstrap step that
``AddOneTsToEpisodesAndTruncate`` appended, which is marked ``valid = False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepFacts:
    """N rows (all steps of all episode chunks of one module); K = num_near_workers."""

    neighbour_actions: np.ndarray
    """(N, K) int: a W_near worker's task as a slot of this decision's option list (0 = none / other)."""
    neighbour_mask: np.ndarray
    """(N, K) bool: a worker is present in that W_near row."""
    near_revenue: np.ndarray
    """(N,) float: payments of tasks completed near the decision until the worker's next decision."""
    state: np.ndarray
    """(N, envs.csc_observation.STATE_FEATURES) float: global state s_t at the decision."""
    next_state: np.ndarray
    """(N, envs.csc_observation.STATE_FEATURES) float: global state at the worker's next observation."""
    segment: np.ndarray
    """(N,) int: index of the multi-agent episode chunk the row belongs to (a trajectory lambda, Eq. 6)."""
    episode: np.ndarray
    """(N,) int: index of the multi-agent episode the row belongs to (its chunks share it: RLlib's learner
    pipeline suffixes each chunk's id with "_<index>"); a task's contributors are found within it."""
    valid: np.ndarray
    """(N,) bool: a real decision (False for the appended bootstrap step)."""
    event_task: np.ndarray
    """(N, E) int: tasks completed with this decision's contribution (the world's ``events``, arriving with
    the next observation, as the decision's split payment does), -1 = none; E >= 1 is the most in any row."""
    event_weight: np.ndarray
    """(N, E) float: payment x work of each such completion (0 = none)."""


def episode_facts(single_agent_episodes, num_near_workers: int) -> StepFacts:
    """StepFacts of the given single-agent episode chunks (already extended by the bootstrap step)."""
    neighbours, revenue, states, next_states, segments, valid, events = [], [], [], [], [], [], []
    segment_of: dict[str, int] = {}
    episode_of: dict[str, int] = {}
    episode_ids = []
    for episode in single_agent_episodes:
        steps = len(episode)  # real steps + the bootstrap step
        infos = episode.get_infos()
        assert len(infos) == steps + 1, (len(infos), steps)
        if not all("state" in info for info in infos):
            raise ValueError("the episodes' infos carry no credit facts: build the CSC world with "
                             "env_config['credit_facts'] = True (rl_cs.experiment.shaping does)")
        after = infos[1:]  # facts of step t arrive with the observation at t + 1
        neighbours.append(np.stack([info["prev_neighbour_actions"] for info in after]))
        revenue.append(np.array([info["prev_near_revenue"] for info in after], dtype=np.float32))
        states.append(np.stack([info["state"] for info in infos[:-1]]))
        next_states.append(np.stack([info["state"] for info in after]))
        chunk = episode.multi_agent_episode_id or episode.id_
        segment = segment_of.setdefault(chunk, len(segment_of))
        segments.append(np.full(steps, segment))
        episode_ids.append(np.full(steps, episode_of.setdefault(chunk.split("_")[0], len(episode_of))))
        valid.append(np.arange(steps) < steps - 1)
        # the bootstrap row's "next" infos repeat the last real ones: its events are not its own
        events.extend(info.get("events", []) if t < steps - 1 else [] for t, info in enumerate(after))
    neighbour_actions = np.concatenate(neighbours).astype(np.int64)
    assert neighbour_actions.shape[1] == num_near_workers, neighbour_actions.shape
    width = max([len(e) for e in events] + [1])
    event_task = np.full((len(events), width), -1, dtype=np.int64)
    event_weight = np.zeros((len(events), width), dtype=np.float32)
    for row, completions in enumerate(events):
        for slot, event in enumerate(completions):
            event_task[row, slot] = event["task"]
            event_weight[row, slot] = event["payment"] * event["work"]
    return StepFacts(
        neighbour_actions=np.maximum(neighbour_actions, 0), neighbour_mask=neighbour_actions >= 0,
        near_revenue=np.concatenate(revenue), state=np.concatenate(states).astype(np.float32),
        next_state=np.concatenate(next_states).astype(np.float32), segment=np.concatenate(segments),
        episode=np.concatenate(episode_ids),
        valid=np.concatenate(valid), event_task=event_task, event_weight=event_weight)
