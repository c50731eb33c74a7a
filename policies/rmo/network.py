"""RMO's recommendation network (paper 001, "Recommendation Network", Fig. 3) as an RLlib RLModule.

Actor (shared by every subtask agent, MAPPO): a graph attention network -- two PyTorch Geometric ``GATConv``
layers -- over the subtask's task DAG (node features: status, times, position, skills; edges: the
dependencies, both directions, plus GATConv's self-loops), whose output at the agent's own node is joined
with the agent's own features and its top-k nearest feasible workers and top-k nearest ready subtasks
(N^w = N^tau = 5, Table 1) and fed to an MLP giving the logits of {0: not recommend, 1: recommend}.

Critic (centralised, learner only): two GRUs, one over a worker sequence and one over a subtask sequence,
and an MLP over their final states, the agent's own features and the world's global state s_t
(envs.dasc.DASCEnv.global_state: time, idle / ready / assigned / finished shares, revenue so far, skill
supply and demand per category). The sequences are the agent-specific part of MAPPO's global state (Yu et al.
2022): the nearest feasible idle workers, and the task's DAG nodes followed by the nearest ready subtasks.
It has two heads: V(s) for the sparse reward (theta's MDP) and V(s) for the shaped reward (theta-hat's MDP,
Eq. 3), the one value network phi of Algorithm 1 trained on both by Eq. 20.

The acting module (theta) also holds the matching stage's eta = {alpha, beta} (Eq. 13) as a buffer, so the
meta-learned eta travels with its weights to the env runners (``configure_env`` sets it on a world before an
episode), into every checkpoint and into policy_weights.pt, and an evaluation uses the trained eta; with it
the matching rule the policy was trained with (``km`` for RMO, ``greedy`` for REC).
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn
from torch_geometric.nn import GATConv

from envs.dasc_observation import NODE_NAMES, DASCObsLayout

STATE = "rmo_state"
"""Batch column: the world's global state s_t at each row's observation (from the infos)."""
VALUES = "rmo_values"
"""Batch column: both critic heads on every row, computed without gradient by policies.rmo.connector before
GAE; ``compute_values`` (RLlib's GAE) reuses it instead of a second critic pass."""
IS_SELF = NODE_NAMES.index("is_self")


def dag_edges(adjacency: torch.Tensor) -> torch.Tensor:
    """(2, E) edge index of a batch of padded DAGs (B, m, m), a[i, j] = 1 when i precedes j: every
    dependency in both directions, node b * m + i."""
    batch, rows, cols = (adjacency > 0.5).nonzero(as_tuple=True)
    m = adjacency.shape[1]
    src, dst = batch * m + rows, batch * m + cols
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


class GraphActor(nn.Module):
    """obs -> logits (B, 2): GATConv x 2 over the DAG, then an MLP with the own features and the top-k rows."""

    def __init__(self, layout: DASCObsLayout, gat_hidden: int, gat_heads: int, gat_out: int, mlp_hidden: int):
        super().__init__()
        self.layout = layout
        shapes = dict(layout.parts)
        node_features = shapes["dag_nodes"][1]
        self.gat1 = GATConv(node_features, gat_hidden, heads=gat_heads)
        self.gat2 = GATConv(gat_hidden * gat_heads, gat_out, heads=1)
        width = (gat_out + shapes["self"][0] + layout.num_near_workers * (shapes["workers"][1] + 1)
                 + layout.num_near_subtasks * (shapes["subtasks"][1] + 1))
        self.mlp = nn.Sequential(nn.Linear(width, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, mlp_hidden // 2),
                                 nn.ReLU(), nn.Linear(mlp_hidden // 2, 2))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        parts = self.layout.split(obs)
        nodes = parts["dag_nodes"]
        b, m, f = nodes.shape
        edges = dag_edges(parts["adjacency"])
        h = torch.nn.functional.elu(self.gat1(nodes.reshape(b * m, f), edges))
        h = self.gat2(h, edges).reshape(b, m, -1)
        own = h[torch.arange(b, device=obs.device), nodes[..., IS_SELF].argmax(dim=1)]
        rows = [own, parts["self"], parts["workers"].reshape(b, -1), parts["worker_mask"],
                parts["subtasks"].reshape(b, -1), parts["subtask_mask"]]
        return self.mlp(torch.cat(rows, dim=-1))


class SequenceCritic(nn.Module):
    """(obs, s_t) -> (B, 2) values [sparse, shaped]: GRU over workers, GRU over subtasks, MLP (Fig. 3)."""

    def __init__(self, layout: DASCObsLayout, state_size: int, hidden: int):
        super().__init__()
        self.layout = layout
        shapes = dict(layout.parts)
        self.workers = nn.GRU(shapes["workers"][1] + 1, hidden, batch_first=True)
        self.dag_rows = nn.Linear(shapes["dag_nodes"][1] + 1, hidden)
        self.near_rows = nn.Linear(shapes["subtasks"][1] + 1, hidden)
        self.subtasks = nn.GRU(hidden, hidden, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden + shapes["self"][0] + state_size, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        p = self.layout.split(obs)
        # nearest last, so the GRU's final state weighs it most
        workers = torch.cat([p["workers"], p["worker_mask"].unsqueeze(-1)], dim=-1).flip(1)
        _, h_workers = self.workers(workers)
        dag = torch.relu(self.dag_rows(torch.cat([p["dag_nodes"], p["dag_mask"].unsqueeze(-1)], dim=-1)))
        near = torch.relu(self.near_rows(torch.cat([p["subtasks"], p["subtask_mask"].unsqueeze(-1)], dim=-1)))
        _, h_subtasks = self.subtasks(torch.cat([dag, near.flip(1)], dim=1))
        return self.mlp(torch.cat([h_workers[-1], h_subtasks[-1], p["self"], state.to(obs.dtype)], dim=-1))


class RMOActorCritic(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """model_config: ``layout`` (DASCObsLayout fields), ``state_size`` (global state width), ``network``
    (RMOConfig's gat_hidden, gat_heads, gat_out, mlp_hidden, gru_hidden), ``critic`` (bool: theta has the
    critic, theta-hat has none), ``eta`` ([alpha, beta], the initial eta) and ``matching`` ("km" | "greedy")."""

    def setup(self):
        config = self.model_config
        self.layout = DASCObsLayout(**config["layout"])
        net = config["network"]
        self.actor = GraphActor(self.layout, net["gat_hidden"], net["gat_heads"], net["gat_out"], net["mlp_hidden"])
        self.register_buffer("eta", torch.tensor([float(v) for v in config.get("eta", (0.5, 0.5))]))
        self.register_buffer("iterations", torch.zeros(()))  # training iterations done: xi's schedule (Eq. 8)
        self.has_critic = bool(config.get("critic", True)) and not self.inference_only
        if self.has_critic:
            self.critic = SequenceCritic(self.layout, int(config["state_size"]), net["gru_hidden"])

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic"]

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.actor(batch[Columns.OBS])}

    def values(self, batch) -> torch.Tensor:
        """(N, 2): [V_sparse, V_shaped] of the batch's rows (needs the STATE column)."""
        if STATE not in batch:
            raise KeyError(f"the critic needs the '{STATE}' column (policies.rmo.connector adds it from the infos)")
        return self.critic(batch[Columns.OBS], batch[STATE])

    def compute_values(self, batch, embeddings=None):
        """V for the sparse reward: what RLlib's GAE uses for theta's advantages (no gradient there)."""
        if VALUES in batch:
            return batch[VALUES][:, 0]
        return self.values(batch)[:, 0]

    def configure_env(self, env) -> None:
        """Give a DASC world this policy's matching stage: its eta (Eq. 13) and matching rule."""
        env.set_eta(float(self.eta[0].clamp(0, 1)), float(self.eta[1].clamp(0, 1)))
        env.set_matching(self.model_config.get("matching", "km"))
