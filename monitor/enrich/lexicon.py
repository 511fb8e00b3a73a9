"""Lexicon packs: domain vocabulary and rule settings for sentiment, kept in YAML.

A pack file (``rules/lexicons/NAME.yaml``) looks like::

    name: customer-service
    description: what the pack is for
    words:              # VADER lexicon entries (-4 .. +4): VADER's rules apply to them
      unhelpful: -1.8   # (negation flips them, "very" boosts them, CAPS emphasise them)
    signals:            # words or phrases that mark a complaint (or praise) as such:
      refund: -1.0      # fixed valence, never flipped by a negation ("no refund")
      on hold: -1.8
    neutral:            # words or phrases that carry no sentiment in this domain
      - help            # "please help" is a request, not praise
      - customer care   # a department, not 'care'
    rules:              # switches for the built-in domain rules (see RULES)
      duration_complaint: {enabled: true, valence: -1.6}
    thresholds:         # compound cut-offs for the labels (VADER's are +-0.05)
      positive: 0.25
      negative: -0.05

Entries are case-insensitive. Packs are applied in order and a later pack overrides
what an earlier one set for the same entry. YAML comments give each entry's reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.yamlload import LocDict, loads_yaml
from monitor.errors import BrandMonitorError, ConfigError

MAX_VALENCE = 4.0
TOP_KEYS = ("name", "description", "words", "signals", "neutral", "rules", "thresholds")

# Built-in domain rules and their parameters: name -> {parameter: (type, default)}.
# ``enabled`` is implicit for every rule and defaults to False (a pack switches it on).
RULES: dict[str, dict[str, tuple[type, Any]]] = {
    # "3 hours", "5hrs", "45 mins", "two days": in a service post a stated wait is a
    # complaint; scored as a signal of this valence.
    "duration_complaint": {"valence": (float, -1.6)},
    # these words (please/thanks/...) are politeness, not praise, inside a complaint or
    # (in_questions) a question: their positive valence is multiplied by factor.
    # "requests" lists words that make a post a request ("please", "dm") likewise.
    "polite_dampening": {"words": (list, []), "factor": (float, 0.0),
                         "in_questions": (bool, True), "requests": (list, [])},
    # once a post complains, its other positive words are mostly sarcasm or softening:
    # they are multiplied by factor.
    "complaint_dominance": {"factor": (float, 0.5)},
    # a negation with no sentiment word to negate ("can't get through", "didn't
    # arrive", "won't let me") states a service not delivered: scored this valence.
    # (in_questions: false skips negative questions, "don't you fly to Boston?")
    "negation_complaint": {"valence": (float, -0.8), "in_questions": (bool, False)},
    # a question to a brand asks for something; its positive words (other than in
    # a complaint) are not praise: multiplied by factor, sentence by sentence.
    "question_dampening": {"factor": (float, 0.3)},
    # "??", "?!", "!?": an indignant question ("where is my bag?!") is a complaint;
    # scored this valence on the token that carries it, if it has no sentiment.
    "emphatic_question": {"valence": (float, -1.0)},
    # "#UnitedSucks", "#neveragain", "#customerservicefail": a hashtag is read as its
    # words (CamelCase split; else the longest known word at its start or end).
    "hashtag_words": {},
    # VADER's negation, "no" and "but" rules stop at the end of a sentence.
    "sentence_scope": {},
    # "it would be great if...", "if you could...": praise in a sentence with one of
    # these words is wished for, not given: multiplied by factor.
    "irrealis_dampening": {"words": (list, []), "factor": (float, 0.0)},
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
    """One parsed lexicon pack (entries lower-cased, phrases single-spaced)."""

    name: str
    path: str = ""
    description: str = ""
    words: Mapping[str, float] = field(default_factory=dict)
    signals: Mapping[str, float] = field(default_factory=dict)
    neutral: tuple[str, ...] = ()
    rules: Mapping[str, RuleSetting] = field(default_factory=dict)
    positive_threshold: float | None = None
    negative_threshold: float | None = None


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
        raw = {}
    if not isinstance(raw, dict):
        raise LexiconError(file, "", "a lexicon pack must be a mapping")

    def line(key: str) -> int | None:
        return raw.line_of(key) if isinstance(raw, LocDict) else None

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
    words = _valences(raw.get("words"), file, "words", line("words"), phrases=False)
    signals = _valences(raw.get("signals"), file, "signals", line("signals"), phrases=True)
    neutral = _neutral(raw.get("neutral"), file, line("neutral"))
    rules = _rules(raw.get("rules"), file, line("rules"))
    positive, negative = _thresholds(raw.get("thresholds"), file, line("thresholds"))
    return LexiconPack(name=name.strip(), path=file, description=description.strip(),
                       words=words, signals=signals, neutral=neutral, rules=rules,
                       positive_threshold=positive, negative_threshold=negative)


def _thresholds(value: Any, file: str, at: int | None) -> tuple[float | None, float | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise LexiconError(file, "thresholds", "must be a mapping {positive:, negative:}", at)
    out: dict[str, float | None] = {"positive": None, "negative": None}
    for key, number in value.items():
        if key not in out:
            raise LexiconError(file, f"thresholds.{key}",
                               "unknown setting; known: negative, positive", at)
        if isinstance(number, bool) or not isinstance(number, int | float) or not (
                -1.0 <= number <= 1.0):
            raise LexiconError(file, f"thresholds.{key}",
                               f"must be a number within -1..1, got {number!r}", at)
        out[key] = float(number)
    positive, negative = out["positive"], out["negative"]
    if positive is not None and negative is not None and negative >= positive:
        raise LexiconError(file, "thresholds", "negative must be below positive", at)
    return positive, negative


def _term(term: Any, file: str, key: str, at: int | None, *, phrases: bool) -> str:
    if isinstance(term, bool):
        raise LexiconError(file, key, f"YAML read {term!r}: quote words like yes/no/on/off/true",
                           at)
    if not isinstance(term, str) or not term.strip():
        raise LexiconError(file, key, f"entries must be non-empty strings, got {term!r}", at)
    norm = " ".join(term.lower().split())
    if not phrases and " " in norm:
        raise LexiconError(file, key, "must be a single word (phrases go in 'signals')", at)
    return norm


def _valences(value: Any, file: str, section: str, sec_line: int | None,
              *, phrases: bool) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LexiconError(file, section, "must be a mapping of entry: valence", sec_line)
    out: dict[str, float] = {}
    for term, valence in value.items():
        key = f"{section}.{term}"
        at = value.line_of(term) if isinstance(value, LocDict) else sec_line
        norm = _term(term, file, key, at, phrases=phrases)
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
        raise LexiconError(file, "neutral", "must be a list of words or phrases", sec_line)
    lines = getattr(value, "item_lines", None)
    out = []
    for index, item in enumerate(value):
        at = lines[index] if lines else sec_line
        out.append(_term(item, file, f"neutral[{index}]", at, phrases=True))
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
        enabled = settings.get("enabled", True)
        if not isinstance(enabled, bool):
            raise LexiconError(file, f"{key}.enabled", "must be true or false", at)
        params: dict[str, Any] = {}
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
    if kind is bool:
        if not isinstance(value, bool):
            raise LexiconError(file, key, f"must be true or false, got {value!r}", at)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LexiconError(file, key, f"must be a number, got {value!r}", at)
        return float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LexiconError(file, key, "must be a list of words (quote yes/no/on/off)", at)
        return [" ".join(v.lower().split()) for v in value]
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


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Packs' entries merged in order: VADER lexicon overrides and removals, signals
    (token -> fixed valence; a phrase's token joins its words with "_"), and the
    multi-word entries (signals and neutral phrases) to match as one token."""

    overrides: dict[str, float]
    removals: set[str]
    signals: dict[str, float]
    phrases: set[str]

    @classmethod
    def merge(cls, packs: Sequence[LexiconPack]) -> Vocabulary:
        out = cls({}, set(), {}, set())
        for pack in packs:
            for term in pack.neutral:
                key = term.replace(" ", "_")
                out.signals.pop(key, None)
                out.overrides.pop(key, None)
                out.removals.add(key)
                if " " in term:
                    out.phrases.add(term)
            for word, valence in pack.words.items():
                out.signals.pop(word, None)
                if valence == 0.0:
                    out.removals.add(word)
                    out.overrides.pop(word, None)
                else:
                    out.removals.discard(word)
                    out.overrides[word] = valence
            for term, valence in pack.signals.items():
                key = term.replace(" ", "_")
                out.overrides.pop(key, None)
                out.signals[key] = valence
                if " " in term:
                    out.phrases.add(term)
        return out


