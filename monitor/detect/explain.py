"""Explanations attached to alerts: what was unusual and what people are saying."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from monitor.config.schema import BrandConfig
from monitor.detect.base import EnrichedPost

_WORD_RE = re.compile(r"#?[a-z][a-z0-9'_-]{2,}")
_STRIP_RE = re.compile(r"https?://\S+|www\.\S+|@\w+", re.IGNORECASE)
STOPWORDS = frozenset("""
about after again all also and any are because been before being but can cant could did
didnt does doesnt doing dont down even for from get got had has have having her here him
his how i'm im into it's its ive just let like made make more most much must not now off
once only other our out over own really same she should some still such than that thats
the their them then there these they theyre this those through too under until very was
way we're were what when where which while who whom why will with would you you're your
yours
""".split())


def brand_words(brand: BrandConfig) -> frozenset[str]:
    """The brand's own name, handle and keyword words: never a "top term" of its alerts."""
    return frozenset(w.lower().lstrip("@#") for t in (brand.name, *brand.handles, *brand.keywords)
                     for w in t.split())


def tokens(text: str, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased content words and hashtags (no URLs, handles or stopwords)."""
    words = _WORD_RE.findall(_STRIP_RE.sub(" ", text.lower()))
    return [w for w in words if w.lstrip("#") not in STOPWORDS and w.lstrip("#") not in exclude]


def over_represented(window: Iterable[str], baseline: Iterable[str], *,
                     exclude: frozenset[str] = frozenset(), limit: int = 8,
                     min_count: int = 2) -> list[tuple[str, int]]:
    """Terms more frequent in ``window`` texts than in ``baseline`` texts.

    Ranked by a smoothed log-odds ratio weighted by the window count, so a term
    that is common everywhere (the brand's product names) does not dominate.
    """
    win = Counter(t for text in window for t in set(tokens(text, exclude)))
    base = Counter(t for text in baseline for t in set(tokens(text, exclude)))
    n_win = max(1, sum(win.values()))
    n_base = max(1, sum(base.values()))
    scored = []
    for term, count in win.items():
        if count < min_count:
            continue
        ratio = math.log(((count + 0.5) / n_win) / ((base.get(term, 0) + 0.5) / n_base))
        if ratio > 0:
            scored.append((ratio * math.log1p(count), term, count))
    scored.sort(reverse=True)
    return [(term, count) for _, term, count in scored[:limit]]


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
