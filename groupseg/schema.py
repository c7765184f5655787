"""Typed config sections: a plain dict (a section of an mmengine config) becomes a checked dataclass.

A misspelt key is an error naming the nearest valid key, a value of the wrong type or out of its range is an error
naming the key and what it takes: a config option is never silently ignored. Each section is a dataclass whose
fields carry their default (the one place it lives) and, in ``metadata``, their range (see :func:`option`).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that names an unknown key, or gives a key a value of the wrong type or out of range."""


def option(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
           le: float | None = None) -> Any:  # fmt: skip
    """A dataclass field with an optional range: ``ge`` / ``gt`` (at least / above) and ``le`` (at most)."""
    kwargs: dict[str, Any] = {"metadata": {"ge": ge, "gt": gt, "le": le}}
    if isinstance(default, (list, dict)):
        kwargs["default_factory"] = lambda: type(default)(default)
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def unknown_key(where: str, key: str, valid: list[str]) -> ConfigError:
    """The error for a key a section does not have, naming the nearest valid one."""
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    prefix = f"{where}." if where else ""
    hint = f"did you mean {prefix}{close[0]}?" if close else f"valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown config key {prefix}{key}: {hint}")


def check_keys(values: Mapping[str, Any], valid: list[str], where: str) -> None:
    for key in values:
        if key not in valid:
            raise unknown_key(where, key, valid)


def from_dict(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """``cls(**values)`` with every key known, every value of its field's type (ints accepted for floats, lists for
    tuples) and in its field's range; missing keys take the field's default. ``where`` names the section in errors."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    check_keys(values, [f.name for f in fields], where)
    kwargs = {}
    for f in fields:
        name = f"{where}.{f.name}" if where else f.name
        if f.name in values:
            kwargs[f.name] = check_value(values[f.name], hints[f.name], name)
            check_range(kwargs[f.name], f.metadata, name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"config key {name} is required ({describe(hints[f.name])})")
    return cls(**kwargs)


def check_range(value: Any, metadata: Mapping[str, Any], name: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    ge, gt, le = metadata.get("ge"), metadata.get("gt"), metadata.get("le")
    within = (
        not (isinstance(value, float) and math.isnan(value))
        and (ge is None or value >= ge)
        and (gt is None or value > gt)
        and (le is None or value <= le)
    )
    if not within:
        low = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else "(-inf"
        high = f"{le}]" if le is not None else "inf)"
        raise ConfigError(f"config key {name} must be in {low}, {high}, got {value!r}")


def check_value(value: Any, hint: Any, name: str) -> Any:
    """``value`` if it is a ``hint`` (converted: int → float, list → tuple, mapping → dict); else ConfigError."""
    ok, converted = _convert(value, hint)
    if not ok:
        raise ConfigError(f"config key {name} must be {describe(hint)}, got {type(value).__name__} {value!r}")
    return converted


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if hint is type(None) or hint is None:
        return value is None, value
    if origin in (Union, types.UnionType):
        for arg in args:
            ok, converted = _convert(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        if not args:
            return True, (origin or hint)(value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                return False, value
            items = [_convert(v, a) for v, a in zip(value, args)]
        else:
            items = [_convert(v, args[0]) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        return True, origin([converted for _, converted in items])
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping), _plain(value) if isinstance(value, Mapping) else value
    return isinstance(value, hint), value


def _plain(value: Any) -> Any:
    """mmengine ConfigDicts (and lists of them) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def describe(hint: Any) -> str:
    """A type annotation in words: 'an integer', 'one of 'fp32', 'bf16'', 'a list of integers or None'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "None"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return f"a pair ({', '.join(describe(a) for a in args)})" if len(args) == 2 else f"a {len(args)}-tuple"
    if origin in (list, tuple):
        return f"a list of ({describe(args[0])})" if args else "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a dict"
    return {bool: "True or False", int: "an integer", float: "a number", str: "a string", Any: "anything"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def to_dict(obj: Any) -> dict[str, Any]:
    """A checked section (or a tree of them) as plain data, e.g. to write it back as a config file."""
    return dataclasses.asdict(obj)


__all__ = ["ConfigError", "check_keys", "check_value", "describe", "from_dict", "option", "to_dict", "unknown_key"]
