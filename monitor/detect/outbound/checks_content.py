"""What the post says: language, topics, claims and voice (pure text checks)."""

from __future__ import annotations

import re
from functools import lru_cache

from monitor.detect.outbound import lexicon as lx
from monitor.detect.outbound import saferegex
from monitor.detect.outbound.checks_identity import directed_insults
from monitor.detect.outbound.context import ScreenContext
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


@lru_cache(maxsize=64)
def _word_sets(terms: tuple[str, ...],
               allow: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    return (frozenset(_ONE_WORD) | {t.casefold() for t in terms},
            frozenset(a.casefold() for a in allow))


def profane_words(ctx: ScreenContext) -> list[str]:
    """Listed words found as written, masked, in leetspeak, spaced or stretched."""
    tuned = ctx.params.tuned("profanity")
    words, allow = _word_sets(tuned.terms, tuned.allow)
    found = ctx.find("profanity", lx.PROFANITY_STRONG + lx.SLURS + lx.PROFANITY_MILD)
    folded = ctx.view.folded
    if _STEM_RX.search(folded):  # inside longer words and hashtags: "sh1tshow", "#fuckmondays"
        for token in ctx.view.token_set:
            if len(token) >= 5 and token not in words and token.isalpha():
                stem = next((s for s in lx.PROFANITY_STEMS if s in token), None)
                if stem is not None:
                    found.append(stem)
    if ctx.view.memo.get("stretched", True):  # stretched: "fuuuuuck"
        for token in ctx.view.folded.split():
            word = re.sub(r"[^a-z]", "", token)
            if _REPEAT.search(word) and (base := _squeezed().get(_squeeze(word))):
                found.append(base)
    for raw in _odd_tokens(folded):  # leetspeak and masks: "f***ing", "$hit"
        if raw.startswith(("http", "www.")):
            continue
        token = raw.strip(_EDGE)
        if not token or token.isalpha():
            continue
        if (hit := _masked(token)) is not None:
            found.append(hit)
            continue
        candidates = []
        if any(c in "013457893@$!|€+" for c in token) and any(c.isalpha() for c in token):
            candidates = [token.translate(LEET_I), token.translate(LEET_L)]
        for word in [re.sub(r"[^a-z]", "", c) for c in candidates]:
            if len(word) >= 4 and word in words:
                found.append(word)
            elif len(word) >= 5 and word not in words:
                stem = next((s for s in lx.PROFANITY_STEMS if s in word), None)
                if stem is not None:
                    found.append(stem)
    if _SPACED_HINT.search(folded):
        for match in _SPACED.finditer(folded):
            joined = re.sub(r"[\s.\-_*]", "", match.group(0))
            if joined in words:
                found.append(joined)
    return [w for w in dict.fromkeys(found) if w not in allow]


_STEM_RX = re.compile("|".join(lx.PROFANITY_STEMS))
_ODD_CORE = re.compile(r"[a-z][0-9@$!|€+*#%][a-z0-9*]|[0-9@$!|€+*#%][a-z]")


def _odd_tokens(folded: str) -> list[str]:
    """The whitespace-separated words holding a letter next to a digit or a symbol."""
    out: list[str] = []
    for match in _ODD_CORE.finditer(folded):
        start = folded.rfind(" ", 0, match.start()) + 1
        end = folded.find(" ", match.end())
        word = folded[start:] if end < 0 else folded[start:end]
        if not out or out[-1] != word:
            out.append(word)
    return out
_SPACED_HINT = re.compile(r"\b[^\W\d_][\s.\-_*][^\W\d_][\s.\-_*][^\W\d_]\b")
_SLURS = frozenset(lx.SLURS)


@check("profanity", category="obscenity_profanity", weight=1.0, reason="profanity or slur")
def profanity(ctx: ScreenContext) -> list[Hit]:
    return [Hit(w, 0.4 if w in _MILD else 1.0,
                "hate_speech_aggression" if w in _SLURS else None) for w in profane_words(ctx)]


@check("blocked_term", category="spam_harmful", weight=1.0, reason="blocked term", cap=1.0)
def blocked_term(ctx: ScreenContext) -> list[Hit]:
    return [Hit(t) for t in ctx.find("blocked_term", ctx.params.blocked_terms)]


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> saferegex.Matcher | None:
    """The compiled admin pattern, or None when it is unsafe (validated once)."""
    return saferegex.compile_safe(pattern) if saferegex.problem(pattern) is None else None


@check("blocked_pattern", category="spam_harmful", weight=1.0,
       reason="matches blocked pattern", cap=1.0)
def blocked_pattern(ctx: ScreenContext) -> list[Hit]:
    extra = ctx.params.tuned("blocked_pattern").terms
    return [Hit(repr(p)) for p in (*ctx.params.blocked_patterns, *extra)
            if (matcher := _pattern(p)) is not None and matcher(ctx.view.folded)]


@check("divisive", category="sensitive_social_issues", weight=0.5,
       reason="divisive topic (politics/religion)", cap=2.0)
def divisive(ctx: ScreenContext) -> list[Hit]:
    # a place of worship or a holy name is a fact of community life, not a position
    return [Hit(t, 0.5 if t in lx.RELIGIOUS_PLACES else 1.0)
            for t in ctx.find("divisive", lx.DIVISIVE) if not _in_a_name(ctx, t)]


_NAME_PART = re.compile(r"[A-Z][\w'’]*")
_PLACE_WORDS = frozenset({"road", "street", "st", "lane", "hall", "square", "avenue", "end",
                          "green", "park", "close", "way", "hill", "gate", "walk"})


def _in_a_name(ctx: ScreenContext, term: str) -> bool:
    """"St Mary's Church", "Church Road": a capitalised word inside a name is a place."""
    if " " in term:
        return False
    raw = ctx.view.raw
    spots = [m for m in re.finditer(rf"\b{re.escape(term)}\b", raw, re.IGNORECASE)]
    if not spots:
        return False
    for m in spots:
        if not m.group(0)[0].isupper():
            return False
        before = raw[:m.start()].rstrip().split(" ")[-1:] or [""]
        after = raw[m.end():].lstrip().split(" ")[:1] or [""]
        prev_name = bool(before[0]) and _NAME_PART.fullmatch(before[0].rstrip(".,")) is not None \
            and m.start() > 0 and raw[:m.start()].rstrip()[-1:] not in ".!?"
        next_place = after[0].rstrip(".,").casefold() in _PLACE_WORDS
        if not (prev_name or next_place):
            return False
    return True


_CLAIMS = re.compile("|".join(f"(?:{c})" for c in lx.CLAIMS))
_CLAIM_WORDS = frozenset({"sold", "acquired", "bought", "taken", "owned", "part", "shutting",
                          "closing", "shut", "close", "going", "lay", "layoff", "layoffs",
                          "laid", "laying", "job", "fired", "resigned", "quit", "stepped",
                          "arrested", "losing", "lost", "wind", "winding", "administration"})


@check("company_claim", category="misinformation", weight=1.0, reason="claim about the company")
def company_claim(ctx: ScreenContext) -> list[Hit]:
    extra = ctx.find("company_claim", ())
    if ctx.view.token_set.isdisjoint(_CLAIM_WORDS) and not any(
            w.startswith(("redundan", "merg", "ceas", "insolven", "bankrupt"))
            for w in ctx.view.token_set):
        return [Hit(t) for t in extra]  # none of the words any claim needs
    text = ctx.view.norm
    hits = [Hit(m.group(0).strip()) for m in _CLAIMS.finditer(text)]
    hits += [Hit(t) for t in ctx.find("company_claim", ())]
    return hits


_ENDORSE = PhraseSet(["switch to", "go with", "better than us", "better than ours",
                      "way better", "much better", "recommend", "try", "head over to",
                      "follow", "instead", "cheaper"])


@check("competitor", category="misinformation", weight=0.4, reason="mentions a competitor", cap=2.5)
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


@check("tone", category="hate_speech_aggression", weight=0.6,
       reason="confrontational tone toward the audience", cap=2.0)
def tone(ctx: ScreenContext) -> list[Hit]:
    hits = [Hit(t) for t in ctx.find("tone", lx.TONE)]
    compound = ctx.compound
    if compound is not None and compound <= -0.6 and (_SECOND_PERSON.find(ctx.view)
                                                      or "@" in ctx.view.raw):
        hits.append(Hit(f"strongly negative ({compound:+.2f})", 0.5))
    return hits


@check("insult", category="hate_speech_aggression", weight=0.6,
       reason="insult or violent language", cap=2.0)
def insult(ctx: ScreenContext) -> list[Hit]:
    # a bare adjective ("useless", "a disgrace") may describe a thing: half weight
    hits = [Hit(t, 0.5 if t in lx.INSULT_ADJECTIVES else 1.0)
            for t in ctx.find("insult", lx.INSULTS)]
    # an insult aimed at the reader is an attack on a customer: critical on its own
    return hits + [Hit(f"aimed at the reader: {d}", 1.67) for d in directed_insults(ctx)]


_INTOX_STEMS = ("drunk", "hungover", "slizz", "sloshed", "stoned", "tipsy")


@check("personal_voice", category="drugs_tobacco_alcohol", weight=0.6,
       reason="personal voice (alcohol, drugs, off-duty chat)",
       cap=2.0)
def personal_voice(ctx: ScreenContext) -> list[Hit]:
    hits = [Hit(t) for t in ctx.find("personal_voice", lx.INTOXICATION)]
    for tag in ctx.view.hashtags:
        stem = next((s for s in _INTOX_STEMS if s in tag), None)
        if stem is not None:
            hits.append(Hit(f"#{tag}"))
    hits += [Hit(t, 0.67) for t in ctx.find("personal_voice", lx.CASUAL, False)]
    return hits
