"""The cluster YAMLs pass Ray's own offline validation (prepare + schema check; nothing is started)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
FILES = sorted(CLUSTER.glob("*.yaml"))


def test_both_cluster_kinds_are_shipped():
    providers = {yaml.safe_load(path.read_text())["provider"]["type"] for path in FILES}
    assert {"local", "aws"} <= providers


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_cluster_yaml_validates_offline(path):
    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head, "the dashboard must bind to localhost"
    assert any("torch==2.13.0" in command for command in config["setup_commands"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_broken_cluster_yaml_is_rejected(path):
    config = yaml.safe_load(path.read_text())
    config["max_workers"] = "many"
    with pytest.raises(Exception):
        validate_config(prepare_config(config))
