"""Every registered world passes the conformance suite (rl_cs.conformance) on its quick config, the same
suite `rl-cs check <world>` runs: a world added to rl_cs/worlds.py is checked here without a new test."""

from __future__ import annotations

import pytest

from rl_cs import registry
from rl_cs.check import world_env_factory
from rl_cs.cli import main
from rl_cs.conformance import check_world

SMALL = {"csc": ["world.num_workers=30", "world.num_tasks=30"], "sensing": [],
         "lbf": [], "rware": ["world.max_steps=100"],
         "dasc": ["world.num_workers=40", "world.num_tasks=8"],
         "ridehailing": ["world.episode_steps=8"], "vaccine": ["world.days=30"]}
"""Overrides that keep each world's checked episodes short (a world missing here runs its quick config)."""


@pytest.mark.parametrize("name", sorted(registry.worlds()))
def test_world_passes_the_conformance_suite(name):
    world = registry.get_world(name)
    make_env = world_env_factory(world, None, SMALL.get(name, []), None)
    mask = registry.resolve(world.action_mask) if world.action_mask else None
    results = check_world(make_env, action_mask=mask, agents_come_and_go="agents_come_and_go" in world.capabilities,
                          seed=7, max_steps=3000)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(results) == 6


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


def test_rl_cs_check_exits_0_and_prints_every_check(capsys):
    assert cli("check", "sensing", "--set", "world.cycles=10", "--set", "synthetic.num_cycles=12") == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 6 and "6 of 6 checks passed" in out


@pytest.mark.parametrize("argv, message", [
    (["check", "nope"], "unknown world 'nope'"),
    (["check", "csc", "--config", "tune_configs/qcota_grid.yaml"], "a config for world 'sensing', not 'csc'"),
    (["check", "sensing", "--config", "tune_configs/csc_quick.yaml"], "a config for world 'csc', not 'sensing'"),
    (["check", "csc", "--set", "world.num_tasks=100000"], "world.num_tasks"),
    (["check", "csc", "--max-steps", "0"], "--max-steps"),
])
def test_bad_check_input_exits_2(argv, message, capsys, tmp_path, monkeypatch):
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    before = sorted(p.name for p in repo.iterdir())
    assert cli(*argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in repo.iterdir()) == before


def test_a_world_whose_env_raises_is_a_clear_error_not_a_traceback(monkeypatch, capsys):
    world = registry.get_world("sensing")

    def broken(config, data_dir=None):
        raise RuntimeError("the field exploded")

    monkeypatch.setattr(world.command_module(), "make_env", broken)
    assert cli("check", "sensing") == 2
    err = capsys.readouterr().err
    assert "its env could not be built: RuntimeError: the field exploded" in err and "Traceback" not in err


def test_a_failing_check_exits_1(monkeypatch, capsys):
    import rl_cs.conformance as conformance

    real = conformance.check_world

    def one_fails(*args, **kwargs):
        results = real(*args, **kwargs)
        return [conformance.CheckResult(results[0].name, False, "made to fail"), *results[1:]]

    monkeypatch.setattr(conformance, "check_world", one_fails)
    assert cli("check", "sensing", "--set", "world.cycles=5", "--set", "synthetic.num_cycles=6") == 1
    assert "FAIL" in capsys.readouterr().out
