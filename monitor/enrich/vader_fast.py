"""FastVader: vaderSentiment 3.3.2's scores, exactly, several times faster.

``FastVader().polarity_scores(text)`` returns the same dict (same floats, same key
order) as ``SentimentIntensityAnalyzer().polarity_scores(text)``: it reads the lexicon
files of the installed vaderSentiment and reproduces its rules, quirks included:

* emoji are replaced one *character* at a time (multi-code-point entries never match);
* tokens are ``str.split()`` words stripped of punctuation unless that leaves <= 2 chars;
* an ALL-CAPS lexicon word of valence exactly 0 is pushed *down* by C_INCR;
* the 3-back negation check also boosts x1.25 whenever the previous word is "so"/"this";
* ``_but_check`` rescales ``list.index(value)``, i.e. the *first* equal valence;
* "no", negations and "but" act across sentence boundaries.

Only the how differs: tokens are lower-cased once (and memoised), texts without any
rule word skip the rule machinery, words out of reach of any rule word skip it too,
the emoji loop runs only for texts holding an emoji character, and idiom strings are
built only when one of their words is present.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from vaderSentiment import vaderSentiment as _vs

C_INCR: float = _vs.C_INCR
N_SCALAR: float = _vs.N_SCALAR
BOOSTER_DICT: dict[str, float] = dict(_vs.BOOSTER_DICT)
SPECIAL_CASES: dict[str, float] = dict(_vs.SPECIAL_CASES)
NEGATE: frozenset[str] = frozenset(_vs.NEGATE)
_PUNCTUATION = string.punctuation
_SO_THIS = ("so", "this")
# every word that occurs in a multi-word special case or booster n-gram
_IDIOM_WORDS: frozenset[str] = frozenset(
    w for key in (*SPECIAL_CASES, *BOOSTER_DICT) if " " in key for w in key.split())
# one word of each multi-word special case / booster n-gram: without any of them in a
# text, no idiom rule can fire anywhere in it
_IDIOM_ANCHORS: frozenset[str] = frozenset(
    max(key.split(), key=len) for key in (*SPECIAL_CASES, *BOOSTER_DICT) if " " in key)
# every word some rule reacts to besides the lexicon ("n't" words are checked apart)
_MODIFIERS: frozenset[str] = frozenset(
    {w for w in BOOSTER_DICT if " " not in w} | NEGATE | {"no", "this", "least", "kind"}
    | _IDIOM_ANCHORS)


@lru_cache(maxsize=1)
def _base_lexicons() -> tuple[dict[str, float], dict[str, str]]:
    """Parse vader_lexicon.txt and emoji_utf8_lexicon.txt exactly as vaderSentiment does."""
    folder = Path(_vs.__file__).resolve().parent
    lexicon: dict[str, float] = {}
    text = (folder / "vader_lexicon.txt").read_text(encoding="utf-8")
    for line in text.rstrip("\n").split("\n"):
        if not line:
            continue
        word, measure = line.strip().split("\t")[0:2]
        lexicon[word] = float(measure)
    emojis: dict[str, str] = {}
    text = (folder / "emoji_utf8_lexicon.txt").read_text(encoding="utf-8")
    for line in text.rstrip("\n").split("\n"):
        emoji, description = line.strip().split("\t")[0:2]
        emojis[emoji] = description
    return lexicon, emojis


class _TokenCache(dict[str, str]):
    """Raw token -> lower-cased token as SentiText strips it; bounded memo."""

    LIMIT = 200_000

    def __missing__(self, token: str) -> str:
        stripped = token.strip(_PUNCTUATION)
        value = (token if len(stripped) <= 2 else stripped).lower()
        if len(self) >= self.LIMIT:
            self.clear()
        self[token] = value
        return value


class FastVader:
    """Drop-in for SentimentIntensityAnalyzer.polarity_scores with an editable lexicon.

    ``overrides`` add or replace lexicon entries (word -> valence, lower case);
    ``removals`` delete entries. Both change the rules exactly as editing
    ``SentimentIntensityAnalyzer().lexicon`` would.
    """

    def __init__(self, overrides: Mapping[str, float] | None = None,
                 removals: Iterable[str] = ()) -> None:
        base, emojis = _base_lexicons()
        lexicon = dict(base)
        for word in removals:
            lexicon.pop(word, None)
        if overrides:
            lexicon.update(overrides)
        self.lexicon: dict[str, float] = lexicon
        self.emojis: dict[str, str] = emojis
        # only one-character entries can match (the original loops over characters)
        self._emoji_chars = frozenset(k for k in emojis if len(k) == 1)
        # words that are scored: in the lexicon and not short-circuited as boosters
        self._scored = frozenset(w for w in lexicon if w not in BOOSTER_DICT)
        self._scored_valence = {w: lexicon[w] for w in self._scored}.get
        self._zero_free = all(lexicon[w] for w in self._scored)
        self._lower = _TokenCache().__getitem__

    def polarity_scores(self, text: str) -> dict[str, float]:
        """Exactly ``SentimentIntensityAnalyzer().polarity_scores(text)``."""
        _, n, _, values, clean = self._analyse(text)
        if not values:
            return _empty(n)
        return _score(values, n, clean)

    def valences(self, text: str) -> tuple[list[str], list[float], str]:
        """Lower-cased tokens, their valences after all rules (incl. "but"), the text scored.

        ``score_valences(sentiments, text)`` on the result gives ``polarity_scores``; a
        caller may adjust the valences in between (the domain layer does).
        """
        lowers, n, positions, values, clean = self._analyse(text)
        if positions is None:
            positions = self._positions(lowers)
        sentiments = [0.0] * n
        for i, value in zip(positions, values, strict=True):
            sentiments[i] = value
        return lowers, sentiments, clean

    def score_valences(self, sentiments: list[float], text: str) -> dict[str, float]:
        """vaderSentiment's score_valence: compound and pos/neu/neg from token valences."""
        values = [float(v) for v in sentiments if v]
        if not values:
            return _empty(len(sentiments))
        return _score(values, len(sentiments), text)

    def _positions(self, lowers: list[str]) -> list[int]:
        scored = self._scored
        return [i for i, low in enumerate(lowers) if low in scored]

    def _analyse(self, text: str) -> tuple[list[str], int, list[int] | None, list[float], str]:
        """Tokens, token count, positions of the non-zero valences (None: every scored
        word's), the non-zero valences in token order, and the text as scored."""
        text = self.replace_emoji(text).strip()
        raw = text.split()
        lowers = list(map(self._lower, raw))
        n = len(raw)
        scored = self._scored
        lexicon = self.lexicon
        positions: list[int] | None = None
        if _MODIFIERS.isdisjoint(lowers) and ("'" not in text or "n't" not in text.lower()):
            # no word that any rule reacts to: each valence is the lexicon's (+ caps)
            if self._zero_free:  # map/filter run in C; no valence is 0 to filter out
                values = list(filter(None, map(self._scored_valence, lowers)))
            else:
                values = [lexicon[low] for low in lowers if low in scored]
            if not values:
                return lowers, n, None, values, text
            uppers = list(filter(str.isupper, raw))
            if (uppers and len(uppers) < n
                    and not scored.isdisjoint(map(self._lower, uppers))):  # CAPS emphasis
                positions = self._positions(lowers)
                for k, i in enumerate(positions):
                    if raw[i].isupper():
                        if values[k] > 0:
                            values[k] += C_INCR
                        else:
                            values[k] -= C_INCR
            if 0.0 in values:  # only with a lexicon override of exactly 0
                if positions is None:
                    positions = self._positions(lowers)
                positions = [i for i, v in zip(positions, values, strict=True) if v]
                values = [v for v in values if v]
        else:
            hits = scored.intersection(lowers)
            if not hits:
                return lowers, n, [], [], text
            upper = len(list(filter(str.isupper, raw)))
            cap_diff = 0 < n - upper < n
            valence = self._valence
            no_nt = "'" not in text or "n't" not in text.lower()
            values = []
            positions = []
            if sum(map(lowers.count, hits)) == len(hits):  # each occurs once: C loops only
                candidates = sorted(map(lowers.index, hits))
            else:
                candidates = self._positions(lowers)
            for i in candidates:
                if lowers[i] == "kind" and i < n - 1 and lowers[i + 1] == "of":
                    continue
                value = valence(i, raw, lowers, cap_diff, no_nt)
                if value:
                    positions.append(i)
                    values.append(value)
        if values and "but" in lowers:
            if positions is None:
                positions = self._positions(lowers)
            _but_check(lowers.index("but"), positions, values)
        return lowers, n, positions, values, text

    def replace_emoji(self, text: str) -> str:
        """Emoji characters replaced by their descriptions, as vaderSentiment does."""
        if text.isascii() or self._emoji_chars.isdisjoint(text):
            return text
        emojis = self.emojis
        parts: list[str] = []
        prev_space = True
        for ch in text:
            description = emojis.get(ch) if ch in self._emoji_chars else None
            if description is not None:
                if not prev_space:
                    parts.append(" ")
                parts.append(description)
                prev_space = False
            else:
                parts.append(ch)
                prev_space = ch == " "
        return "".join(parts)

    def _valence(self, i: int, raw: list[str], lowers: list[str], cap_diff: bool,
                 no_nt: bool) -> float:
        """vaderSentiment's sentiment_valence for the scored word at position i, its three
        look-back steps unrolled (each skipped exactly when the original skips it)."""
        lexicon = self.lexicon
        low = lowers[i]
        valence = lexicon[low]
        if _MODIFIERS.isdisjoint(lowers[i - 3 if i > 3 else 0:i + 3]) and (
                no_nt or not any("n't" in w for w in lowers[i - 3 if i > 3 else 0:i])):
            # no rule word within reach (idioms look 3 back and 2 ahead): caps only
            if cap_diff and raw[i].isupper():
                if valence > 0:
                    valence += C_INCR
                else:
                    valence -= C_INCR
            return valence
        p1 = lowers[i - 1] if i > 0 else None
        p2 = lowers[i - 2] if i > 1 else None
        p3 = lowers[i - 3] if i > 2 else None
        if low == "no" and i != len(lowers) - 1 and lowers[i + 1] in lexicon:
            valence = 0.0
        if p1 == "no" or p2 == "no" or (p3 == "no" and p1 in ("or", "nor")):
            valence = lexicon[low] * N_SCALAR
        if cap_diff and raw[i].isupper():
            if valence > 0:
                valence += C_INCR
            else:
                valence -= C_INCR
        if p1 is not None and p1 not in lexicon:
            if p1 in BOOSTER_DICT:
                valence = valence + _scalar(p1, raw[i - 1], valence, cap_diff)
            if p1 in NEGATE or "n't" in p1:
                valence = valence * N_SCALAR
        if p2 is not None and p2 not in lexicon:
            if p2 in BOOSTER_DICT:
                s = _scalar(p2, raw[i - 2], valence, cap_diff)
                if s != 0:
                    s = s * 0.95
                valence = valence + s
            if p2 == "never" and p1 in _SO_THIS:
                valence = valence * 1.25
            elif p2 == "without" and p1 == "doubt":
                pass
            elif p2 in NEGATE or "n't" in p2:
                valence = valence * N_SCALAR
        if p3 is not None and p3 not in lexicon:
            if p3 in BOOSTER_DICT:
                s = _scalar(p3, raw[i - 3], valence, cap_diff)
                if s != 0:
                    s = s * 0.9
                valence = valence + s
            if (p3 == "never" and p2 in _SO_THIS) or p1 in _SO_THIS:
                valence = valence * 1.25
            elif p3 == "without" and (p2 == "doubt" or p1 == "doubt"):
                pass
            elif p3 in NEGATE or "n't" in p3:
                valence = valence * N_SCALAR
            valence = _special_idioms_check(valence, lowers, i)
        # _least_check
        if p1 == "least" and "least" not in lexicon:
            if p2 is not None:
                if p2 != "at" and p2 != "very":
                    valence = valence * N_SCALAR
            else:
                valence = valence * N_SCALAR
        return valence


