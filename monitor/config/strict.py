"""Strict conversion of YAML data into frozen dataclasses, driven by type hints.

Unknown keys, missing required keys and wrong types are all reported, each as a
``Problem`` naming the file, line and dotted key path. Strings may reference the
environment as ``${NAME}``; such values are registered as secrets for masking.
A field may declare ``metadata={"secret": True}``: a literal value there is
refused, because secrets belong in the environment, not in files. Environment
values are registered for masking (``monitor.secrets``) unless the field declares
``metadata={"public": True}`` (folders and file names, which logs must show).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from monitor import secrets
from monitor.config.yamlload import (
    ENV_REF,
    LocDict,
    LocList,
    env_values,
    expand_env,
    has_env_ref,
)
from monitor.errors import ConfigError, Problem

T = TypeVar("T")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
# A URL password or token-like query value written literally.  ${ENV} references are
# replaced by \x00 before the search: a value that is wholly a reference is fine, a
# literal one is refused even when another part of the URL is a reference.
_URL_SECRET = re.compile(r"://[^/@\s]*:(?!\x00@)[^@/\s]+@"
                         r"|[?&](?:token|key|apikey|secret|pass|password)=(?!\x00(?:[&#]|$))",
                         re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class _Invalid(Exception):
    """Raised inside conversion once a problem has been recorded."""


class Context:
    """Where we are in which file, and the problems found so far."""

    def __init__(self, file: str, environ: Mapping[str, str] | None = None) -> None:
        self.file = file
        self.environ = environ
        self.problems: list[Problem] = []

    def problem(self, line: int | None, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, key, message))

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def parse_duration(value: object) -> timedelta:
    """``90``, ``"90s"``, ``"5m"``, ``"1.5h"``, ``"2d"``, ``"1w"`` -> timedelta."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration like 30s, 5m, 1h")
    if seconds < 0:
        raise ValueError("duration must not be negative")
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # inf, nan, or beyond 999999999 days
        raise ValueError("expected a duration like 30s, 5m, 1h (this one is out of "
                         "range)") from None


