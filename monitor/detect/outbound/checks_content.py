"""What the post says: language, topics, claims and voice (pure text checks)."""

from __future__ import annotations

import re
from functools import lru_cache

from monitor.detect.outbound import lexicon as lx
from monitor.detect.outbound import saferegex
from monitor.detect.outbound.context import ScreenContext, Watch
from monitor.detect.outbound.core import Hit, check
from monitor.detect.outbound.text import LEET_I, LEET_L, MASKS, PhraseSet

_ONE_WORD = {w for w in lx.PROFANITY_STRONG + lx.SLURS + lx.PROFANITY_MILD if " " not in w}
_MILD = frozenset(lx.PROFANITY_MILD)
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][\s.\-_*]){2,}[^\W\d_](?![^\W\d_])")
_REPEAT = re.compile(r"(.)\1{2,}")
_EDGE = ".,;:!?\"'()[]{}<>…“”‘’"


def _squeeze(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


@lru_cache(maxsize=1)
def _squeezed() -> dict[str, str]:
    return {_squeeze(w): w for w in _ONE_WORD}


def _masked(token: str) -> str | None:
    """``f***ing`` -> ``fucking``: a listed word that fits the masked spelling."""
    core = token.strip(_EDGE)
    if len(core) < 3 or not core[0].isalpha() or not any(c in "*#%" for c in core[1:]):
        return None
    parts: list[str] = []
    run = 0
    for char in core + " ":
        if char in MASKS and char != ".":
            run += 1
            continue
        if run:
            parts.append(f"[a-z]{{1,{run + 1}}}")
            run = 0
        if char != " ":
            if not char.isalpha():
                return None
            parts.append(re.escape(char))
    pattern = re.compile("".join(parts))
    return next((w for w in sorted(_ONE_WORD) if pattern.fullmatch(w)), None)


def profane_words(ctx: ScreenContext) -> list[str]:
    """Listed words found as written, masked, in leetspeak, spaced or stretched."""
    allow = {a.casefold() for a in ctx.params.tuned("profanity").allow}
    words = set(_ONE_WORD) | {t.casefold() for t in ctx.params.tuned("profanity").terms}
    found = ctx.find("profanity", lx.PROFANITY_STRONG + lx.SLURS + lx.PROFANITY_MILD)
    for raw in ctx.view.folded.split():
        if raw.startswith(("http", "www.")):
            continue
        token = raw.strip(_EDGE)
        if (hit := _masked(token)) is not None:
            found.append(hit)
            continue
        candidates = []
        if any(c in "013457893@$!|€+" for c in token) and any(c.isalpha() for c in token):
            candidates = [token.translate(LEET_I), token.translate(LEET_L)]
        letters = [re.sub(r"[^a-z]", "", c) for c in [token, *candidates]]
        for word in letters:
            if word != token and len(word) >= 4 and word in words:
                found.append(word)
            elif _REPEAT.search(word) and (base := _squeezed().get(_squeeze(word))):
                found.append(base)
            elif len(word) >= 5 and word not in words:
                stem = next((s for s in lx.PROFANITY_STEMS if s in word), None)
                if stem is not None:
                    found.append(stem)
    for match in _SPACED.finditer(ctx.view.folded):
        joined = re.sub(r"[\s.\-_*]", "", match.group(0))
        if joined in words:
            found.append(joined)
    return [w for w in dict.fromkeys(found) if w not in allow]


@check("profanity", weight=1.0, reason="profanity or slur")
def profanity(ctx: ScreenContext) -> list[Hit]:
    return [Hit(w, 0.4 if w in _MILD else 1.0) for w in profane_words(ctx)]


@check("blocked_term", weight=1.0, reason="blocked term", cap=1.0)
def blocked_term(ctx: ScreenContext) -> list[Hit]:
    return [Hit(t) for t in ctx.find("blocked_term", ctx.params.blocked_terms)]


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> saferegex.Matcher:
    return saferegex.compile_safe(pattern)


@check("blocked_pattern", weight=1.0, reason="matches blocked pattern", cap=1.0)
def blocked_pattern(ctx: ScreenContext) -> list[Hit]:
    extra = ctx.params.tuned("blocked_pattern").terms
    return [Hit(repr(p)) for p in (*ctx.params.blocked_patterns, *extra)
            if saferegex.problem(p) is None and _pattern(p)(ctx.view.folded)]


def sensitive_terms(ctx: ScreenContext) -> list[str]:
    return ctx.find("sensitive_event", lx.SENSITIVE + lx.SENSITIVE_HASHTAGS)


@check("sensitive_event", weight=0.3, reason="mentions a sensitive event")
def sensitive_event(ctx: ScreenContext) -> list[Hit]:
    return [Hit(t) for t in sensitive_terms(ctx)]


def watch_hits(ctx: ScreenContext) -> list[Watch]:
    if not ctx.params.enabled("watchlist"):
        return []
    return [w for w in (*ctx.setup.static_watch, *ctx.watch) if w.matcher.find(ctx.view)]


@check("watchlist", weight=0.7, reason="on the sensitive-events watchlist", cap=3.0)
def watchlist(ctx: ScreenContext) -> list[Hit]:
    base = ctx.weight("watchlist", 0.7) or 1.0
    return [Hit(f"{w.term}" + (f" ({w.note})" if w.note else ""),
                1.0 if w.weight is None else w.weight / base) for w in watch_hits(ctx)]


@check("newsjacking", weight=0.7, reason="sells or jokes on a sensitive event")
def newsjacking(ctx: ScreenContext) -> list[Hit]:
    topics = [w.term for w in watch_hits(ctx)]
    if ctx.params.enabled("sensitive_event"):
        topics += sensitive_terms(ctx)
    if not topics:
        return []
    markers = ctx.find("newsjacking", lx.PROMO) + ctx.find("newsjacking", lx.JOKE, False)
    if not markers and re.search(r"[£$€]\s?\d", ctx.view.raw):
        markers = ["a price"]
    return [Hit(f"{topics[0]} + {markers[0]}")] if markers else []


@check("divisive", weight=0.5, reason="divisive topic (politics/religion)", cap=2.0)
def divisive(ctx: ScreenContext) -> list[Hit]:
    return [Hit(t) for t in ctx.find("divisive", lx.DIVISIVE)]


_CLAIMS = re.compile("|".join(f"(?:{c})" for c in lx.CLAIMS))


@check("company_claim", weight=1.0, reason="claim about the company")
def company_claim(ctx: ScreenContext) -> list[Hit]:
    text = ctx.view.norm
    hits = [Hit(m.group(0).strip()) for m in _CLAIMS.finditer(text)]
    hits += [Hit(t) for t in ctx.find("company_claim", ())]
    return hits


_ENDORSE = PhraseSet(["switch to", "go with", "better than us", "better than ours",
                      "way better", "much better", "recommend", "try", "head over to",
                      "follow", "instead", "cheaper"])


@check("competitor", weight=0.4, reason="mentions a competitor", cap=2.5)
def competitor(ctx: ScreenContext) -> list[Hit]:
    names = ctx.find("competitor", ctx.params.competitors)
    if not names:
        return []
    hits = [Hit(n) for n in names]
    endorse = _ENDORSE.find(ctx.view)
    if endorse:
        hits.append(Hit(f"endorses it ({endorse[0]})", 1.5))
    elif ctx.find("newsjacking", lx.JOKE, False) or ctx.find("insult", lx.INSULTS) or (
            ctx.compound is not None and ctx.compound <= -0.3):
        hits.append(Hit("mocks or disparages it", 1.0))
    return hits


_SECOND_PERSON = PhraseSet(["you", "your", "youre", "yourself", "u", "ur"])


@check("tone", weight=0.6, reason="confrontational tone toward the audience", cap=2.0)
def tone(ctx: ScreenContext) -> list[Hit]:
    hits = [Hit(t) for t in ctx.find("tone", lx.TONE)]
    compound = ctx.compound
    if compound is not None and compound <= -0.6 and (_SECOND_PERSON.find(ctx.view)
                                                      or "@" in ctx.view.raw):
        hits.append(Hit(f"strongly negative ({compound:+.2f})", 0.5))
    return hits


@check("insult", weight=0.6, reason="insult or violent language", cap=2.0)
def insult(ctx: ScreenContext) -> list[Hit]:
    return [Hit(t) for t in ctx.find("insult", lx.INSULTS)]


_INTOX_STEMS = ("drunk", "hungover", "slizz", "sloshed", "stoned", "tipsy")


@check("personal_voice", weight=0.6, reason="personal voice (alcohol, drugs, off-duty chat)",
       cap=2.0)
def personal_voice(ctx: ScreenContext) -> list[Hit]:
    hits = [Hit(t) for t in ctx.find("personal_voice", lx.INTOXICATION)]
    for tag in ctx.view.hashtags:
        stem = next((s for s in _INTOX_STEMS if s in tag), None)
        if stem is not None:
            hits.append(Hit(f"#{tag}"))
    hits += [Hit(t, 0.67) for t in ctx.find("personal_voice", lx.CASUAL, False)]
    return hits