def _scalar(low: str, word: str, valence: float, cap_diff: bool) -> float:
    """scalar_inc_dec for a word known to be a booster."""
    scalar = BOOSTER_DICT[low]
    if valence < 0:
        scalar *= -1
    if cap_diff and word.isupper():
        if valence > 0:
            scalar += C_INCR
        else:
            scalar -= C_INCR
    return scalar


def _special_idioms_check(valence: float, lowers: list[str], i: int) -> float:
    w0, w1, w2, w3 = lowers[i], lowers[i - 1], lowers[i - 2], lowers[i - 3]
    if w0 not in _IDIOM_WORDS and w1 not in _IDIOM_WORDS and w2 not in _IDIOM_WORDS:
        return valence  # no special case or n-gram below can match
    onezero = f"{w1} {w0}"
    twoonezero = f"{w2} {w1} {w0}"
    twoone = f"{w2} {w1}"
    threetwoone = f"{w3} {w2} {w1}"
    threetwo = f"{w3} {w2}"
    for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
        if seq in SPECIAL_CASES:
            valence = SPECIAL_CASES[seq]
            break
    n = len(lowers)
    if n - 1 > i:
        zeroone = f"{w0} {lowers[i + 1]}"
        if zeroone in SPECIAL_CASES:
            valence = SPECIAL_CASES[zeroone]
    if n - 1 > i + 1:
        zeroonetwo = f"{w0} {lowers[i + 1]} {lowers[i + 2]}"
        if zeroonetwo in SPECIAL_CASES:
            valence = SPECIAL_CASES[zeroonetwo]
    for n_gram in (threetwoone, threetwo, twoone):
        if n_gram in BOOSTER_DICT:
            valence = valence + BOOSTER_DICT[n_gram]
    return valence