class TermMatcher:
    """Finds whole-word terms ("on hold", "american air") case-insensitively, fast.

    The terms become one trie-shaped regex run on the lower-cased text (Python's
    regex engine has no fast path for a long case-insensitive alternation); a match
    counts when the character before it is not a word character or one of
    ``boundary`` and the character after is not one of ``after``. ``prefixes`` are
    characters a match may start with ("#united", "@united").
    """

    def __init__(self, terms: Iterable[str], *, boundary: str = "'", after: str = r"\w'",
                 prefixes: str = "") -> None:
        words = sorted({" ".join(t.lower().split()) for t in terms} - {""})
        self._boundary = boundary + "_"
        self._prefixes = prefixes
        self._pattern = re.compile(_trie(words) + f"(?![{after}])") if words else None

    def sub(self, text: str, replace: Callable[[str], str]) -> str:
        """``text`` with every match replaced by ``replace(matched original text)``."""
        if self._pattern is None:
            return text
        low = text.lower()
        if len(low) != len(text):  # lower() changed the length: positions would not map
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        parts: list[str] = []
        last = pos = 0
        search = self._pattern.search
        while (match := search(low, pos)) is not None:
            start, end = match.span()
            if start and low[start - 1] in self._prefixes:
                start -= 1
            before = low[start - 1] if start else " "
            if before.isalnum() or before in self._boundary:
                pos = match.start() + 1
                continue
            parts += (text[last:start], replace(text[start:end]))
            last = pos = end
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)


def _trie(words: Sequence[str]) -> str:
    """A regex matching exactly ``words`` (longest first), shaped as a prefix tree."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def walk(node: dict[str, Any]) -> str:
        branches = [(r"\s+" if char == " " else re.escape(char)) + walk(child)
                    for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return "(?:" + walk(root) + ")"
