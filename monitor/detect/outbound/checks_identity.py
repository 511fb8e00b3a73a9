"""Hate, threats and consent: the checks that read the tagged post (:mod:`.identity`)."""

from __future__ import annotations

from monitor.detect.outbound.context import ScreenContext
from monitor.detect.outbound.core import Hit, check
from monitor.detect.outbound.identity import Analysis, analysis, statements
from monitor.detect.outbound.tagger import Tok

BODY = frozenset({"legs", "leg", "neck", "face", "head", "teeth", "throat", "skull", "knees",
                  "kids", "family", "children", "house", "home", "car", "shop", "store",
                  "daughter", "son", "wife", "husband", "arms", "arm", "back", "life"})


@check("identity_hate", category="hate_speech_aggression", weight=1.0,
       reason="hostile statement about a protected group")
def identity_hate(ctx: ScreenContext) -> list[Hit]:
    a = analysis(ctx)
    if a is None:
        return []
    hits = []
    for s in statements(a):
        detail = f"{s.target} + {s.predicate} ({s.kind})" if s.predicate else \
            f"{s.target} ({s.kind})"
        if s.changed:
            detail += ", obfuscated"
        if s.weight < 1.0:
            detail += ", quoted or reported"
        hits.append(Hit(detail, s.weight))
    return _strongest(hits)


def _strongest(hits: list[Hit]) -> list[Hit]:
    """Up to three hits, the strongest first (the finding's factor is capped anyway)."""
    return sorted(hits, key=lambda h: -h.factor)[:3]


# -- threats toward anyone ------------------------------------------------------
def _target_after(toks: list[Tok], k: int, end: int) -> str | None:
    """The person a violent word at ``k`` is aimed at ("punch the next customer")."""
    for j in range(k + 1, min(end, k + 4)):
        tok = toks[j]
        if tok.has("YOU", "PERSON") and tok.text not in ("your", "his", "her"):
            return tok.text
        if tok.text in ("your", "his", "her") and j + 1 < end and toks[j + 1].text in BODY:
            return f"{tok.text} {toks[j + 1].text}"
        if tok.text not in ("the", "that", "this", "next", "first", "every", "any", "all",
                            "a", "one", "of", "up", "down", "out"):
            return None
    return None


def _meant(a: Analysis, start: int, k: int) -> bool:
    toks = a.toks
    if any("MOD" in t.classes for t in toks[start:k]):
        return True
    first = next((j for j in range(start, k) if not toks[j].has("YOU")), k)
    return first == k  # an imperative, or "@x kill ..."


def threats(a: Analysis) -> list[Hit]:
    toks = a.toks
    hits: list[Hit] = []
    for start, end in a.spans:
        for k in range(start, end):
            tok = toks[k]
            if "THREAT" in tok.classes:
                hits.append(Hit(f"'{tok.text}'"))
            elif "THREATW" in tok.classes and not _count_neg(toks, start, k):
                hits.append(Hit(f"'{tok.text}'", 0.4))
            elif tok.has("KILL") and not tok.has("COP"):
                if k > start and toks[k - 1].text in ("it", "this", "that", "which", "heat"):
                    continue  # "would it kill you to ...": no one is the agent
                target = _target_after(toks, k, end) if _meant(a, start, k) else None
                if target is not None and not _count_neg(toks, start, k):
                    hits.append(Hit(f"{tok.text} {target}"))
                elif (wished := _wished_on(toks, start, k)) is not None:
                    hits.append(Hit(f"{wished} ... {tok.text}"))
            elif (tok.text in DEATH and k > start and toks[k - 1].has("YOU", "PERSON")
                  and any("MOD" in t.classes for t in toks[start:k])
                  and not _count_neg(toks, start, k) and not _idiom_after(toks, k, end)):
                hits.append(Hit(f"{toks[k - 1].text} {tok.text}"))
    return hits


DEATH = frozenset({"die", "dies", "dead", "death", "perish", "rot", "drop dead", "rot in hell",
                   "burn in hell"})
PASSIVE = frozenset({"be", "get", "gets", "got", "getting", "been", "is", "are"})


