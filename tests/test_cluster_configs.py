"""The cluster YAMLs pass Ray's own offline validation (prepare + schema check; nothing is started)."""

from __future__ import annotations

import copy
import re
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


def _start_commands(config: dict, kind: str) -> list[str]:
    return [command for command in config[f"{kind}_start_ray_commands"] if "ray start" in command]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_node_gets_the_token_and_refuses_to_start_without_it(path):
    """`ray start --head` turns token authentication on only if a token is there: the YAML copies the user's
    token to every node and says RAY_AUTH_MODE=token, so a node without it fails instead of starting open."""
    config = yaml.safe_load(path.read_text())
    for kind in ("head", "worker"):
        commands = _start_commands(config, kind)
        assert commands and all("RAY_AUTH_MODE=token" in command for command in commands), (kind, commands)
    assert any(remote.endswith("/.ray/auth_token") and local == "~/.ray/auth_token"
               for remote, local in config["file_mounts"].items()), config["file_mounts"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_pinned_ports_are_documented_and_clear_of_rays_fixed_ones(path):
    """Every port a start command pins is in the header's port table (and, on-prem, in the firewall rule), the
    same on head and workers, and none is one that Ray's head opens on a fixed port of its own: a metrics export
    port of 44217 (the autoscaler's) kept the head from starting (measured: 'timed out during startup')."""
    from ray.autoscaler._private.constants import AUTOSCALER_METRIC_PORT
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    text = path.read_text()
    config = yaml.safe_load(text)
    pinned = {kind: dict(re.findall(r"--([a-z-]+-port)=(\d+)", " ".join(_start_commands(config, kind))))
              for kind in ("head", "worker")}
    shared = set(pinned["head"]) & set(pinned["worker"])
    assert {"object-manager-port", "node-manager-port", "metrics-export-port", "min-worker-port"} <= shared
    assert all(pinned["head"][name] == pinned["worker"][name] for name in shared), pinned
    fixed = {AUTOSCALER_METRIC_PORT, DASHBOARD_METRIC_PORT}
    assert not {int(port) for ports in pinned.values() for port in ports.values()} & fixed, pinned
    head_gcs = re.search(r"--head --port=(\d+)", " ".join(_start_commands(config, "head"))).group(1)
    table = {int(port) for port in re.findall(r"^#\s+(\d+)(?:-\d+)?\s{2,}", text, re.M)}
    documented = {int(port) for ports in pinned.values() for name, port in ports.items() if name != "max-worker-port"}
    assert documented | fixed | {int(head_gcs)} <= table, sorted(documented | fixed - table)
    rules = re.findall(r"^#\s+ufw allow from \S+ to any port (\S+) proto tcp", text, re.M)
    if rules:
        allowed = set()
        for rule in rules:
            for item in rule.split(","):
                low, _, high = item.partition(":")
                allowed |= set(range(int(low), int(high or low) + 1))
        assert (documented | fixed | {int(head_gcs)}) - {int(pinned["head"]["dashboard-port"])} <= allowed


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_ray_submit_runs_the_venvs_python_and_the_upload_skips_ignored_files(path):
    """`ray submit` runs `python <script>` in a login shell on the head: the setup puts the venv first on PATH.
    The file mount of the repository honours .gitignore (no virtual environment, results or caches)."""
    config = yaml.safe_load(path.read_text())
    assert any("rlcs-venv/bin:$PATH" in command and ".bashrc" in command for command in config["setup_commands"])
    assert ".gitignore" in config["rsync_filter"]
