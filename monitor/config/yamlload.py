"""YAML loading that remembers where every key was written (for error messages)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError, Problem

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
ENV_REF = _ENV_RE  # a ${NAME} or ${NAME:-default} reference


class LocDict(dict[str, Any]):
    """A mapping from YAML that knows the line of itself and of each key, and the
    keys written twice: ``(key, line, line of the first)``."""

    line: int | None = None
    key_lines: dict[str, int]
    duplicates: tuple[tuple[str, int, int], ...] = ()

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class LocList(list[Any]):
    line: int | None = None
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    # keys written in this mapping (a key merged in with "<<: *anchor" may be overridden)
    own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    out = LocDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    written: dict[str, int] = {}
    duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        line = key_node.start_mark.line + 1
        if id(key_node) in own:
            if key in written:
                duplicates.append((key, line, written[key]))
            written[key] = line
        out.key_lines[key] = line
        out[key] = loader.construct_object(value_node, deep=True)
    out.duplicates = tuple(duplicates)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    out = LocList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become a ConfigError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    return loads_yaml(text, str(path))


def loads_yaml(text: str, name: str) -> Any:
    """Parse YAML text; syntax errors and keys written twice in one mapping (YAML
    would silently keep the last) become a ConfigError naming line and key."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(name, line, "", f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(name, None, "", f"invalid YAML: {exc}")]) from None
    problems = _duplicate_keys(data, name)
    if problems:
        raise ConfigError(problems)
    return data


def _duplicate_keys(data: Any, name: str) -> list[Problem]:
    problems = []
    stack: list[tuple[str, Any]] = [("", data)]
    seen: set[int] = set()  # aliases may share a node
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, LocDict):
            for key, line, first in node.duplicates:
                problems.append(Problem(name, line, f"{path}.{key}" if path else key,
                                        f"duplicate key: already set on line {first} (a key "
                                        "may appear once; YAML would keep only the last)"))
            stack.extend((f"{path}.{k}" if path else str(k), v)
                         for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    problems.sort(key=lambda p: p.line or 0)
    return problems


def expand_env(value: str, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """Replace ``${NAME}`` / ``${NAME:-default}``; raise KeyError(NAME) when unset."""
    env = os.environ if environ is None else environ

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _ENV_RE.sub(repl, value)


def env_values(value: str, environ: os._Environ[str] | dict[str, str] | None = None
               ) -> list[str]:
    """The values ``expand_env`` substitutes from the environment (not defaults)."""
    env = os.environ if environ is None else environ
    return [env[m.group(1)] for m in _ENV_RE.finditer(value) if m.group(1) in env]


def has_env_ref(value: str) -> bool:
    return _ENV_RE.search(value) is not None
