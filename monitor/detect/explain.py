"""Explanations attached to alerts: what was unusual and what people are saying."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from monitor.config.schema import BrandConfig
from monitor.detect.base import EnrichedPost

_WORD_RE = re.compile(r"#?[a-z][a-z0-9'_-]{2,}")
_STRIP_RE = re.compile(r"https?://\S+|www\.\S+|@\w+", re.IGNORECASE)
#: English function words and the filler of social posts (greetings, interjections,
#: "thanks"): never a reason a PR reader should see. Words of 1-2 letters never count.
STOPWORDS = frozenset("""
about above after again against all also although always am among and another any anybody
anyone anything are aren arent around as because been before behind being below beside
besides between beyond both but can cannot cant could couldn couldnt did didn didnt does
doesn doesnt doing don done dont down during each either else enough etc even every
everybody everyone everything few for from further get gets getting got gotta gonna had
hadn hadnt has hasn hasnt have haven havent having her here hers herself him himself his
how however i'd i'll i'm i've ill im into isn isnt it's its itself ive just let lets like
made make makes many may maybe might mine more most much must myself near need neither
nor not now off once one only onto other others otherwise our ours ourselves out over own
per perhaps please pls plz quite rather really said same say says she should shouldn
shouldnt since some somebody someone something somewhat still such than that that's
thats the their theirs them themselves then there there's these they they'd they'll
they're they've theyre this those though through thru thus till too toward towards
under unless until upon very via was wasn wasnt way we'd we'll we're we've were weren
what what's whatever when whenever where whether which while who whoever whole whom whose
why will with within without won wont would wouldn wouldnt yet you you'd you'll you're
you've youd youll your youre yours yourself yourselves
hey hi hello hiya yes yeah yep yup nope nah okay ok lol lmao omg wow ugh ugg uh um hmm
haha hahaha thanks thank thx ty guys folks
""".split())
#: A term is a reason only when it is this many times more common than usual.
MIN_RATIO = 2.0
#: Below this many baseline texts there is no "usual": terms are ranked by count.
MIN_BASELINE = 20


def brand_words(brand: BrandConfig) -> frozenset[str]:
    """The brand's own name, handle and keyword words: never a "top term" of its alerts."""
    return frozenset(w.lower().lstrip("@#") for t in (brand.name, *brand.handles, *brand.keywords)
                     for w in t.split())


