"""The registries and what reads them: every declaration resolves, methods fit the worlds they name,
`rl-cs list` and the help texts name what exists, and the same experiment-folder rule holds for every world."""

from __future__ import annotations

import json

import pytest

from rl_cs import registry
from rl_cs.cli import build_parser, main


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


@pytest.mark.parametrize("world", sorted(registry.worlds()))
def test_world_declaration_resolves(world):
    spec = registry.get_world(world)
    assert spec.env_class() and spec.config_class()
    commands = spec.command_module()
    for name in ("train", "evaluate", "bench", "make_env"):
        assert callable(getattr(commands, name)), f"{spec.commands} lacks {name}"
    assert callable(registry.resolve(spec.report))
    if spec.quick_config:
        assert (registry.REPOSITORY / spec.quick_config).is_file()


@pytest.mark.parametrize("method", sorted(registry.methods()))
def test_method_declaration_resolves_and_fits_its_worlds(method):
    spec = registry.get_method(method)
    assert spec.worlds, "a method must run somewhere"
    for world in spec.worlds:
        offered = registry.get_world(world).capabilities
        assert spec.needs <= offered, f"{method} needs {spec.needs - offered} that {world} does not offer"
    if spec.learned:
        assert callable(registry.resolve(spec.build))
    else:
        assert hasattr(registry.resolve(spec.heuristic), "act")
    if spec.settings:
        settings = registry.resolve(spec.settings)()
        assert hasattr(settings, "validate")


def test_a_method_sections_is_a_field_of_its_worlds_config():
    for world in registry.worlds().values():
        fields = {f for f in world.config_class().__dataclass_fields__}
        for method in registry.methods_for(world.name):
            if method.section:
                assert method.section in fields, (world.name, method.name)


def test_list_prints_every_world_and_method(capsys):
    assert cli("list") == 0
    out = capsys.readouterr().out
    for name in [*registry.worlds(), *registry.methods()]:
        assert f"| {name} " in out


def test_list_one_world_shows_only_its_methods(capsys):
    assert cli("list", "--world", "sensing") == 0
    out = capsys.readouterr().out
    assert "| qcota " in out and "| cafe " not in out


def test_help_texts_name_worlds_and_methods():
    parser = build_parser()
    top = parser.format_help()
    train = parser._subparsers._group_actions[0].choices["train"].format_help()
    for text in (" ".join(top.split()), " ".join(train.split())):  # argparse wraps lines anywhere
        assert "rl-cs list" in text
        for name in [*registry.worlds(), "cafe", "qcota"]:
            assert name in text


@pytest.mark.parametrize("argv, message", [
    (["list", "--world", "nope"], "unknown world 'nope'"),
    (["train", "ippo", "--world", "nope"], "unknown world 'nope'"),
    (["train", "cafe", "--world", "sensing"], "does not run on world 'sensing'"),
    (["train", "qcota", "--world", "csc"], "does not run on world 'csc'"),
    (["train", "qcota", "--world", "sensing", "--resume"], "--resume: does not apply to world 'sensing'"),
    (["train", "qcota", "--world", "sensing", "--no-compare"], "--no-compare: does not apply to world 'sensing'"),
    (["train", "qcota", "--world", "sensing", "--seeds", "0"], "--seeds"),
    (["evaluate", "greedy", "--world", "csc", "--episodes", "0"], "--episodes"),
    (["evaluate", "greedy", "--world", "csc", "--seed", "-1"], "--seed"),
    (["bench", "--seconds", "-1"], "--seconds"),
])
def test_bad_names_and_flags_exit_2_before_anything_runs(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(*argv) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "bad input wrote something"


def test_sensing_train_never_overwrites_a_folder(tmp_path, capsys):
    args = ["train", "uns-ta", "--world", "sensing", "--results-dir", str(tmp_path), "--name", "once",
            "--set", "calibration.enabled=false"]
    assert cli(*args) == 0
    first = (tmp_path / "once" / "experiment.json").read_text()
    assert json.loads(first)["world"] == "sensing"
    assert cli(*args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "once" / "experiment.json").read_text() == first


def test_results_dir_that_is_a_file_is_refused_before_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for world, method in (("sensing", "uns-ta"), ("csc", "greedy")):
        assert cli("train", method, "--world", world, "--results-dir", str(blocker)) == 2
        assert "is a file" in capsys.readouterr().err
    assert blocker.read_text() == "x"
