"""The registries: every world and every method of rl-cs, declared once and read by everything else.

The CLI (`rl-cs list | train | evaluate | check | report | bench`), Tune's env registration
(``envs.register()``), evaluation and reports look worlds and methods up here and never name one
themselves. Declarations live in ``rl_cs/worlds.py`` and ``rl_cs/methods.py``; their code is referenced by
``"module:attribute"`` strings and imported only when used, so `rl-cs list` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_cs.errors import InputError, closest

REPOSITORY = Path(__file__).resolve().parents[1]

CAPABILITIES = {
    "decision_view": "a public, read-only view of the world at a decision step (heuristic planners act on it)",
    "credit_facts": "per-agent infos for learned credit assignment: global state, neighbours' actions, realised revenue",
    "global_state": "a global state vector in every agent's infos (centralised critics, ICES)",
    "action_mask": "observations carry a mask of allowed actions",
    "agents_come_and_go": "agents appear and leave mid-episode (ids never reused)",
}
"""What a world can offer a method, by name; a method lists the ones it needs."""

TRAIN_FLAGS = {
    "resume": "--resume continues an interrupted experiment from its last checkpoint",
    "no_compare": "--no-compare skips the closing held-out comparison with a baseline",
}
"""Optional `rl-cs train` flags; a world declares which apply to it, the others are refused (exit 2)."""


def resolve(reference: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class World:
    """One world: where its parts live and what it offers. Adding a world = its env module, its config,
    its quick YAML, and one ``World(...)`` in rl_cs/worlds.py; `rl-cs check <name>` is its test."""

    name: str
    """Name on the command line and in Tune's registry (``--world NAME``)."""
    summary: str
    """One line: what the world is."""
    paper: str
    """The paper (and its sections) the world follows."""
    env: str
    """``module:Class`` of its RLlib MultiAgentEnv, built from a plain-dict env_config."""
    config: str
    """``module:Class`` of its experiment config (the dataclass its YAML files mirror)."""
    commands: str
    """Module with ``train(args)``, ``evaluate(args)``, ``bench(args)`` and ``make_env(config, data_dir)``."""
    report: str
    """``module:function`` turning a results folder into tables and plots: ``(results, out) -> int``."""
    quick_config: str | None
    """YAML used when no ``--config`` is given (path relative to the repository), or None for the defaults."""
    metrics: tuple[str, ...]
    """Business metrics in the world's episode metrics (the first is the one to maximise or minimise)."""
    capabilities: frozenset[str] = frozenset()
    """What the world offers methods (keys of CAPABILITIES)."""
    train_flags: frozenset[str] = frozenset()
    """Optional `train` flags that apply (keys of TRAIN_FLAGS)."""
    action_mask: str | None = None
    """``module:function`` ``(env, agent_id, observation) -> bool array`` of allowed actions, if the world masks."""

    def __post_init__(self):
        unknown = set(self.capabilities) - set(CAPABILITIES) | set(self.train_flags) - set(TRAIN_FLAGS)
        assert not unknown, f"world {self.name}: unknown capabilities or flags {sorted(unknown)}"

    def env_class(self) -> type:
        return resolve(self.env)

    def config_class(self) -> type:
        return resolve(self.config)

    def command_module(self):
        return importlib.import_module(self.commands)

    def load_config(self, path: str | Path | None, overrides: list[str] = ()):
        """The world's experiment config from ``path`` (default: its quick config) and ``--set`` overrides,
        validated; a file written for another world says so."""
        from rl_cs.config import load_config

        default = REPOSITORY / self.quick_config if self.quick_config else None
        try:
            return load_config(self.config_class(), path, overrides, default=default)
        except InputError as error:
            if path and error.where.startswith(str(path)):  # the file's own content: maybe another world's
                owner = _world_of_file(Path(path), exclude=self.name)
                if owner:
                    raise InputError(str(path), f"a config for world '{owner}', not '{self.name}'",
                                     f"pass --world {owner}, or give a {self.name} config") from None
            raise

    def make_env(self, config, data_dir: str | None = None):
        """A ready env of this world for ``config`` (its experiment config) and the data folder."""
        return self.command_module().make_env(config, data_dir)


