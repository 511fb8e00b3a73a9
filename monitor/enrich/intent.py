"""Intent tags: purchase intent and churn risk, from an explainable phrase lexicon.

Each pattern is a regular expression with a tag and a readable label; a match
is kept unless a negation ("not", "never", "won't"...) stands within the three
words before it ("I'm not switching to Rival" is not churn). Matches report the
phrase as written, so an alert can show why the post was tagged. Admins extend
the lexicon per rule with plain phrases (``phrases`` in the ``intent`` rule).

Built for precision over recall: ambiguous words ("considering", "moving to",
"looking for") only count in a buying or leaving context, and "switching to"
needs a named (capitalised or @handle) target other than the brand itself, or
"another ...".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from monitor.config.schema import BrandConfig
from monitor.enrich.textfold import fold

PURCHASE = "purchase_intent"
CHURN = "churn_risk"
TAGS = (PURCHASE, CHURN)

_BUY = r"(?:buy|buying|order|ordering|purchase|purchasing|book|booking|" \
       r"upgrade|upgrading|sign(?:ing)? up|subscribe|subscribing)"
_PROVIDER = r"(?:airline|carrier|provider|bank|company|brand|service|operator|network|app)"
_NOT_A_NAME = r"(?!(?:I|The|A|An|My|Our|Your|This|That|It|Airplane|Terminal|Gate|Plan)\b)"

_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # purchase intent
    (PURCHASE, "thinking of buying", rf"\bthinking (?:of|about) {_BUY}\b"),
    (PURCHASE, "where can I buy", rf"\bwhere (?:can|do|could|should) (?:i|we|one) {_BUY}\b"),
    (PURCHASE, "want to buy/upgrade", rf"\b(?:want|wanting|wanna|would like|'d like|plan|"
                                      rf"planning|going|ready) (?:to )?{_BUY}\b"),
    (PURCHASE, "how much is", r"\bhow much (?:is|are|does|do|would|will|for)\b"
                              r"(?! (?:it take|longer|more)\b)"),
    (PURCHASE, "considering buying", rf"\bconsidering (?:{_BUY}|getting an? |an? new)\b"),
    (PURCHASE, "looking to buy", rf"\blooking (?:to|into) {_BUY}\b|"
                                 rf"\blooking for an? (?:new|good|cheap|reliable|better)\b"),
    (PURCHASE, "in the market for", r"\bin the market for\b"),
    (PURCHASE, "should I buy", rf"\bshould (?:i|we) {_BUY}\b"),
    (PURCHASE, "take my money", r"\btake my money\b"),
    # churn risk
    (CHURN, "switching to", r"\b(?i:switch(?:ing|ed)?) (?i:over )?"
                            rf"(?i:to) (?:@\w+|{_NOT_A_NAME}[A-Z][\w&'-]+)"),
    (CHURN, "switching to another", r"\bswitch(?:ing|ed)? (?:over )?to (?:another|a different|"
                                    r"a new|a better|a competing|a rival|your competitor)\b"),
    (CHURN, "moving to another", rf"\bmov(?:e|ing) (?:over )?to (?:another|a different|a better|"
                                 rf"a competing|a rival) {_PROVIDER}\b|"
                                 rf"\bmov(?:e|ing) (?:over )?to your competitor\b"),
    (CHURN, "cancel my subscription", r"\bcancel(?:l?ing|l?ed)? (?:my|our) (?:subscription|"
                                      r"account|membership|plan|contract|service|card|"
                                      r"loyalty|policy)\b"),
    (CHURN, "never ... again", r"\bnever (?:ever )?(?:flying|fly|buying|buy|ordering|order|"
                               r"shopping|shop|using|use|booking|book|banking|bank|staying|"
                               r"stay|going back|coming back|recommending)\b[^.!?]{0,40}?"
                               r"\bagain\b"),
    (CHURN, "done with you", r"\b(?:i'?m|i am|we'?re|we are|so|totally|officially|finally) "
                             r"done with (?:you|your|this|@\w+|them)\b"),
    (CHURN, "closing my account", r"\bclos(?:e|ing|ed) (?:my|our) (?:account|accounts|card)\b"),
    (CHURN, "taking my business elsewhere", r"\b(?:tak(?:e|ing)|tak(?:en)|moving) (?:my|our) "
                                            r"(?:business|money|custom) (?:elsewhere|to)\b"),
    (CHURN, "last time I use you", r"\b(?:the )?last time (?:i|we|i'?ll|we'?ll|i will) "
                                   r"(?:ever )?(?:fly|use|buy|order|book|bank|shop|stay)\b"),
)

_NEGATION = re.compile(r"\b(?:not|never|no|nor|won'?t|wouldn'?t|don'?t|doesn'?t|didn'?t|"
                       r"isn'?t|aren'?t|ain'?t|can'?t|cannot|shouldn'?t|stop(?:ped)?|"
                       r"quit|without)\b|n't\b", re.IGNORECASE)
_WORD = re.compile(r"[\w'’]+")


@dataclass(frozen=True, slots=True)
class IntentMatch:
    tag: str
    label: str  # the pattern's readable name
    phrase: str  # the text that matched, as written


@dataclass(frozen=True, slots=True)
class _Pattern:
    tag: str
    label: str
    regex: re.Pattern[str]


def _compile(patterns: Iterable[tuple[str, str, str]]) -> tuple[_Pattern, ...]:
    out = []
    for tag, label, rx in patterns:
        # case-insensitive unless the pattern scopes its own flags (capitalised names)
        flags = 0 if "(?i:" in rx else re.IGNORECASE
        out.append(_Pattern(tag, label, re.compile(rx, flags)))
    return tuple(out)


BUILTIN = _compile(_PATTERNS)

_BUY_WORDS = ("buy", "order", "purchas", "book", "upgrad", "sign", "subscrib")
#: Per built-in pattern (same order): lowercase strings of which every match contains
#: at least one. A post containing none of a pattern's triggers cannot match it, so
#: most posts are settled by a few substring tests instead of a regex per pattern.
#: (tests/test_intent.py checks each trigger set against the pattern.)
TRIGGERS: tuple[tuple[str, ...], ...] = (
    _BUY_WORDS, _BUY_WORDS, _BUY_WORDS, ("how much",), ("considering",), ("looking",),
    ("in the market for",), _BUY_WORDS, ("take my money",),
    ("switch",), ("switch",), ("mov",), ("cancel",), ("never",), ("done with",),
    ("clos",), ("business", "money", "custom"), ("last time",),
)
_lower = fold
# trigger -> the built-in patterns (by position) it opens
_BY_TRIGGER: dict[str, tuple[int, ...]] = {}
for _i, _triggers in enumerate(TRIGGERS):
    for _t in _triggers:
        _BY_TRIGGER[_t] = (*_BY_TRIGGER.get(_t, ()), _i)


def phrase_patterns(tag: str, phrases: Iterable[str]) -> tuple[_Pattern, ...]:
    """Admin phrases (whole words, case-insensitive, any whitespace) for ``tag``."""
    out = []
    for phrase in phrases:
        words = phrase.split()
        if words:
            rx = r"\b" + r"\s+".join(re.escape(w) for w in words) + r"\b"
            out.append(_Pattern(tag, phrase, re.compile(rx, re.IGNORECASE)))
    return tuple(out)


def _negated(text: str, start: int) -> bool:
    """A negation within the three words before ``start`` (same clause)."""
    before = re.split(r"[.!?;,:]|\bbut\b", text[:start].replace("’", "'"))[-1]
    words = _WORD.findall(before)[-3:]
    return any(_NEGATION.fullmatch(w) or w.lower().endswith("n't") for w in words)


@lru_cache(maxsize=256)
def own_terms(brand: BrandConfig) -> frozenset[str]:
    """The brand's own words: switching *to* the brand is a win, not churn."""
    return frozenset(w.casefold().lstrip("@#") for t in (brand.name, *brand.handles,
                                                         *brand.keywords) for w in t.split())


def _to_own(match: str, own: frozenset[str]) -> bool:
    words = _WORD.findall(match)
    return bool(words) and words[-1].casefold() in own


def find(text: str, extra: Iterable[_Pattern] = (),
         own: frozenset[str] = frozenset()) -> list[IntentMatch]:
    """Every non-negated intent match in ``text``, first occurrence per pattern."""
    out: list[IntentMatch] = []
    low = _lower(text)
    opened: set[int] = set()
    for trigger, positions in _BY_TRIGGER.items():
        if trigger in low:
            opened.update(positions)
    candidates = [BUILTIN[i] for i in sorted(opened)]
    for pattern in (*candidates, *extra):
        for m in pattern.regex.finditer(text):
            if _negated(text, m.start()):
                continue
            if pattern.tag == CHURN and pattern.label == "switching to" and \
                    _to_own(m.group(0), own):
                continue
            out.append(IntentMatch(pattern.tag, pattern.label, m.group(0)))
            break
    return out


def tags(text: str, own: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The tags of ``text`` (in ``TAGS`` order), for ``EnrichedPost.tags``."""
    found = {m.tag for m in find(text, own=own)}
    return tuple(t for t in TAGS if t in found)
