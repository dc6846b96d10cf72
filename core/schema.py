"""A small typed TOML schema: dataclasses in, validated objects or clear errors out.

Config sections are plain dataclasses whose fields carry a ``doc`` in their metadata
(the configuration reference is generated from them). :func:`build` turns a TOML
table into such a dataclass, checking key names and types; a section may define
``check(self, path) -> list[str]`` for semantic checks (files exist, addresses
parse). Every problem is reported as one line naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def setting(default: Any = dataclasses.MISSING, *, doc: str, factory: Any = None) -> Any:
    """Declare a config field with its documentation (and a default, if optional)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"table of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], path, problems)
    if origin is Literal:
        if value not in args:
            problems.append(f"{path}: must be one of {_type_name(tp)}, not {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            problems.append(f"{path}: must be a {_type_name(tp)}, not {type(value).__name__}")
            return []
        items = [_convert(v, args[0], f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: must be a table, not {type(value).__name__}")
            return {}
        return {k: _convert(v, args[1], f"{path}.{k}", problems) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{path}: must be a table, not {type(value).__name__}")
            return None
        return _build(tp, value, path, problems)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (tp in (int, float) and isinstance(value, bool)) or not isinstance(value, tp):
        problems.append(f"{path}: must be a {_type_name(tp)}, not {value!r}")
        return None
    return value


def _build(cls: type[T], table: dict[str, Any], path: str, problems: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    before = len(problems)
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{_join(path, key)}: unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in table:
            kwargs[name] = _convert(table[name], hints[name], _join(path, name), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{_join(path, name)}: required key is missing")
            kwargs[name] = None
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            problems.extend(check(path))
        except (TypeError, AttributeError, ValueError):
            # values already reported as wrong made the semantic check impossible
            if len(problems) == before:
                raise
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build(cls: type[T], table: dict[str, Any]) -> T:
    """Validate ``table`` against the dataclass ``cls``; raise :class:`ConfigError`."""
    problems: list[str] = []
    obj = _build(cls, table, "", problems)
    if problems:
        raise ConfigError(problems)
    return obj


def reference(cls: type, path: str = "") -> list[tuple[str, str, str, str]]:
    """Rows ``(key, type, default, doc)`` for every setting of ``cls``, depth first."""
    rows: list[tuple[str, str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = _join(path, f.name)
        if f.default is not dataclasses.MISSING:
            default = repr(f.default) if f.default is not None else "(none)"
        elif f.default_factory is not dataclasses.MISSING:
            made = f.default_factory()
            default = "(see below)" if dataclasses.is_dataclass(made) else repr(made)
        else:
            default = "(required)"
        rows.append((key, _type_name(tp), default, f.metadata.get("doc", "")))
        origin = typing.get_origin(tp)
        inner = tp
        if origin in (list, tuple):
            inner = typing.get_args(tp)[0]
        elif origin in (types.UnionType, typing.Union):
            inner = next(a for a in typing.get_args(tp) if a is not type(None))
        if dataclasses.is_dataclass(inner):
            sub = f"{key}[]" if origin in (list, tuple) else key
            rows.extend(reference(inner, sub))  # type: ignore[arg-type]
    return rows
