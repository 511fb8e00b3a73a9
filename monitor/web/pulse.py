"""The numbers behind the Pulse pages, read from the store (on a worker thread).

Charts are fed by the per-brand 5-minute aggregates (``aggregates`` table: mentions,
negatives and the volume detector's expected count), which outlive raw-post
retention; terms and top posts come from the raw posts that are still kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.schema import BrandConfig
from monitor.detect.explain import brand_words, over_represented, tokens
from monitor.store.api import Store

STEP = 300  # seconds: the aggregates' bucket
RANGES: dict[str, timedelta] = {"24h": timedelta(hours=24), "7d": timedelta(days=7),
                                "30d": timedelta(days=30)}
USUAL = timedelta(days=7)  # the negative share's usual level: the 7 days before each hour
MAX_MARKERS = 500


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def window(range_name: str, now: datetime) -> tuple[int, int]:
    """(first bucket start, last bucket start) in epoch seconds for a named range."""
    span = RANGES[range_name]
    end = math.floor(now.timestamp() / STEP) * STEP
    return end - int(span.total_seconds()) + STEP, end


def series(store: Store, brands: Sequence[str], first: int, last: int,
           since: int | None = None) -> dict[str, Any]:
    """Dense 5-minute arrays from ``first`` to ``last`` (bucket starts, epoch seconds)
    per brand: ``posts`` and ``expected`` (null where nothing is stored), and the alert
    markers of those brands. With ``since``: only the buckets from there (live updates).

    Profiled on 10 brands x 30 days (86,400 rows): reading the rows is most of the
    time; the expected counts are stored rounded (2 decimals), not rounded here."""
    start = first if since is None else max(first, math.floor(since / STEP) * STEP)
    n = max(0, (last - start) // STEP + 1)
    out: dict[str, Any] = {"start": start, "step": STEP, "count": n, "brands": {}}
    for brand in brands:
        posts: list[int | None] = [None] * n
        expected: list[float | None] = [None] * n
        for at, count, _, exp in store.aggregate_rows(brand, start, last):
            i = (int(at) - start) // STEP
            posts[i] = count
            expected[i] = exp
        out["brands"][brand] = {"posts": posts, "expected": expected}
    out["alerts"] = markers(store, brands, start, last + STEP)
    return out


def markers(store: Store, brands: Sequence[str], start: float,
            end: float) -> list[dict[str, Any]]:
    """Firing alerts of ``brands`` in [start, end) (not "all clear" or silenced ones)."""
    if not brands:
        return []
    rows = store.alert_markers(brands, start, end, MAX_MARKERS)
    return [{"id": r.id, "brand": r.brand, "rule": r.rule, "severity": r.severity,
             "title": r.title, "at": int(r.created_at.timestamp())} for r in reversed(rows)]


def share_of_voice(store: Store, brands: Sequence[str], first: int,
                   last: int) -> list[dict[str, Any]]:
    """Mentions per brand in the window and each brand's share of their sum."""
    rows = store.mentions_by_brand(first, last)
    counts = {b: int(rows.get(b) or 0) for b in brands}
    total = sum(counts.values())
    return [{"brand": b, "mentions": c, "share": round(c / total, 4) if total else 0.0}
            for b, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def negative_share(store: Store, brand: str, first: int, last: int) -> dict[str, Any]:
    """Hourly share of negative mentions in the window and its usual level (the share
    over the 7 days before each hour); null where an hour has no mentions."""
    hour = 3600
    lo = (first // hour) * hour
    base = lo - int(USUAL.total_seconds())
    rows = [(at, count, negative)
            for at, count, negative, _ in store.aggregate_rows(brand, base, last)]
    n = (last // hour * hour - base) // hour + 1
    posts, negatives = [0] * n, [0] * n
    for at, count, negative in rows:
        i = (int(at) - base) // hour
        posts[i] += count
        negatives[i] += negative
    per = int(USUAL.total_seconds()) // hour
    cum_p, cum_n = [0], [0]
    for p, q in zip(posts, negatives, strict=True):
        cum_p.append(cum_p[-1] + p)
        cum_n.append(cum_n[-1] + q)
    skip = (lo - base) // hour
    share: list[float | None] = []
    usual: list[float | None] = []
    for i in range(skip, n):
        share.append(round(negatives[i] / posts[i], 4) if posts[i] else None)
        p = cum_p[i] - cum_p[max(0, i - per)]
        q = cum_n[i] - cum_n[max(0, i - per)]
        usual.append(round(q / p, 4) if p else None)
    return {"start": lo, "step": hour, "count": len(share), "share": share, "usual": usual}


def top_posts(store: Store, brand: str, first: int, limit: int = 10
              ) -> list[dict[str, Any]]:
    """The brand's mentions with the widest reach (author followers) since ``first``."""
    found = store.top_posts(brand, first, limit)
    return [{"author": s.post.author.handle, "followers": s.post.author.followers or 0,
             "text": s.post.text[:280], "url": _safe_url(s.post.url), "sentiment": s.label,
             "at": _iso(s.post.created_at)} for s in found]


def trending(store: Store, brand: BrandConfig | None, name: str, now: datetime,
             window_size: timedelta = timedelta(hours=1), limit: int = 8
             ) -> list[dict[str, Any]]:
    """Terms and hashtags over-represented in the last hour against the day before,
    each with up to two example posts (widest reach first)."""
    end = now.timestamp()
    cut = end - window_size.total_seconds()
    recent = store.recent_mentions(name, cut, end, 2000, include_end=True)
    if not recent:
        return []
    baseline = [r[0] for r in store.recent_mentions(name, cut - 86400, cut, 5000,
                                                     include_end=False)]
    exclude = brand_words(brand) if brand is not None else frozenset()
    found = over_represented((r[0] for r in recent), baseline, exclude=exclude, limit=limit)
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    wanted = {term for term, _ in found}
    for text, author, followers, url, at in sorted(recent, key=lambda r: -(r[2] or 0)):
        for term in wanted.intersection(tokens(text, exclude)):
            if len(examples[term]) < 2:
                examples[term].append({"author": author, "followers": followers or 0,
                                       "text": text[:280], "url": _safe_url(url),
                                       "at": _iso(datetime.fromtimestamp(at, UTC))})
    return [{"term": term, "count": count, "hashtag": term.startswith("#"),
             "examples": examples.get(term, [])} for term, count in found]


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links become clickable (a post's url is untrusted input)."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None
