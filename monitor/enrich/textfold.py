"""Lower-casing that agrees with ``re.IGNORECASE``.

Prefilters (brand words, intent triggers) look for lower-case strings in
``fold(text)`` before running case-insensitive regular expressions; they must never
miss what the regex would match. ``str.lower`` alone differs from the regex engine for
some characters: the engine also equates characters through their upper case (long s
and s, final and medial sigma, Cyrillic and Greek letter variants...), and compares
one code point with one (U+0130 lowers to two). ``fold`` maps each character to one
representative of the characters the engine equates with it, so for single
characters, ``a`` matching ``b`` case-insensitively implies ``fold(a) == fold(b)``
(tests/test_match.py checks this over the Basic Multilingual Plane).
"""

from __future__ import annotations

# CPython's re._compiler._equivalences: lower-case letters the engine treats as equal
_EQUIVALENT = (
    "i\u0131\u0130", "s\u017f", "\u03bc\u00b5", "\u03b9\u0345\u1fbe", "\u0390\u1fd3",
    "\u03b0\u1fe3", "\u03b2\u03d0", "\u03b5\u03f5", "\u03b8\u03d1", "\u03ba\u03f0",
    "\u03c0\u03d6", "\u03c1\u03f1", "\u03c3\u03c2", "\u03c6\u03d5", "\u1e61\u1e9b",
    "\ufb05\ufb06",
)
_CLASS = {c: group[0] for group in _EQUIVALENT for c in group}


def _single(value: str, fallback: str) -> str:
    return value if len(value) == 1 else fallback


class _Table(dict[int, str]):
    """``str.translate`` table computed per code point on first use."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        lower = _single(c.lower(), c)
        via_upper = _single(_single(c.upper(), c).lower(), lower)
        rep = _CLASS.get(via_upper, via_upper)
        self[code] = rep
        return rep


_TABLE = _Table()


def fold(text: str) -> str:
    """``text`` lower-cased the way ``re.IGNORECASE`` compares characters."""
    if text.isascii():
        return text.lower()
    return text.translate(_TABLE)
