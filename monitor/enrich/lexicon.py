"""Lexicon packs: domain word valences, phrases and rule settings kept in YAML.

A pack file (``rules/lexicons/NAME.yaml``) looks like::

    name: customer-service
    description: what the pack is for
    words:            # single words -> VADER valence (-4 .. +4); replaces VADER's value
      stranded: -2.3  # reason for the entry
    phrases:          # several words matched as one unit, case-insensitive
      on hold: -1.8   # reason
    neutral:          # words whose VADER valence does not apply in this domain
      - help          # reason
    rules:            # switches for the built-in domain rules (see RULES)
      duration_complaint: {enabled: true, valence: -1.6}

Packs are applied in order; a later pack overrides what an earlier one set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.yamlload import LocDict, loads_yaml
from monitor.errors import BrandMonitorError, ConfigError

MAX_VALENCE = 4.0
TOP_KEYS = ("name", "description", "words", "phrases", "neutral", "rules")
_WORD_RE = re.compile(r"^[^\s]+$")

# Built-in domain rules and their parameters: name -> {parameter: (type, default)}.
# ``enabled`` is implicit for every rule and defaults to False (a pack switches it on).
RULES: dict[str, dict[str, tuple[type, Any]]] = {
    # "3 hours", "5hrs", "45 mins", "two days": in a service tweet a stated wait is a complaint.
    "duration_complaint": {"valence": (float, -1.6)},
    # please/thanks/help are politeness, not praise, when the post also complains.
    "polite_dampening": {"words": (list, []), "factor": (float, 0.0)},
    # a post with complaint signals but no sentiment left is scored this valence instead.
    "complaint_floor": {"valence": (float, -1.0)},
}


class LexiconError(BrandMonitorError, ValueError):
    """A lexicon pack file is invalid; the message names the file, the key and the line."""

    def __init__(self, file: str, key: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.line = line
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key or '<root>'}: {message}")


@dataclass(frozen=True, slots=True)
class RuleSetting:
    """One rule as a pack configures it."""

    enabled: bool
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LexiconPack:
    """One parsed lexicon pack."""

    name: str
    path: str = ""
    description: str = ""
    words: Mapping[str, float] = field(default_factory=dict)
    phrases: Mapping[str, float] = field(default_factory=dict)
    neutral: tuple[str, ...] = ()
    rules: Mapping[str, RuleSetting] = field(default_factory=dict)


def pack_paths(lexicon_dir: str | Path, names: Iterable[str]) -> list[Path]:
    """Resolve pack names (``customer-service``) to files in ``lexicon_dir``."""
    out = []
    for name in names:
        path = Path(lexicon_dir) / f"{name}.yaml"
        if not path.is_file():
            raise LexiconError(str(path), "", f"lexicon pack {name!r} not found in {lexicon_dir}")
        out.append(path)
    return out


def load_packs(paths: Iterable[Path]) -> list[LexiconPack]:
    """Parse pack files in order; raise LexiconError on the first invalid one."""
    return [load_pack(Path(p)) for p in paths]


def load_pack(path: Path) -> LexiconPack:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LexiconError(str(path), "", f"cannot read: {exc.strerror}") from None
    return parse_pack(text, str(path), default_name=path.stem)


def parse_pack(text: str, file: str, default_name: str = "") -> LexiconPack:
    """Parse a pack from YAML text; ``file`` is used in error messages."""
    try:
        raw = loads_yaml(text, file)
    except ConfigError as exc:
        problem = exc.problems[0]
        raise LexiconError(file, "", problem.message, problem.line) from None
    if raw is None:
        raw = LocDict()
        raw.key_lines = {}
    if not isinstance(raw, dict):
        raise LexiconError(file, "", "a lexicon pack must be a mapping")

    def line(key: str, container: Any = raw) -> int | None:
        return container.line_of(key) if isinstance(container, LocDict) else None

    for key in raw:
        if key not in TOP_KEYS:
            raise LexiconError(file, key, f"unknown key; expected one of {', '.join(TOP_KEYS)}",
                               line(key))
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise LexiconError(file, "name", "must be a non-empty string", line("name"))
    description = raw.get("description", "") or ""
    if not isinstance(description, str):
        raise LexiconError(file, "description", "must be a string", line("description"))
    words = _valences(raw.get("words"), file, "words", line("words"), multiword=False)
    phrases = _valences(raw.get("phrases"), file, "phrases", line("phrases"), multiword=True)
    neutral = _neutral(raw.get("neutral"), file, line("neutral"))
    rules = _rules(raw.get("rules"), file, line("rules"))
    return LexiconPack(name=name.strip(), path=file, description=description.strip(),
                       words=words, phrases=phrases, neutral=neutral, rules=rules)


def _valences(value: Any, file: str, section: str, sec_line: int | None,
              *, multiword: bool) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LexiconError(file, section, "must be a mapping of entry: valence", sec_line)
    out: dict[str, float] = {}
    for term, valence in value.items():
        key = f"{section}.{term}"
        at = value.line_of(term) if isinstance(value, LocDict) else sec_line
        if not isinstance(term, str) or not term.strip():
            raise LexiconError(file, key, "entries must be non-empty strings", at)
        norm = " ".join(term.lower().split())
        if multiword and " " not in norm:
            raise LexiconError(file, key, "a phrase needs two or more words (use 'words')", at)
        if not multiword and not _WORD_RE.match(norm):
            raise LexiconError(file, key, "a word must not contain spaces (use 'phrases')", at)
        if isinstance(valence, bool) or not isinstance(valence, int | float):
            raise LexiconError(file, key, f"valence must be a number, got {valence!r}", at)
        number = float(valence)
        if not math.isfinite(number) or abs(number) > MAX_VALENCE:
            raise LexiconError(file, key, f"valence must be within -4..4, got {valence!r}", at)
        out[norm] = number
    return out


def _neutral(value: Any, file: str, sec_line: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise LexiconError(file, "neutral", "must be a list of words", sec_line)
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _WORD_RE.match(item.strip() or " "):
            raise LexiconError(file, f"neutral[{index}]", f"must be one word, got {item!r}",
                               sec_line)
        out.append(item.strip().lower())
    return tuple(out)


def _rules(value: Any, file: str, sec_line: int | None) -> dict[str, RuleSetting]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LexiconError(file, "rules", "must be a mapping of rule: settings", sec_line)
    out: dict[str, RuleSetting] = {}
    for rule, settings in value.items():
        key = f"rules.{rule}"
        at = value.line_of(rule) if isinstance(value, LocDict) else sec_line
        if rule not in RULES:
            raise LexiconError(file, key, f"unknown rule; known: {', '.join(sorted(RULES))}", at)
        if isinstance(settings, bool):
            out[rule] = RuleSetting(settings, {})
            continue
        if not isinstance(settings, dict):
            raise LexiconError(file, key, "must be true/false or a mapping of settings", at)
        schema = RULES[rule]
        params: dict[str, Any] = {}
        enabled = settings.get("enabled", True)
        if not isinstance(enabled, bool):
            raise LexiconError(file, f"{key}.enabled", "must be true or false", at)
        for param, param_value in settings.items():
            if param == "enabled":
                continue
            if param not in schema:
                known = ", ".join(["enabled", *sorted(schema)])
                raise LexiconError(file, f"{key}.{param}", f"unknown setting; known: {known}", at)
            params[param] = _param(param_value, schema[param][0], file, f"{key}.{param}", at)
        out[rule] = RuleSetting(enabled, params)
    return out


def _param(value: Any, kind: type, file: str, key: str, at: int | None) -> Any:
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LexiconError(file, key, f"must be a number, got {value!r}", at)
        return float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LexiconError(file, key, "must be a list of words", at)
        return [v.lower() for v in value]
    raise AssertionError(kind)  # pragma: no cover


def rule_params(packs: Iterable[LexiconPack], rule: str) -> dict[str, Any] | None:
    """Merged settings of ``rule`` over ``packs`` (later wins), or None when disabled."""
    enabled = False
    params = {name: default for name, (_, default) in RULES[rule].items()}
    for pack in packs:
        setting = pack.rules.get(rule)
        if setting is None:
            continue
        enabled = setting.enabled
        params.update(setting.params)
    return params if enabled else None