def _but_check(bi: int, positions: list[int], values: list[float]) -> None:
    """vaderSentiment's _but_check, in place, on the non-zero valences (in token order):
    it rescales ``index(value)``, the first equal valence; zeros never change."""
    for k in range(len(values)):
        value = values[k]
        si = values.index(value)
        position = positions[si]
        if position < bi:
            values[si] = value * 0.5
        elif position > bi:
            values[si] = value * 1.5


def _empty(n: int) -> dict[str, float]:
    return {"neg": 0.0, "neu": 1.0 if n else 0.0, "pos": 0.0, "compound": 0.0}


def _score(values: list[float], n: int, text: str) -> dict[str, float]:
    """score_valence from the non-zero valences (in token order) and the token count:
    zeros add nothing to its float sums, they only count as neutral tokens."""
    sum_s = sum(values)  # floats: vaderSentiment's float(sum(...)) changes nothing
    ep_count = text.count("!")
    if ep_count > 4:
        ep_count = 4
    qm_count = text.count("?")
    qm_amplifier: float = 0
    if qm_count > 1:
        qm_amplifier = qm_count * 0.18 if qm_count <= 3 else 0.96
    punct = ep_count * 0.292 + qm_amplifier
    if sum_s > 0:
        sum_s += punct
    elif sum_s < 0:
        sum_s -= punct
    compound = sum_s / math.sqrt((sum_s * sum_s) + 15)
    if compound < -1.0:
        compound = -1.0
    elif compound > 1.0:
        compound = 1.0
    pos_sum = 0.0
    neg_sum = 0.0
    for value in values:
        if value > 0:
            pos_sum += value + 1
        else:
            neg_sum += value - 1
    neu_count = n - len(values)
    if pos_sum > -neg_sum:
        pos_sum += punct
    elif pos_sum < -neg_sum:
        neg_sum -= punct
    total = pos_sum - neg_sum + neu_count
    # round(x, k) without its decimal conversion, exactly (all |x| <= 1): x * 10**k is
    # within 2e-12 of the exact product, so away from a .5 tie round() of it is the
    # correctly rounded integer r, and r / 10**k is the double nearest r * 10**-k,
    # which is what round(x, k) returns. Ties and zero (sign of -0.0) use round().
    neg = (0.0 - neg_sum) / total
    y = neg * 1000.0
    r = round(y)
    neg = r / 1000.0 if r and -0.499 < y - r < 0.499 else round(neg, 3)
    neu = neu_count / total
    y = neu * 1000.0
    r = round(y)
    neu = r / 1000.0 if r and -0.499 < y - r < 0.499 else round(neu, 3)
    pos = pos_sum / total
    y = pos * 1000.0
    r = round(y)
    pos = r / 1000.0 if r and -0.499 < y - r < 0.499 else round(pos, 3)
    y = compound * 10000.0
    r = round(y)
    compound = r / 10000.0 if r and -0.499 < y - r < 0.499 else round(compound, 4)
    return {"neg": neg, "neu": neu, "pos": pos, "compound": compound}
