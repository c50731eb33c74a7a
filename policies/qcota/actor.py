"""A sensing scheme behind the evaluation interface every method shares (``reset(seed)``, ``act(view, obs)``).

The scheme plans on the world's SensingObservation (the sensing env's decision view) and returns one cell
per participant; this turns that into RLlib's action dict.
"""

from __future__ import annotations

import numpy as np

from envs.sensing import SensingObservation
from policies.qcota.schemes import DISPLAY_NAMES, Scheme

SCHEME_SEED_OFFSET = 1_000_003
"""A scheme's generator is seeded with the episode seed plus this, apart from the world's own draws."""


class SchemeActor:
    """``scheme`` acting for ``num_participants`` participants on ``num_attributes`` attributes."""

    def __init__(self, scheme: Scheme, name: str, num_participants: int, num_attributes: int):
        self.scheme, self.name = scheme, DISPLAY_NAMES.get(name, name)
        self.num_participants, self.num_attributes = num_participants, num_attributes

    def reset(self, seed: int | None) -> None:
        self.scheme.reset(self.num_participants, self.num_attributes, (seed or 0) + SCHEME_SEED_OFFSET)

    def act(self, view: SensingObservation, obs: dict) -> dict:
        cells = np.asarray(self.scheme.act(view))
        return {agent: int(cells[p]) for p, agent in enumerate(obs)}
