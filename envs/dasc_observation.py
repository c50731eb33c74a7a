"""Flat observation layout of the DASC world: a subtask agent's (q, T^near, W^near) of RMO's MDP section,
with its task's DAG for the graph attention network (Fig. 3).

One float32 vector per agent, in this order (``DASCObsLayout.split`` returns views of each part):

1. ``self`` (SELF_FEATURES + categories): the subtask itself (SELF_NAMES, then its skill flags).
2. ``dag_nodes`` (|T|_max x NODE_FEATURES): every subtask of its task (NODE_NAMES), padded; ``dag_mask``
   (|T|_max): which rows are subtasks; ``adjacency`` (|T|_max x |T|_max): a[i, j] = 1 when i precedes j.
3. ``workers`` (N^w x WORKER_FEATURES): the nearest feasible idle workers by road (WORKER_NAMES);
   ``worker_mask`` (N^w).
4. ``subtasks`` (N^tau x SUBTASK_FEATURES): the nearest other ready subtasks of any task (SUBTASK_NAMES);
   ``subtask_mask`` (N^tau).

Times are divided by TIME_SCALE_S, relative positions and distances by the range L^w.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIME_SCALE_S = 600.0
SELF_NAMES = ("x", "y", "duration", "expected_slack", "deadline_slack", "u_time", "feasible_workers",
              "task_finished_share", "payment_share", "task_size", "descendants", "position_in_dag",
              "failed_recommendations", "time", "predecessor_wait")
"""x, y (/city extent); duration, t_e - t, t_d - t (/TIME_SCALE_S); u_time (Eq. 11); feasible idle workers
(/10); finished share of its task; rho / |T| (/the stream's mean); |T| and descendants (/|T|_max); its row in
the DAG block (/|T|_max); its failed recommendations (/5); time (/max_episode_s); how long until its last
predecessor finishes (/TIME_SCALE_S; 0 unless early matching, world.ready_when = assigned). Then one flag
per skill."""
NODE_NAMES = ("waiting", "ready", "assigned", "finished", "is_self", "duration", "expected_slack",
              "deadline_slack", "dx", "dy", "skills")
"""Status one-hot (waiting for predecessors, ready, assigned, finished); is this agent; duration, t_e - t,
t_d - t (/TIME_SCALE_S); position relative to this subtask (/L^w); skill count (/max skills per subtask)."""
WORKER_NAMES = ("dx", "dy", "road", "skills", "u_skill", "u_dist", "slack")
"""Position relative to the subtask and road distance (/L^w); skill count (/categories); Eq. 9 and 10
utilities of the pair; t_d^tau minus the pair's finish time (/TIME_SCALE_S)."""
SUBTASK_NAMES = ("dx", "dy", "distance", "skills", "duration", "deadline_slack", "same_task", "feasible_workers")
"""Relative position and straight-line distance (/L^w); skill count (/max per subtask); duration and
t_d - t (/TIME_SCALE_S); whether it belongs to the same task; its feasible idle workers (/10)."""
SELF_FEATURES, NODE_FEATURES = len(SELF_NAMES), len(NODE_NAMES)
WORKER_FEATURES, SUBTASK_FEATURES = len(WORKER_NAMES), len(SUBTASK_NAMES)


@dataclass(frozen=True)
class DASCObsLayout:
    categories: int
    max_subtasks: int
    num_near_workers: int
    num_near_subtasks: int

    @property
    def parts(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape per agent) of every part, in vector order."""
        m = self.max_subtasks
        return [("self", (SELF_FEATURES + self.categories,)), ("dag_nodes", (m, NODE_FEATURES)), ("dag_mask", (m,)),
                ("adjacency", (m, m)), ("workers", (self.num_near_workers, WORKER_FEATURES)),
                ("worker_mask", (self.num_near_workers,)), ("subtasks", (self.num_near_subtasks, SUBTASK_FEATURES)),
                ("subtask_mask", (self.num_near_subtasks,))]

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.parts)

    def split(self, obs) -> dict:
        """Views of a (B, size) array or tensor, one per part, shaped (B, *part shape)."""
        out, cursor = {}, 0
        for name, shape in self.parts:
            width = int(np.prod(shape))
            out[name] = obs[:, cursor:cursor + width].reshape(-1, *shape)
            cursor += width
        return out

    def to_dict(self) -> dict:
        return dict(categories=self.categories, max_subtasks=self.max_subtasks,
                    num_near_workers=self.num_near_workers, num_near_subtasks=self.num_near_subtasks)
