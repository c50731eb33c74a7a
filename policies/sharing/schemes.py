"""Agent -> module mappings of the sharing methods (RLlib's ``policy_mapping_fn``: called once per agent per
episode by ``MultiAgentEpisode.module_for`` and cached for the episode; also called with ``episode=None`` or
an empty episode while RLlib infers spaces, which gets a fallback).

Fixed mappings read only the agent id. Group mappings (SePS, DyPS) read the episode's group assignment,
``episode.custom_data[GROUPS]`` (one group index per agent, in agent order), written at the episode's
creation -- before the env's reset, hence before any ``module_for`` call -- by the method's callback
(``on_episode_created``); the assignment is therefore fixed for the whole episode, and may change from one
episode to the next.
"""

from __future__ import annotations

SHARED = "shared"
"""The one module of PS and PS-id (the name rl_cs.evaluation uses for a single shared policy)."""
GROUPS = "groups"
"""Key of the per-episode group assignment in ``episode.custom_data``."""


def agent_index(agent_id: str) -> int:
    """``agent_3`` -> 3 (the package worlds' ids, envs.gridworld)."""
    return int(str(agent_id).rsplit("_", 1)[1])


def group_module(group: int) -> str:
    return f"group_{int(group)}"


def agent_module(agent: int) -> str:
    return f"agent_{int(agent)}"


def shared_mapping(agent_id, episode=None, **kwargs) -> str:
    """PS, PS-id: every agent -> ``shared``."""
    return SHARED


def per_agent_mapping(agent_id, episode=None, **kwargs) -> str:
    """NoPS, PSA: agent i -> its own module ``agent_<i>``."""
    return agent_module(agent_index(agent_id))


def group_mapping(agent_id, episode=None, **kwargs) -> str:
    """SePS, DyPS: agent i -> ``group_<g_i>`` with g the episode's assignment; ``group_0`` when there is none
    (RLlib's space inference, a SePS run still pre-sampling)."""
    groups = getattr(episode, "custom_data", {}).get(GROUPS) if episode is not None else None
    if groups is None:
        return group_module(0)
    return group_module(groups[agent_index(agent_id)])


def policy_modules(scheme: str, num_agents: int, num_groups: int = 1) -> list[str]:
    """The policy module ids of a scheme (modules agents act through; helper modules come on top)."""
    if scheme in ("ps", "ps-id"):
        return [SHARED]
    if scheme in ("nops", "psa"):
        return [agent_module(i) for i in range(num_agents)]
    if scheme in ("seps", "dyps"):
        return [group_module(g) for g in range(num_groups)]
    raise ValueError(f"unknown sharing scheme {scheme!r}")


MAPPINGS = {"ps": shared_mapping, "ps-id": shared_mapping, "nops": per_agent_mapping, "psa": per_agent_mapping,
            "seps": group_mapping, "dyps": group_mapping}