def _wished_on(toks: list[Tok], start: int, k: int) -> str | None:
    """"hope you get hit by a bus", "whoever wrote that should be shot": harm wished on a
    person named before it, with a wish or a modal between (the person suffers it)."""
    if k == start or toks[k - 1].text not in PASSIVE:
        return None
    for j in range(k - 1, max(start, k - 7) - 1, -1):
        if toks[j].has("YOU", "PERSON") and toks[j].text not in ("your", "his", "her"):
            between = toks[j + 1:k]
            wish = any(t.text in ("hope", "wish", "pray") for t in toks[max(start, j - 2):j])
            modal = any("MOD" in t.classes for t in between)
            if (wish or modal) and not any("NEG" in t.classes for t in toks[start:k]):
                return toks[j].text
            return None
    return None


def _count_neg(toks: list[Tok], start: int, k: int) -> int:
    return sum("NEG" in t.classes for t in toks[max(start, k - 4):k])


def _idiom_after(toks: list[Tok], k: int, end: int) -> bool:
    return k + 1 < end and toks[k + 1].text in ("for", "to", "laughing", "of")


@check("threat", category="hate_speech_aggression", weight=1.0,
       reason="threat or call to violence against a person", cap=1.0)
def threat(ctx: ScreenContext) -> list[Hit]:
    a = analysis(ctx)
    if a is None:
        return []
    hits = threats(a)
    if hits and all(h.factor < 1.0 for h in hits):
        addressed = any(t.has("YOU") for t in a.toks)
        hostile = ctx.compound is not None and ctx.compound <= -0.2
        if addressed and (hostile or len(hits) > 1):
            hits.append(Hit("aimed at the reader in a hostile tone", 0.6))
    return _strongest(hits)


SPIKE = frozenset({"spike", "spiked", "spiking", "drug", "drugged"})
SOMEONE = frozenset({"your", "her", "his", "their", "someone", "somebody", "friend",
                     "friends", "date", "girlfriend", "boyfriend", "colleague", "boss", "wife",
                     "husband", "guest", "guests", "mate"})
DRINKS = frozenset({"drink", "drinks", "eggnog", "punch", "glass", "cocktail", "coffee", "beer",
                    "wine", "pint", "shot", "shots", "juice", "soda", "latte", "prosecco"})


@check("consent", category="crime_harmful_acts", weight=1.0,
       reason="implies taking away consent (spiked drinks, 'no' means yes)")
def consent(ctx: ScreenContext) -> list[Hit]:
    words = ctx.view.token_set
    hits = []
    if not words.isdisjoint(SPIKE) and not words.isdisjoint(DRINKS):
        seq = ctx.view.norm.split()  # "spike your best friend's eggnog": someone else's drink
        for k, word in enumerate(seq):
            if word in SPIKE and any(w in SOMEONE for w in seq[k + 1:k + 4]) and any(
                    w in DRINKS for w in seq[k + 1:k + 6]):
                hits.append(Hit(f"{word} someone's drink"))
                break
    a = analysis(ctx)
    if a is not None:
        hits += [Hit(f"'{t.text}'") for t in a.toks if "CONSENT" in t.classes][:2]
    return hits


_FILLERS = frozenset({"are", "is", "am", "were", "such", "a", "an", "absolute", "total",
                      "complete", "utter", "so", "too", "clearly", "really", "just", "being",
                      "pathetic", "little", "stupid", "fat", "ugly", "miserable", "old",
                      "bloody", "fucking", "damn", "right", "imagine", "this", "that"})


def directed_insults(ctx: ScreenContext) -> list[str]:
    """Insults aimed at the reader: "you're too stupid", "@x ..., loser", "@x shut up"."""
    a = analysis(ctx)
    if a is None:
        return []
    toks = a.toks
    found = []
    handle = any("HANDLE" in t.classes for t in toks)
    for start, end in a.spans:
        for i in range(start, end):
            if toks[i].text not in ("you", "yourself") and "HANDLE" not in toks[i].classes:
                continue
            counterfactual = i > start and toks[i - 1].text == "if"  # "if you weren't so thick"
            for j in range(i + 1, min(end, i + 5)):
                nxt = toks[j]
                if nxt.has("BAD", "DEH") and not nxt.has("POS", "GRP"):
                    found.append(f"you ... {nxt.text}")
                    break
                if nxt.text not in _FILLERS and not (counterfactual and nxt.text == "not"):
                    break
        last = end - 1
        if handle and end - start >= 2 and toks[last].has("BAD", "DEH") and \
                toks[last - 1].text == ",":
            found.append(f"..., {toks[last].text}")
        if handle and any("DISMISS" in t.classes for t in toks[start:end]):
            found.append(next(t.text for t in toks[start:end] if "DISMISS" in t.classes))
    return found