def tokens(text: str, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased content words and hashtags (no URLs, handles or stopwords)."""
    words = _WORD_RE.findall(_STRIP_RE.sub(" ", text.lower()))
    return [w for w in words if w.lstrip("#") not in STOPWORDS and w.lstrip("#") not in exclude]


@dataclass(frozen=True, slots=True)
class Term:
    """A term of a window of posts: in ``posts`` of ``of`` of them, and ``ratio`` times
    as often as in the baseline (None: no baseline to compare with; inf: not in it)."""

    term: str
    posts: int
    of: int
    ratio: float | None

    def why(self, baseline: int) -> str:
        """``"charged" in 10 of 30 posts, 12x more often than usual``."""
        text = f"\u201c{self.term}\u201d in {self.posts:,} of {self.of:,} posts"
        if self.ratio is None:
            return text
        if math.isinf(self.ratio):
            return f"{text}, new (not in the {baseline:,} posts before)"
        return f"{text}, {self.ratio:.0f}\u00d7 more often than usual"


def ranked_terms(window: Iterable[str], baseline: Iterable[str], *,
                 exclude: frozenset[str] = frozenset(), limit: int = 8,
                 min_count: int = 2) -> tuple[list[Term], int]:
    """Terms and hashtags far more common in ``window`` texts than in ``baseline`` texts
    (at least :data:`MIN_RATIO` times, in at least ``min_count`` posts), most posts
    first; and the number of baseline texts. Stopwords, URLs, handles and ``exclude``
    (the brand's own names) never count."""
    texts = list(window)
    base_texts = list(baseline)
    win = Counter(t for text in texts for t in set(tokens(text, exclude)))
    base = Counter(t for text in base_texts for t in set(tokens(text, exclude)))
    n_win, n_base = max(1, len(texts)), len(base_texts)
    found: list[Term] = []
    for term, count in win.items():
        if count < min_count:
            continue
        if n_base < MIN_BASELINE:
            found.append(Term(term, count, n_win, None))
            continue
        usual = base.get(term, 0)
        ratio = (count / n_win) / ((usual + 0.5) / (n_base + 1))
        if ratio >= MIN_RATIO:
            found.append(Term(term, count, n_win, ratio if usual else math.inf))
    found.sort(key=lambda t: (-t.posts, -(t.ratio or 0.0), t.term))
    return found[:limit], n_base


def over_represented(window: Iterable[str], baseline: Iterable[str], *,
                     exclude: frozenset[str] = frozenset(), limit: int = 8,
                     min_count: int = 2) -> list[tuple[str, int]]:
    """``(term, posts)`` of :func:`ranked_terms`, most posts first."""
    terms, _ = ranked_terms(window, baseline, exclude=exclude, limit=limit,
                            min_count=min_count)
    return [(t.term, t.posts) for t in terms]


def explain_terms(window: Iterable[str], baseline: Iterable[str],
                  exclude: frozenset[str]) -> dict[str, Any]:
    """``top_terms`` (``[term, posts]``, ranked) and ``why`` (the same in plain words)
    for an alert's details."""
    terms, n_base = ranked_terms(window, baseline, exclude=exclude)
    return {"top_terms": [(t.term, t.posts) for t in terms],
            "why": [t.why(n_base) for t in terms],
            "why_title": ("Words and hashtags far more common than usual" if n_base >=
                          MIN_BASELINE else "Most common words and hashtags")}


def post_summary(item: EnrichedPost) -> dict[str, Any]:
    post = item.post
    return {
        "id": post.id,
        "author": post.author.handle,
        "followers": post.author.followers,
        "text": post.text[:280],
        "url": post.url,
        "sentiment": item.label,
        "created_at": post.created_at.isoformat(),
    }


def top_by_reach(items: Sequence[EnrichedPost], limit: int = 5) -> list[dict[str, Any]]:
    ranked = sorted(items, key=lambda i: (i.reach, i.post.created_at), reverse=True)
    return [post_summary(i) for i in ranked[:limit]]


def sentiment_mix(items: Iterable[EnrichedPost]) -> dict[str, int]:
    mix = Counter(i.label for i in items)
    return {label: mix.get(label, 0) for label in ("negative", "neutral", "positive")}


def repeated_text(items: Sequence[EnrichedPost]) -> dict[str, Any] | None:
    """The most repeated text (a retweet/copy storm of one post), if it dominates."""
    if len(items) < 5:
        return None
    texts = Counter(" ".join(_STRIP_RE.sub(" ", i.post.text.lower()).split()) for i in items)
    text, count = texts.most_common(1)[0]
    if count / len(items) < 0.5:
        return None
    return {"text": text[:280], "copies": count, "share": round(count / len(items), 3)}


def times(ratio: float) -> str:
    """``5.2\u00d7``, ``12\u00d7``; ``far above`` with no usual level to compare to."""
    if not math.isfinite(ratio):
        return "far above"
    return f"{ratio:.1f}\u00d7" if ratio < 10 else f"{ratio:,.0f}\u00d7"


def minutes(span: timedelta) -> str:
    """A short span for people: ``4 min``, ``1 h``, ``1 h 30 min``, ``45 s``."""
    seconds = span.total_seconds()
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    total = math.ceil(seconds / 60)
    if total < 60:
        return f"{total} min"
    hours, rest = divmod(total, 60)
    return f"{hours} h" if not rest else f"{hours} h {rest} min"
