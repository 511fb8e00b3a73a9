"""Hostile statements about protected groups, read from their structure.

A post is tagged once (:func:`analysis`: canonical words, then pack classes). A
*statement* is a target (a group mention, or "they/them" when the post names a
group, or "she/her" for gender) joined to a *predicate* in the same sentence:

- subject form, target first: "X are vermin", "X can't be trusted", "X should all die",
  "why are X so stupid", "X ruin everything" (up to :data:`GAP` words apart, and not
  when the target is only the object of another word: "scams targeting X");
- object form, predicate first: "I hate X", "kill all X", "I'd never hire a X",
  "nothing good about X", "filthy X", "more pathetic than X";
- fixed shapes: "typical X", "better without X", "get X out", "rather die than ... X",
  "X in charge? No thanks", a slur, a sexist stereotype in a post about women.

Each predicate has a valence: hostile words (negative evaluation, dehumanising,
hatred, violence, exclusion, "should be gone") are negative; positive evaluation and
relations ("smart", "trust", "welcome", "belong") are positive. Negations between the
two, a negating determiner ("no X") and a denied claim before the target ("it's wrong
to say", "I would never say") each flip it: the statement is hostile when a negative
predicate is asserted or a positive one is denied ("X are never any good", "no X
allowed"), and harmless otherwise ("X are not vermin", "no one should hate X").
Violence, exclusion and "gone" predicates only count when someone means or urges
them (a modal, an intent, a wish or an imperative): "X should be deported" is hostile,
"X were deported in 1882" is history.

Counter-speech: a statement in a post that condemns it ("... is unacceptable", "we
removed comments ...") is dropped; one that is quoted or reported ("someone wrote",
quotation marks) may ask for a look (half weight) but is never critical.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from monitor.detect.outbound import canon
from monitor.detect.outbound.context import ScreenContext
from monitor.detect.outbound.tagger import Tok, sentences, tag
from monitor.detect.outbound.vocab import BARE, BARE_KEYS, Vocabulary, stoplist, vocabulary

GAP = 7  # words between a subject target and its predicate
NEGATIVE = ("BAD", "DEH", "ACT", "DISG", "HATE", "KILL", "THREAT", "GONE", "EXCL", "CURSE")
POSITIVE = ("POS", "POSV")
LICENSED = ("KILL", "GONE", "EXCL")  # meant or urged, not reported
OBJECT_MARKERS = frozenset({"about", "for", "of", "to", "with", "against", "by", "from",
                            "among", "amongst", "towards", "toward", "at", "like", "than",
                            "help", "helping", "support", "supporting", "serve", "serving",
                            "protect", "protecting", "hire", "hiring", "welcome", "welcoming",
                            "targeting", "targets", "scam", "scams", "scamming", "exploit",
                            "exploiting", "affecting", "affects", "celebrate", "celebrating",
                            "honour", "honor", "honouring", "honoring", "meet", "met", "and"})
SKIPPABLE = frozenset({"all", "the", "these", "those", "most", "many", "some", "every", "each",
                       "any", "a", "an", "our", "such", "single", "bloody", "damn", "fucking",
                       "filthy", "so", "called", "more", "really", "just", "of", "one"})
F2_BLOCK = frozenset({"when", "how", "what", "because", "if", "say", "says", "saying",
                      "treated", "treat", "treating", "called", "calling", "who", "which",
                      "where", "while", "but", "think", "thinking", ",", "against"})
PERCEIVE = frozenset({"see", "seeing", "saw", "watch", "watching", "hear", "hearing", "meet",
                      "meeting", "look", "looking", "at"})
GENDER_WORDS = frozenset({"woman", "women", "womens", "girl", "girls", "ladies", "lady", "wife",
                          "wives", "she", "female", "females", "housewives"})
OUT_PARTICLES = frozenset({"out", "back", "away", "home", "up", "off"})
EXPEL_VERBS = frozenset({"get", "keep", "send", "kick", "throw", "round", "lock", "ship",
                         "drive", "chase", "run", "wipe", "stamp", "boot", "push"})
REJECTIONS = (("no", "thanks"), ("no", "thank", "you"), ("hell", "no"), ("god", "help", "us"),
              ("what", "a", "joke"), ("yeah", "right"), ("no", "way"))


@dataclass(slots=True)
class Analysis:
    toks: list[Tok]
    spans: list[tuple[int, int]]
    group: bool  # the post names a protected group
    women: bool  # ... women in particular (or says "she/her" about Women's Day)


@dataclass(frozen=True, slots=True)
class Statement:
    target: str
    predicate: str
    kind: str
    weight: float  # 1.0 hostile; 0.5 quoted or reported
    changed: bool  # read through an obfuscation


def vocab_of(ctx: ScreenContext) -> Vocabulary:
    key = ctx.setup.identity_key
    return vocabulary(*key)


def analysis(ctx: ScreenContext) -> Analysis | None:
    """The tagged post, or None when it has nothing the identity rules read (memoised)."""
    memo = ctx.view.memo
    if "identity" in memo:
        found: Analysis | None = memo["identity"]  # type: ignore[assignment]
        return found
    vocab = vocab_of(ctx)
    result = None
    if not _worth_reading(ctx, vocab):
        memo["identity"] = None
        return None
    seq = canon.words(ctx.view.raw, vocab, stoplist())
    texts = {w.text for w in seq}
    if not texts.isdisjoint(vocab.triggers):
        toks = tag(seq, vocab, ctx.setup.own_words)
        dims = {t.dim for t in toks if "GRP" in t.classes}
        women = "gender" in dims or not texts.isdisjoint(GENDER_WORDS)
        result = Analysis(toks, sentences(toks), bool(dims), women)
    memo["identity"] = result
    return result


_NON_ASCII_LETTER = re.compile(r"[^\W\d_](?<![a-zA-Z])")  # homoglyphs, accents
_LEETISH = re.compile(r"[a-zA-Z][0-9@$!|*€+][a-zA-Z0-9*]|\b[0-9$!|€+][a-zA-Z]{2}|\bh8")


def _disguised(raw: str, seq: list[str]) -> bool:
    """Signs of a disguised spelling: look-alike letters, leetspeak or masks, s p a c i n g."""
    if not raw.isascii() and _NON_ASCII_LETTER.search(raw):
        return True
    if _LEETISH.search(raw):
        return True
    run = 0
    for word in seq:
        run = run + 1 if len(word) == 1 and word.isalpha() else 0
        if run >= 3:
            return True
    return False


GROUPISH = frozenset({"GRP", "SLUR", "ADJ", "CAP"})
STANDALONE = frozenset({"THREAT", "THREATW", "CONSENT"})
TARGETED = frozenset({"BAD", "DEH", "KILL", "GONE", "CURSE", "DISMISS", "EXCL"})
ADDRESSEES = frozenset({"you", "your", "yourself", "him", "her", "he", "she", "whoever",
                        "critic", "reporter", "reviewer", "journalist", "customer", "blogger",
                        "troll", "guy", "person"})


# what a word without its apostrophe may have been ("I'll" is "ill" in the matching form)
_MAYBE = {"ill": "i will", "well": "we will", "shell": "she will", "hell": "he will",
          "wed": "we would", "id": "i would", "youd": "you would", "theyd": "they would",
          "were": "we are", "its": "it is", "lets": "let us", "hed": "he would"}
_MAYBE_KEYS = BARE_KEYS | frozenset(_MAYBE)


def _expanded(words: frozenset[str]) -> frozenset[str]:
    """The post's words with contractions expanded ("youll" -> "you", "will"): the prefilter
    only asks whether a phrase *could* be there, so a guess too many costs nothing."""
    extra = [w for word in words & _MAYBE_KEYS
             for w in BARE.get(word, _MAYBE.get(word, "")).split()]
    return words | frozenset(extra) if extra else words


def _worth_reading(ctx: ScreenContext, vocab: Vocabulary) -> bool:
    """False when no pack phrase can be in the post, however it is spelled (the fast path):
    every word of some phrase must be there, and a threat or an insult needs someone to
    aim at (a group, "you", an @mention, "that critic")."""
    words = _expanded(ctx.view.token_set)
    seq = ctx.view.norm.split()
    if not words.isdisjoint(vocab.variant_keys) or _disguised(ctx.view.raw, seq):
        return True
    found: set[str] = set()
    for word in words & vocab.triggers:
        for need, classes in vocab.needs.get(word, ()):
            if need <= words:
                found |= classes
    if found & (GROUPISH | STANDALONE):
        return True
    if found & TARGETED and (not words.isdisjoint(ADDRESSEES) or "@" in ctx.view.raw):
        return True
    if "STEREO" in found and not words.isdisjoint(GENDER_WORDS):
        return True
    known = vocab.words
    heads = vocab.split_heads
    for first, second in itertools.pairwise(seq):  # "ver min"
        if first in heads and first + second in known:
            return True
    stop = stoplist()
    return any(len(w) >= 6 and w not in known and w not in stop and w.isalpha()
               and canon.glued(w, vocab) for w in words)


def _targets(a: Analysis, start: int, end: int) -> list[int]:
    return [i for i in range(start, end)
            if "GRP" in a.toks[i].classes or (a.group and "REF" in a.toks[i].classes)]


def _count(toks: list[Tok], start: int, end: int, cls: str) -> int:
    return sum(cls in t.classes for t in toks[max(0, start):max(0, end)])


def _licensed(a: Analysis, start: int, target: int, pred: int) -> bool:
    toks = a.toks
    if "THREAT" in toks[pred].classes:
        return True
    if _count(toks, start, pred, "MOD"):
        return True
    first = next((k for k in range(start, pred) if toks[k].text not in SKIPPABLE), pred)
    if first == min(target, pred) and pred < target:  # an imperative: "kill all X"
        return True
    return pred == target + 1 and "GONE" in toks[pred].classes  # "X go home"


def _valence(tok: Tok) -> str | None:
    if tok.has("COP", "MOD") and not tok.has(*NEGATIVE):
        return None  # "like", "make": links, not predicates
    if tok.has(*NEGATIVE):
        return "-"
    if tok.has(*POSITIVE):
        return "+"
    return None


def _hostile(valence: str, negations: int) -> bool:
    return (valence == "-") == (negations % 2 == 0)


def _subject_ok(toks: list[Tok], start: int, target: int) -> bool:
    k = target - 1
    while k >= start and toks[k].text in SKIPPABLE:
        k -= 1
    return k < start or (toks[k].text not in OBJECT_MARKERS and "VIC" not in toks[k].classes) \
        or toks[k].has("COP", "MOD", "NEG")


def _negations_before(toks: list[Tok], start: int, at: int, reach: int) -> int:
    """Negations in the ``reach`` words before ``at`` ("no X", "would never trust")."""
    return _count(toks, max(start, at - reach), at, "NEG")


def _kind(tok: Tok, valence: str) -> str:
    if valence == "+":
        return "denies a positive"
    for cls, kind in (("DEH", "dehumanising"), ("THREAT", "threat"), ("KILL", "threat"),
                      ("GONE", "wishes them gone"), ("EXCL", "exclusion"), ("HATE", "hatred"),
                      ("DISG", "disgust"), ("ACT", "derogatory claim"),
                      ("BAD", "negative evaluation")):
        if cls in tok.classes:
            return kind
    return "hostile"


def _subject(a: Analysis, start: int, end: int, i: int) -> tuple[int, str] | None:
    toks = a.toks
    if not _subject_ok(toks, start, i):
        return None
    for j in range(i + 1, min(end, i + 1 + GAP)):
        tok = toks[j]
        if j > i + 1 and _is_target(a, tok) and not (
                "POS" in tok.classes and _count(toks, i + 1, j, "COP")):
            continue  # "X and Y are ..." (but "X are not women" denies what X are)
        valence = _valence(tok)
        if valence is None:
            if tok.text == "to":
                continue  # "count on X to ruin things"
            if "VIC" in tok.classes or tok.text in ("who", "which", "when", "if"):
                return None  # "X face abuse", "X who ..." : not what X are
            continue
        if tok.has(*LICENSED) and not tok.has("BAD", "DEH", "ACT", "THREAT") and \
                not _licensed(a, start, i, j):
            continue
        negations = _count(toks, i + 1, j, "NEG") + _negations_before(toks, start, i, 2)
        if valence == "-" and _individual(toks, start, i) and "MILD" in tok.classes:
            return j, ""  # "she was rude", "a rude woman": a person, not the group
        return (j, valence) if _hostile(valence, negations) else (j, "")
    return None


SINGULAR_HEADS = frozenset({"man", "woman", "person", "girl", "boy", "guy", "lady", "gentleman",
                            "kid", "child", "bloke"})


def _individual(toks: list[Tok], start: int, i: int) -> bool:
    """One person of the group ("a woman", "that Muslim"), not the group itself."""
    if toks[i].text.split()[-1] in SINGULAR_HEADS:
        return True
    return i > start and toks[i - 1].text in ("a", "an", "this", "that", "the", "one",
                                               "some", "my", "our", "your", "his", "her")


def _is_target(a: Analysis, tok: Tok) -> bool:
    return "GRP" in tok.classes or (a.group and "REF" in tok.classes)


def _object(a: Analysis, start: int, end: int, i: int) -> tuple[int, str] | None:
    toks = a.toks
    perceived = False  # "... every time I see X": only an emotion reaches over "see"
    clause = False  # "I hate that X ...": a clause, not X, is hated (violence reaches over it)
    for k in range(i - 1, max(start, i - 7) - 1, -1):
        tok = toks[k]
        if tok.text in F2_BLOCK or "QUOTE" in tok.classes or _is_target(a, tok):
            return None
        if tok.text == "that":
            clause = True
            continue
        if clause and not tok.has("KILL", "EXCL", "THREAT"):
            return None
        if tok.text in PERCEIVE:
            if end - i > 3:  # "every time I see X (everywhere)": X is what is seen
                return None
            perceived = True
            continue
        gap = i - k - 1
        if tok.has("HATE", "DISG", "CURSE"):
            return k, "-" if _hostile("-", _negations_before(toks, start, k, 3)) else ""
        if perceived:
            continue
        if tok.has("KILL", "EXCL", "THREAT") and not tok.has("COP"):
            if not _licensed(a, start, i, k):
                return None
            return k, "-" if _hostile("-", _negations_before(toks, start, k, 4)) else ""
        if tok.has("GONE") and _licensed(a, start, i, k):
            return k, "-"
        if tok.has("POSV") and not tok.has("COP", "MOD"):
            negations = _negations_before(toks, start, k, 4) + ("NEG" in tok.classes)
            return k, "+" if _hostile("+", negations) else ""
        if tok.has("POS") and gap <= 2:
            return k, "+" if _hostile("+", _negations_before(toks, start, k, 4)) else ""
        if tok.has("BAD", "DEH") and (gap <= 1 or toks[i - 1].text == "than"):
            if "MILD" in tok.classes and _individual(toks, start, k):
                return k, ""  # "a rude woman": a person, not the group
            return k, "-" if _hostile("-", _negations_before(toks, start, k, 3)) else ""
    return None


def _shapes(a: Analysis, start: int, end: int, i: int) -> tuple[int, str] | None:
    """Fixed shapes around target ``i`` (see the module docstring)."""
    toks = a.toks
    before = [t.text for t in toks[max(start, i - 6):i]]
    if before[-2:] == ["only", "good"]:  # "the only good X is a deported one"
        return i - 1, "the only good one"
    if i + 1 < end and toks[i + 1].text == "out" and (i + 2 == end or i == start):
        return i, "exclusion"  # "X out!"
    if before[-1:] == ["typical"] or before[-2:-1] == ["typical"]:
        return i - 1, "typical"
    vocative = (i + 2 < end and toks[i + 1].text == "," and toks[i + 2].has("GONE", "CURSE")) \
        or (i - 1 > start and toks[i - 1].text == "," and toks[start].has("GONE", "CURSE"))
    if vocative:  # "Immigrants, go home!", "Go back home, X"
        return i - 1, "wishes them gone"
    recent = " ".join(before[-3:])
    if recent.endswith("without") and any(w in recent for w in ("better", "world", "place",
                                                                 "country")):
        return i - 1, "better without them"
    if before[-2:] == ["away", "from"] and any(w in ("keep", "stay", "get", "steer")
                                               for w in before):
        return i - 1, "exclusion"
    if any(w in EXPEL_VERBS for w in before[-2:]) and any(
            t.text in OUT_PARTICLES for t in toks[i + 1:min(end, i + 4)]):
        return i - 1, "exclusion"
    texts = [t.text for t in toks[start:i]]
    if "rather" in texts and "than" in texts[texts.index("rather"):]:
        return i - 1, "would rather anything than them"
    after = [t.text for t in toks[i + 1:min(len(toks), end + 6)]]
    for words in REJECTIONS:
        n = len(words)
        if any(tuple(after[k:k + n]) == words for k in range(len(after) - n + 1)):
            return i, "rejection"
    return None


def _counter(a: Analysis, start: int, end: int, i: int, pred: int) -> float:
    """1.0 hostile; 0.5 quoted or reported; 0.0 denied or condemned (see the docstring)."""
    toks = a.toks
    low, high = min(i, pred), max(i, pred)
    condemned = any("CNEG" in t.classes for k, t in enumerate(toks) if not low <= k <= high)
    quoted = any("QUOTE" in t.classes for t in toks[start:end])
    reported = any("REP" in t.classes for t in toks[start:low])
    if condemned and not quoted:
        return 0.0
    return 0.5 if condemned or quoted or reported else 1.0


def statements(a: Analysis) -> list[Statement]:
    out: list[Statement] = []
    toks = a.toks
    for start, end in a.spans:
        for i in _targets(a, start, end):
            tok = toks[i]
            found = _subject(a, start, end, i)
            if found is None or not found[1]:
                found = _object(a, start, end, i) or found
            kind = ""
            if found is not None and found[1] in ("-", "+"):
                kind = _kind(toks[found[0]], found[1])
            elif (shape := _shapes(a, start, end, i)) is not None:
                found, kind = (shape[0], "-"), shape[1]
            elif "SLUR" in tok.classes:
                found, kind = (i, "-"), "slur"
            if not kind or found is None:
                continue
            weight = _counter(a, start, end, i, found[0])
            if weight:
                pred = toks[found[0]]
                out.append(Statement(tok.text, pred.text if found[0] != i else "", kind,
                                     weight, tok.changed or pred.changed))
    if a.women:
        out += _stereotypes(a)
    if a.group and not out:
        out += _elliptical(a)
    for start, end in a.spans:
        for k in range(start, end):
            if "SLOGAN" in toks[k].classes and (weight := _counter(a, start, end, k, k)):
                out.append(Statement("a hate movement's slogan", toks[k].text, "slogan", weight,
                                     toks[k].changed))
    return out


def _elliptical(a: Analysis) -> list[Statement]:
    """A short verbless sentence judging the group named before: "Disgusting people."."""
    named = False
    for start, end in a.spans:
        toks = a.toks[start:end]
        if any("GRP" in t.classes for t in toks):
            named = True
            continue
        if not named or len(toks) > 6 or any(t.has("NEG", "CNEG") for t in toks):
            continue
        pred = next((t for t in toks if t.has("BAD", "DEH") and not t.has("POS")), None)
        if pred is not None and not any(t.has("COP", "MOD", "POSV", "VIC") for t in toks):
            return [Statement("them", pred.text, "negative evaluation", 1.0, pred.changed)]
    return []


def _stereotypes(a: Analysis) -> list[Statement]:
    for start, end in a.spans:
        for k in range(start, end):
            if "STEREO" in a.toks[k].classes:
                target = next((t.text for t in a.toks if "GRP" in t.classes
                               and t.dim == "gender"), "women")
                weight = _counter(a, start, end, k, k)
                if weight:
                    return [Statement(target, a.toks[k].text, "sexist stereotype", weight,
                                      a.toks[k].changed)]
    return []
