"""Typed configs from plain dicts (YAML, RLlib env_config): unknown keys fail with a 'did you mean'.

Nested dataclass fields are built recursively, so a YAML mirrors its dataclass one to one.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from rl_cs.errors import InputError, closest

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data`` (a dict or an instance), naming ``where`` in every error."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(where, f"expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise InputError(f"{where}.{key}", "unknown field", closest(str(key), fields))
        field_type = hints[key]
        if dataclasses.is_dataclass(field_type):
            values[key] = from_dict(field_type, value, f"{where}.{key}")
        else:
            values[key] = _coerce(value, field_type, f"{where}.{key}")
    return cls(**values)


def _coerce(value: Any, field_type: Any, where: str) -> Any:
    """Check scalar types (ints may stand for floats); containers and unions pass through."""
    if field_type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if field_type in (int, str, bool) and not isinstance(value, field_type):
        raise InputError(where, f"expected {field_type.__name__}, got {value!r}")
    if field_type is int and isinstance(value, bool):
        raise InputError(where, f"expected int, got {value!r}")
    if field_type is float and not isinstance(value, (int, float)):
        raise InputError(where, f"expected a number, got {value!r}")
    return value


def to_dict(config: Any) -> dict:
    """A dataclass as a plain nested dict (for YAML, JSON and RLlib env_config)."""
    return dataclasses.asdict(config)