def build(cls: type[T], data: object, ctx: Context, key: str = "", line: int | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; raise ConfigError listing all problems."""
    try:
        result = _convert(cls, data, ctx, key, line, {})
    except _Invalid:
        result = None
    ctx.raise_if_problems()
    return typing.cast(T, result)


def build_lenient(cls: type[T], data: object, ctx: Context, key: str, line: int | None) -> T | None:
    """Like build, but record problems in ctx and return None instead of raising."""
    try:
        return typing.cast(T, _convert(cls, data, ctx, key, line, {}))
    except _Invalid:
        return None


def _join(parent: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


def _line(data: object, default: int | None) -> int | None:
    line = getattr(data, "line", None)
    return line if isinstance(line, int) else default


def _convert(tp: Any, data: object, ctx: Context, key: str, line: int | None,
             meta: Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        if len(non_none) == 1:
            return _convert(non_none[0], data, ctx, key, line, meta)
        for option in non_none:  # e.g. str | float: first that fits without problems
            trial = Context(ctx.file, ctx.environ)
            try:
                return _convert(option, data, trial, key, line, meta)
            except _Invalid:
                continue
        names = " or ".join(_type_name(o) for o in non_none)
        return _fail(ctx, line, key, f"expected {names}, got {_describe(data)}")
    if origin is Literal:
        allowed = get_args(tp)
        if data not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            return _fail(ctx, line, key, f"must be one of {choices}, got {data!r}")
        return data
    if origin is tuple:
        item_type = get_args(tp)[0]
        if data is None:
            return ()
        if isinstance(data, str | int | float) and not isinstance(data, bool):
            data = [data]  # a single value where a list is expected
        if not isinstance(data, list):
            return _fail(ctx, line, key, f"expected a list, got {_describe(data)}")
        lines = getattr(data, "item_lines", [line] * len(data))
        out, bad = [], False
        for index, item in enumerate(data):
            try:
                out.append(_convert(item_type, item, ctx, _join(key, index), lines[index], meta))
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid
        return tuple(out)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        args = get_args(tp) or (str, Any)
        if data is None:
            return types.MappingProxyType({})
        if not isinstance(data, dict):
            return _fail(ctx, line, key, f"expected a mapping, got {_describe(data)}")
        mapped = {}
        for k, v in data.items():
            k_line = data.line_of(k) if isinstance(data, LocDict) else line
            mapped[str(k)] = _convert(args[1], v, ctx, _join(key, k), k_line, meta)
        return types.MappingProxyType(mapped)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, data, ctx, key, line)
    if tp is Any:
        return data
    if tp is str:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            return _fail(ctx, line, key, f"expected a string, got {_describe(data)}")
        text = str(data)
        from_env = has_env_ref(text)
        if meta.get("secret") and text and not from_env:
            return _fail(ctx, line, key,
                         "secrets must not be written in files: use ${ENV_VAR} instead")
        if meta.get("url") and _URL_SECRET.search(ENV_REF.sub("\x00", text)):
            return _fail(ctx, line, key, "this URL carries a password or token: "
                         "write it as ${ENV_VAR} and set it in the environment")
        environ = dict(ctx.environ) if ctx.environ is not None else None
        try:
            expanded = expand_env(text, environ)
        except KeyError as exc:
            return _fail(ctx, line, key, f"environment variable {exc.args[0]} is not set")
        if from_env and not meta.get("public"):
            # each value taken from the environment is masked wherever it appears, in
            # any encoding (monitor.secrets), whatever the field
            for value in env_values(text, environ):
                secrets.register(value)
        return expanded
    if tp is bool:
        if not isinstance(data, bool):
            return _fail(ctx, line, key, f"expected true or false, got {_describe(data)}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            return _fail(ctx, line, key, f"expected an integer, got {_describe(data)}")
        return _check_range(data, ctx, line, key, meta)
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            return _fail(ctx, line, key, f"expected a number, got {_describe(data)}")
        return _check_range(float(data), ctx, line, key, meta)
    if tp is timedelta:
        try:
            return parse_duration(data)
        except ValueError as exc:
            return _fail(ctx, line, key, str(exc))
    raise TypeError(f"unsupported config type {tp!r}")  # a programming error


def _check_range(value: Any, ctx: Context, line: int | None, key: str,
                 meta: Mapping[str, Any]) -> Any:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and value < low:
        return _fail(ctx, line, key, f"must be at least {low}, got {value}")
    if high is not None and value > high:
        return _fail(ctx, line, key, f"must be at most {high}, got {value}")
    return value


def _convert_dataclass(cls: type[Any], data: object, ctx: Context, key: str,
                       line: int | None) -> Any:
    if data is None:
        data = LocDict()
    if not isinstance(data, dict):
        return _fail(ctx, line, key, f"expected a mapping, got {_describe(data)}")
    line = _line(data, line)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    before = len(ctx.problems)
    for name in data:
        if name not in fields:
            known = ", ".join(sorted(fields))
            k_line = data.line_of(name) if isinstance(data, LocDict) else line
            ctx.problem(k_line, _join(key, name), f"unknown key (allowed: {known})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        child_key = _join(key, name)
        if name not in data:
            no_default = field.default is dataclasses.MISSING
            if no_default and field.default_factory is dataclasses.MISSING:
                ctx.problem(line, child_key, "required key is missing")
            continue
        k_line = data.line_of(name) if isinstance(data, LocDict) else line
        value_line = _line(data[name], k_line)
        with contextlib.suppress(_Invalid):
            values[name] = _convert(hints[name], data[name], ctx, child_key, value_line,
                                    field.metadata)
    if len(ctx.problems) > before:
        raise _Invalid
    try:
        obj = cls(**values)
    except ValueError as exc:  # __post_init__ validation
        return _fail(ctx, line, key, str(exc))
    validate: Callable[[], list[tuple[str, str]]] | None = getattr(obj, "problems", None)
    if validate is not None:
        found = validate()
        for sub, message in found:
            sub_line = _sub_line(data, sub, line)
            ctx.problem(sub_line, _join(key, sub), message)
        if found:
            raise _Invalid
    return obj


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _sub_line(data: object, sub: str, default: int | None) -> int | None:
    """The line of ``sub`` (a key, or a path such as ``overrides[0].end``) in ``data``:
    the deepest part of the path that the YAML has."""
    line = default
    for match in _PATH_PART.finditer(sub):
        key, index = match.group(1), match.group(2)
        if key is not None and isinstance(data, LocDict):
            line = data.line_of(key)
            data = data.get(key)
        elif index is not None and isinstance(data, LocList) and int(index) < len(data):
            line = data.item_lines[int(index)]
            data = data[int(index)]
        else:
            break
        line = _line(data, line) if not isinstance(data, LocList) else line
    return line


def _fail(ctx: Context, line: int | None, key: str, message: str) -> Any:
    ctx.problem(line, key, message)
    raise _Invalid


def _type_name(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _describe(data: object) -> str:
    if data is None:
        return "nothing"
    if isinstance(data, LocList | list):
        return "a list"
    if isinstance(data, dict):
        return "a mapping"
    return f"{type(data).__name__} {data!r}"
