"""Settles the paper's two open choices once, on UNS-TA only (the scheme with no free parameter):

Gamma_a (error / the attribute's mean, std or range over the field), the cells Eq. 15 averages (all or
unsensed), and which attributes the 2- and 3-attribute settings use (the first k of a named order). Each
candidate's UNS-TA errors over the paper's grid (3 counts x KNN/IDW/SVR x P = 8..14) are compared with the
paper's UNS-TA row by mean absolute difference; the closest candidate is used for every scheme and table.
UNS-TA's cell choice ignores attributes and the inference treats attributes separately, so one episode
with all attributes per (inference, P, seed) serves every candidate.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from envs.sensing import attribute_scale
from rl_cs.data import qcota_paper
from rl_cs.data.sensing_field import SensingField
from rl_cs.errors import require
from rl_cs.experiment.sensing_config import SensingExperimentConfig
from rl_cs.experiment.sensing_grid import RunSpec, run_many


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The chosen candidate and every candidate's distance to the paper's UNS-TA row."""

    normalisation: str
    error_cells: str
    order_name: str
    order: tuple[str, ...]
    candidates: pd.DataFrame
    """One row per candidate: normalisation, error_cells, order, distance, and its 36 UNS-TA errors."""


def calibrate(sensing_field: SensingField, config: SensingExperimentConfig) -> Calibration:
    settings = config.calibration
    attributes = tuple(dict.fromkeys(itertools.chain.from_iterable(settings.orders.values())))
    for name, order in settings.orders.items():
        sensing_field.attribute_index(order, f"calibration.orders.{name}")
        require(len(order) >= max(qcota_paper.ATTRIBUTE_COUNTS), f"calibration.orders.{name}",
                f"{len(order)} attributes, the paper's grid needs {max(qcota_paper.ATTRIBUTE_COUNTS)}",
                "list four attributes")
    participants = [p for p in qcota_paper.PARTICIPANTS if p <= sensing_field.num_cells]
    require(bool(participants), "calibration", f"the field has {sensing_field.num_cells} cells, fewer than "
            f"the paper's P = {qcota_paper.PARTICIPANTS[0]}", "set calibration.enabled: false")
    specs = [RunSpec("uns-ta", attributes, method, p, seed)
             for method in qcota_paper.INFERENCE for p in participants for seed in range(settings.seeds)]
    trajectories = [result[0] for result in run_many(sensing_field, config, specs)]
    # mean over cycles per attribute, then over seeds: (cells choice) -> (inference, P) -> (A,)
    mae = {cells: {} for cells in settings.error_cells}
    for spec, trajectory in zip(specs, trajectories):
        for cells in settings.error_cells:
            per_cycle = trajectory.mae_all if cells == "all" else trajectory.mae_unsensed
            mae[cells].setdefault((spec.inference, spec.participants), []).append(np.nanmean(per_cycle, 0))
    index = {name: i for i, name in enumerate(attributes)}
    all_values = sensing_field.values[:, :, sensing_field.attribute_index(attributes)]
    rows = []
    for normalisation, cells, (order_name, order) in itertools.product(
            settings.normalisations, settings.error_cells, settings.orders.items()):
        scale = attribute_scale(all_values, normalisation)
        ours, paper = {}, []
        for count, method, p in itertools.product(qcota_paper.ATTRIBUTE_COUNTS, qcota_paper.INFERENCE, participants):
            chosen = [index[name] for name in order[:count]]
            normalised = np.mean(mae[cells][(method, p)], 0)[chosen] / scale[chosen]
            ours[f"{count}attr_{method}_P{p}"] = float(normalised.sum())
            paper.append(qcota_paper.paper_value(qcota_paper.ERROR, "uns-ta", count, method, p))
        distance = float(np.mean(np.abs(np.array(list(ours.values())) - np.array(paper))))
        rows.append({"normalisation": normalisation, "error_cells": cells, "order": order_name,
                     "attributes": ",".join(order), "distance": distance, **ours})
    candidates = pd.DataFrame(rows).sort_values("distance", kind="stable").reset_index(drop=True)
    best = candidates.iloc[0]
    return Calibration(best["normalisation"], best["error_cells"], best["order"],
                       tuple(settings.orders[best["order"]]), candidates)
