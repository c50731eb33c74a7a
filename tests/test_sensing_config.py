"""The YAML configs in tune_configs/ and the typed dataclasses agree; unknown keys name the nearest valid one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rl_cs.errors import InputError
from rl_cs.experiment.sensing_config import SensingExperimentConfig, load_config, to_dict

CONFIGS = Path(__file__).resolve().parents[1] / "tune_configs"


def _keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        keys.add(prefix + key)
        if isinstance(value, dict) and key not in ("orders", "space"):
            keys |= _keys(value, f"{prefix}{key}.")
    return keys


def test_grid_yaml_mirrors_every_dataclass_field():
    text = yaml.safe_load((CONFIGS / "qcota_grid.yaml").read_text())
    assert _keys(text) == _keys(to_dict(SensingExperimentConfig()))
    config = load_config(str(CONFIGS / "qcota_grid.yaml"))
    assert config.grid.attribute_counts == (2, 3, 4) and config.grid.inference == ("knn", "idw", "svr")
    assert config.grid.participants == (8, 10, 12, 14)
    # the YAML's values are the dataclass defaults except the grid it widens
    assert to_dict(config.qcota) == to_dict(SensingExperimentConfig().qcota)
    assert to_dict(config.calibration) == to_dict(SensingExperimentConfig().calibration)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("qcota_*.yaml")))
def test_every_qcota_yaml_loads(name):
    text = yaml.safe_load((CONFIGS / name).read_text())
    assert _keys(text) <= _keys(to_dict(SensingExperimentConfig()))
    load_config(str(CONFIGS / name))


def test_unknown_key_suggests_the_nearest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("qcota:\n  betta: 0.4\n")
    with pytest.raises(InputError) as error:
        load_config(str(path))
    assert error.value.where == f"{path}: qcota.betta" and "did you mean 'beta'" in str(error.value)
    with pytest.raises(InputError, match="did you mean 'grid'"):
        load_config(None, ["gird.seeds=2"])


@pytest.mark.parametrize("override, where, text", [
    ("qcota.delta=1.0", "qcota.delta", "outside (0, 1)"),
    ("qcota.delta=0", "qcota.delta", "outside (0, 1)"),
    ("world.inference.method=kriging", "world.inference.method", "unknown inference method"),
    ("grid.inference=[knn, krig]", "grid.inference", "unknown inference method"),
    ("grid.seeds=two", "grid.seeds", "expected an integer"),
    ("search.space={qcota.bta: {choice: [1]}}", "qcota.bta", "unknown field"),
    ("search.space={qcota.beta: {uniform: [0.5, 1.5]}}", "qcota.beta", "refused by the field's own check"),
    ("search.space={world.num_participants: {randint: [4, 8]}}", "world.num_participants", "each grid cell sets"),
    ("search.space={grid.seeds: {randint: [1, 3]}}", "grid.seeds", "not searchable"),
])
def test_bad_values_name_the_field(override, where, text):
    with pytest.raises(InputError) as error:
        load_config(None, [override])
    assert error.value.where.startswith(f"--set {override}") and error.value.where.endswith(where)
    assert text in str(error.value)


def test_overrides_and_seeds():
    config = load_config(None, ["qcota.beta=0.25", "grid.participants=[8, 12]"], seeds=4)
    assert config.qcota.beta == 0.25 and config.grid.participants == (8, 12) and config.grid.seeds == 4