@dataclass(frozen=True)
class Method:
    """One method or baseline: learned (an RLlib AlgorithmConfig builder) or a heuristic planner."""

    name: str
    """Name on the command line (``rl-cs train NAME``)."""
    summary: str
    """One line: what it is, with its paper."""
    worlds: tuple[str, ...]
    """Worlds it runs on."""
    needs: frozenset[str] = frozenset()
    """Capabilities it needs from a world (keys of CAPABILITIES)."""
    build: str | None = None
    """Learned: ``module:function`` ``(config, env_config, seed, **build_options) -> AlgorithmConfig``."""
    build_options: dict = field(default_factory=dict)
    """Keyword arguments for ``build`` (two methods sharing one builder, e.g. CAFE and CA-noFE)."""
    heuristic: str | None = None
    """Heuristic: ``module:Class`` of the planner (constructed without arguments)."""
    settings: str | None = None
    """``module:Class`` of the method's own config dataclass, a top-level YAML section named ``section``."""
    section: str | None = None
    """YAML section of ``settings`` (methods sharing one config share the section, e.g. cafe, ca-nofe)."""
    reward: str = "split"
    """World reward mode the method trains on (for worlds that offer several)."""

    def __post_init__(self):
        assert (self.build is None) != (self.heuristic is None), f"method {self.name}: build xor heuristic"
        assert (self.settings is None) == (self.section is None), f"method {self.name}: settings with a section"
        unknown = set(self.needs) - set(CAPABILITIES)
        assert not unknown, f"method {self.name}: unknown capabilities {sorted(unknown)}"

    @property
    def learned(self) -> bool:
        return self.build is not None

    @property
    def kind(self) -> str:
        return "learned" if self.learned else "heuristic"

    def make_heuristic(self, settings=None):
        """The planner; one with settings (a sensing scheme) is built from them."""
        cls = resolve(self.heuristic)
        return cls(settings) if self.settings else cls()

    def build_algorithm(self, config, env_config: dict, seed):
        return resolve(self.build)(config, env_config, seed, **self.build_options)


def _world_of_file(path: Path, exclude: str) -> str | None:
    """The other world whose config loads the YAML at ``path`` without an error, if one does."""
    from rl_cs.config import load_config

    for world in worlds().values():
        if world.name == exclude:
            continue
        try:
            load_config(world.config_class(), path)
        except InputError:
            continue
        return world.name
    return None


def worlds() -> dict[str, World]:
    from rl_cs.worlds import WORLDS

    return {world.name: world for world in WORLDS}


def methods() -> dict[str, Method]:
    from rl_cs.methods import METHODS

    return {method.name: method for method in METHODS}


def get_world(name: str, where: str = "--world") -> World:
    known = worlds()
    if name not in known:
        raise InputError(where, f"unknown world '{name}'", f"{closest(name, known)}; `rl-cs list` shows them all")
    return known[name]


def methods_for(world: str) -> list[Method]:
    """The methods that run on ``world``, in declaration order."""
    return [method for method in methods().values() if world in method.worlds]


def get_method(name: str, world: str | None = None, where: str = "method") -> Method:
    """A method by name; with ``world``, it must run there (else an InputError naming where it does run)."""
    known = methods()
    key = name.lower()
    if key not in known:
        choices = [m.name for m in methods_for(world)] if world else known
        raise InputError(where, f"unknown method '{name}'" + (f" for world '{world}'" if world else ""),
                         f"{closest(key, choices)}; `rl-cs list` shows them all")
    method = known[key]
    if world is not None and world not in method.worlds:
        raise InputError(where, f"method '{name}' does not run on world '{world}'",
                         f"it runs on: {', '.join(method.worlds)}; on {world}: "
                         f"{', '.join(m.name for m in methods_for(world))}")
    return method


def sections_for(world: str) -> dict[str, str]:
    """YAML section -> ``module:Class`` of the settings of every method that runs on ``world``."""
    sections: dict[str, str] = {}
    for method in methods_for(world):
        if method.section:
            assert sections.setdefault(method.section, method.settings) == method.settings, method.section
    return sections
