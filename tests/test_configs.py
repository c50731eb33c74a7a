"""Every YAML in tune_configs/ and tests/configs/ loads into exactly one registered world's typed config
(BenchMARL's rule: YAML mirrored by a typed config, with a test); the typed configs round-trip through YAML;
a YAML that says it holds a section's defaults (a ``# defaults: a, b.c`` line) really does."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from rl_cs import registry
from rl_cs.config import load_config, to_dict
from rl_cs.errors import InputError

REPO = Path(__file__).resolve().parents[1]
YAMLS = sorted([*REPO.glob("tune_configs/*.yaml"), *REPO.glob("tests/configs/*.yaml")])
DEFAULTS_LINE = re.compile(r"^#\s*defaults:\s*(.+)$", re.MULTILINE)


def _worlds_loading(path: Path) -> list[str]:
    loaded = []
    for world in registry.worlds().values():
        try:
            world.load_config(str(path))
        except InputError:
            continue
        loaded.append(world.name)
    return loaded


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_yaml_loads_into_exactly_one_world(path):
    assert len(_worlds_loading(path)) == 1, f"{path.name} loads for {_worlds_loading(path)}"


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_yaml_for_another_world_says_which(path):
    owner = _worlds_loading(path)[0]
    for world in registry.worlds().values():
        if world.name != owner:
            with pytest.raises(InputError) as error:
                world.load_config(str(path))
            assert f"a config for world '{owner}'" in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("world", sorted(registry.worlds()))
def test_typed_config_round_trips_through_yaml(world, tmp_path):
    cls = registry.get_world(world).config_class()
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump(to_dict(cls())))
    assert load_config(cls, path) == cls()


def _section(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def test_some_yaml_declares_defaults():
    assert any(DEFAULTS_LINE.search(path.read_text()) for path in YAMLS), "the check below would test nothing"


@pytest.mark.parametrize("path", [p for p in YAMLS if DEFAULTS_LINE.search(p.read_text())],
                         ids=lambda p: p.name)
def test_yaml_that_says_it_holds_defaults_does(path):
    world = registry.get_world(_worlds_loading(path)[0])
    config, defaults = world.load_config(str(path)), world.config_class()()
    sections = [s.strip() for s in DEFAULTS_LINE.search(path.read_text()).group(1).split(",")]
    written = yaml.safe_load(path.read_text())
    for section in sections:
        node = written
        for part in section.split("."):
            assert part in node, f"{path.name} says it holds the defaults of '{section}' but does not write it"
            node = node[part]
        value = _section(config, section)
        assert dataclasses.is_dataclass(value), section
        assert to_dict(value) == to_dict(_section(defaults, section)), f"{path.name}: {section} differs from defaults"
