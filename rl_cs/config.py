"""The one YAML -> typed-config loader of rl-cs, for every world's experiment config.

A YAML file mirrors its dataclass one to one: nested dataclass fields are nested sections, unknown keys
fail with the file, the field and the nearest valid name, wrong types and non-finite numbers fail the same
way, and ``--set key=value`` overrides one field (errors then name the ``--set``). Everything here runs
before Ray starts or anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rl_cs.errors import InputError, closest, require

T = TypeVar("T")

_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data`` (a dict or an instance), naming ``where`` in every error."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(where, f"expected a mapping of {cls.__name__} fields, got {type(data).__name__} {data!r}",
                         "write 'key: value' lines")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values = {}
    for key, value in data.items():
        if key not in names:
            _unknown(cls, key, names, _join(where, key))
        values[key] = _coerce(value, hints[key], _join(where, key))
    try:
        return cls(**values)
    except InputError:
        raise
    except (TypeError, ValueError) as error:  # a dataclass's own __post_init__ check
        raise InputError(where, str(error)) from None


def _unknown(cls: type, key: Any, names: list[str], where: str) -> None:
    """An unknown field: an InputError with the nearest valid name, or, for a field the config renamed
    (``RENAMED = {old: (problem, fix)}`` on the dataclass), with what it is now."""
    renamed = getattr(cls, "RENAMED", {})
    if key in renamed:
        raise InputError(where, *renamed[key])
    raise InputError(where, "unknown field", closest(str(key), names))


def _join(where: str, key: Any) -> str:
    """``file.yaml:`` + key -> ``file.yaml: key``; ``a.b`` + key -> ``a.b.key``."""
    if not where:
        return str(key)
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check and convert one value against its type hint: ints may stand for floats, lists for tuples;
    floats must be finite (NaN or inf in a config is always a mistake)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        concrete = [arg for arg in args if arg is not type(None)]
        return _coerce(value, concrete[0], where) if len(concrete) == 1 else value
    if hint is list or origin is list or hint is tuple or origin is tuple:
        require(isinstance(value, (list, tuple)), where, f"expected a list, got {value!r}",
                f"write [{value}]" if isinstance(value, (str, int, float)) else "write [a, b, ...]")
        item = args[0] if args else None
        items = [_coerce(v, item, where) if item is not None else v for v in value]
        return tuple(items) if (hint is tuple or origin is tuple) else items
    if hint is dict or origin is dict:
        require(isinstance(value, dict), where, f"expected a mapping, got {value!r}", "write key: value lines")
        if len(args) == 2:
            return {str(k): _coerce(v, args[1], _join(where, k)) for k, v in value.items()}
        return dict(value)
    if hint is bool:
        require(isinstance(value, bool), where, f"expected true or false, got {value!r}")
    elif hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), where, f"expected an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as text
        require(isinstance(value, (int, float)) and not isinstance(value, bool), where,
                f"expected a number, got {value!r}")
        require(math.isfinite(value), where, f"must be a finite number, got {value!r}")
        return float(value)
    elif hint is str:
        require(isinstance(value, str), where, f"expected text, got {value!r}")
    return value


def to_dict(config: Any) -> Any:
    """A dataclass as plain nested data (dicts and lists, for YAML, JSON and RLlib env_config)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, (tuple, list)):
        return [to_dict(v) for v in config]
    return config


def with_override(config: T, dotted: str, value: Any, where: str, _done: str = "") -> T:
    """A copy of ``config`` with one dotted field replaced (``world.rules.deadline_minutes``); errors name
    ``where`` (the ``--set``) and the full dotted field."""
    head, _, rest = dotted.partition(".")
    path = f"{_done}{head}"
    names = [f.name for f in dataclasses.fields(config)]
    if head not in names:
        if head in getattr(type(config), "RENAMED", {}):
            _unknown(type(config), head, names, f"{where}: {path}")
        raise InputError(f"{where}: {path}", f"unknown field '{head}'", closest(head, names))
    current = getattr(config, head)
    if rest:
        if isinstance(current, dict):  # a mapping field (e.g. a grid): set the key
            return dataclasses.replace(config, **{head: {**current, rest: value}})
        require(dataclasses.is_dataclass(current), f"{where}: {path}", f"'{head}' has no field '{rest}'")
        return dataclasses.replace(config, **{head: with_override(current, rest, value, where, f"{path}.")})
    hints = typing.get_type_hints(type(config))
    return dataclasses.replace(config, **{head: _coerce(value, hints[head], f"{where}: {path}")})


def parse_value(text: str) -> Any:
    """A ``--set`` value read as YAML (numbers, booleans, lists), so ``world.num_workers=50`` gives an int."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def read_yaml(path: Path) -> dict:
    """A YAML mapping from ``path``; unreadable, non-UTF-8, empty or non-mapping files are InputErrors."""
    require(path.is_file(), str(path), "config file not found", "give an existing YAML, e.g. one in tune_configs/")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(str(path), f"not UTF-8 text ({error.reason} at byte {error.start})",
                         "save the file as UTF-8") from None
    except OSError as error:
        raise InputError(str(path), f"cannot read the file ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(str(path), f"not valid YAML: {error}", "fix the syntax") from None
    require(data is not None, str(path), "the file is empty",
            "give at least one section, or leave out --config for the world's quick config")
    require(isinstance(data, dict), str(path), f"expected sections (key: value lines), got a {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] = (),
                default: str | Path | None = None) -> T:
    """Read ``path`` (else ``default``, else the dataclass defaults), apply each ``--set KEY=VALUE`` and
    validate (``config.validate(where)``); every error names the file or the ``--set`` it came from."""
    path = Path(path) if path else (Path(default) if default else None)
    where = str(path) if path else "defaults"
    config = from_dict(cls, read_yaml(path), f"{where}:") if path else cls()
    config.validate(where)
    for item in overrides:  # each one validated on its own, so an error names the --set that caused it
        key, sep, text = item.partition("=")
        require(bool(sep) and bool(key.strip()), f"--set {item}", "expected KEY=VALUE", "e.g. --set world.num_workers=50")
        config = with_override(config, key.strip(), parse_value(text), f"--set {item}")
        config.validate(f"--set {item}")
    return config
