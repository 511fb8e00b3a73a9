"""Admin regexes (``blocked_patterns``) that cannot stall the daemon.

Python's ``re`` backtracks and has no timeout, so one pathological pattern such as
``(a+)+$`` could freeze the event loop on a crafted post. Two layers:

1. **Validation at load** (always, so a rule file is valid or not whatever is
   installed): the pattern must compile with ``re``; backreferences and lookaround
   are refused (not linear-time, and RE2 lacks them); a quantifier over something
   that already repeats (``(a+)+``, ``(a*b?)*``), a quantified alternation whose
   branches are not distinct literals (``(a|ab)+``), more than two unbounded repeats
   (``.*a.*b.*c``: polynomial blow-up) and patterns over 500 characters are refused.
2. **Matching**: with the ``google-re2`` package installed (``import re2``) patterns
   run on RE2, which is linear-time by construction, over the first ``MAX_SCAN``
   characters; without it they run on ``re`` over the first ``FALLBACK_SCAN``
   characters, where the validated shapes stay at worst quadratic on a short input.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from monitor.detect.outbound.text import MAX_SCAN

FALLBACK_SCAN = 2000
MAX_PATTERN = 500
_UNBOUNDED = 50  # a repeat allowing more than this many counts as unbounded

_parser: Any = importlib.import_module("re._parser")
_REPEATS = {_parser.MAX_REPEAT, _parser.MIN_REPEAT}
_REPEATS |= {getattr(_parser, "POSSESSIVE_REPEAT", _parser.MAX_REPEAT)}
_REFS = {_parser.GROUPREF, _parser.GROUPREF_EXISTS}
_LOOK = {_parser.ASSERT, _parser.ASSERT_NOT}


def _load_re2() -> Any:
    try:
        return importlib.import_module("re2")
    except ImportError:
        return None


RE2: Any = _load_re2()


def engine() -> str:
    """``"re2"`` when admin patterns run on RE2, else ``"re"``."""
    return "re2" if RE2 is not None else "re"


class _Unsafe(Exception):
    pass


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns (lists of nodes) of one parse node."""
    if op in _REPEATS:
        return [av[2]]
    if op == _parser.SUBPATTERN:
        return [av[-1]]
    if op == _parser.BRANCH:
        return list(av[1])
    if op == getattr(_parser, "ATOMIC_GROUP", None):
        return [av]
    return []


def _repeats_inside(nodes: Any) -> bool:
    for op, av in nodes:
        if op in _REPEATS and av[1] > 1:
            return True
        if any(_repeats_inside(child) for child in _children(op, av)):
            return True
    return False


def _branches(nodes: Any) -> Iterator[list[Any]]:
    """The alternatives of every alternation in ``nodes``, nested ones too."""
    for op, av in nodes:
        if op == _parser.BRANCH:
            yield list(av[1])
        for child in _children(op, av):
            yield from _branches(child)


def _distinct_literals(alternatives: list[Any]) -> bool:
    first: set[int] = set()
    for alt in alternatives:
        if not alt or any(o != _parser.LITERAL for o, _ in alt) or alt[0][1] in first:
            return False
        first.add(alt[0][1])
    return True


def _walk(nodes: Any, counts: list[int]) -> None:
    for op, av in nodes:
        if op in _REFS:
            raise _Unsafe("backreferences are not allowed")
        if op in _LOOK:
            raise _Unsafe("lookahead/lookbehind is not allowed")
        if op in _REPEATS:
            _, high, body = av
            if high > _UNBOUNDED:
                counts[0] += 1
            if high > 1:
                if _repeats_inside(body):
                    raise _Unsafe("nested quantifier (a repeat inside a repeat, like (a+)+) "
                                  "can take exponential time")
                if not all(_distinct_literals(b) for b in _branches(body)):
                    raise _Unsafe("a repeated alternation must have literal branches "
                                  "with different first characters, like (?:btc|eth)+")
        for child in _children(op, av):
            _walk(child, counts)


def problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or None when it is acceptable."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regex {pattern!r}: {exc}"
    if len(pattern) > MAX_PATTERN:
        return f"regex {pattern[:40]!r}... is longer than {MAX_PATTERN} characters"
    counts = [0]
    try:
        _walk(_parser.parse(pattern), counts)
    except _Unsafe as exc:
        return f"unsafe regex {pattern!r}: {exc}"
    except RecursionError:
        return f"unsafe regex {pattern!r}: nested too deeply"
    if counts[0] > 2:
        return (f"unsafe regex {pattern!r}: more than two unbounded repeats (.*, +, {{n,}}) "
                "can take polynomial time; bound them, e.g. .{0,40}")
    return None


Matcher = Callable[[str], bool]


def _literal(nodes: Any) -> str | None:
    """The text of a node list made of literal characters only, else None."""
    chars = []
    for op, av in nodes:
        if op is not _parser.LITERAL:
            return None
        chars.append(chr(av))
    return "".join(chars)


def required(pattern: str) -> tuple[str, ...]:
    """Strings one of which every match contains (empty: none known), for a cheap test
    before the engine runs: a top-level literal run or an alternation of literals."""
    try:
        nodes = list(_parser.parse(pattern))
    except re.error:
        return ()
    run: list[str] = []
    best: tuple[str, ...] = ()
    for op, av in [*nodes, (None, None)]:
        if op is _parser.LITERAL:
            run.append(chr(av))
            continue
        if len(run) >= 3:
            return ("".join(run).casefold(),)
        run = []
        if op is _parser.SUBPATTERN and len(av[-1]) == 1:
            op, av = av[-1][0]  # (send|transfer): the alternation inside the group
        if op is _parser.BRANCH and not best and len(nodes) > 1:
            texts = [_literal(branch) for branch in av[1]]  # (?:send|transfer)
            if all(t is not None and len(t) >= 2 for t in texts):
                best = tuple(t.casefold() for t in texts if t is not None)
    return best


def compile_safe(pattern: str) -> Matcher:
    """A case-insensitive search function for a pattern that passed :func:`problem`
    (skipped at once when the text lacks every string a match must contain)."""
    matcher = _compile(pattern)
    needles = required(pattern)
    if not needles:
        return matcher

    def search(text: str) -> bool:
        folded = text[:MAX_SCAN].casefold()
        return any(n in folded for n in needles) and matcher(text)
    return search


def _compile(pattern: str) -> Matcher:
    if RE2 is not None:
        options = RE2.Options()
        options.case_sensitive = False
        options.log_errors = False
        try:
            compiled2 = RE2.compile(pattern, options)
        except Exception:  # a construct RE2 lacks: use the validated re pattern
            compiled2 = None
        if compiled2 is not None:
            def search2(text: str) -> bool:
                return compiled2.search(text[:MAX_SCAN]) is not None
            return search2
    compiled = re.compile(pattern, re.IGNORECASE)

    def search(text: str) -> bool:
        return compiled.search(text[:FALLBACK_SCAN]) is not None
    return search
