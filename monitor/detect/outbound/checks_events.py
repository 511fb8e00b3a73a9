"""Tragedy, disaster and the news: sensitive events, the watchlist, newsjacking, trending context.

The events pack (``packs/events.yaml``, extended by the rule's ``events``) names
events by type, each with its brand-safety category: a *strong* term is an event
on its own, two *weak* ones together are one; idioms ("price war", "bath bombs",
"killing it") never count. ``sensitive_event`` only notes the topic (info);
``newsjacking`` is the topic plus a promotion, a product plug or a joke;
``watchlist`` is an admin's current event. A plain condolence, memorial or service
notice that only touches a watched topic stays at a warning (a human look).
``trending_context`` asks the engine's view of the inbound stream (:mod:`.trending`)
whether the post's hashtags, names or words are trending beside death, violence,
crime or tragedy right now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from monitor.detect.outbound.context import ScreenContext, Watch
from monitor.detect.outbound.core import Hit, check
from monitor.detect.outbound.text import PhraseSet, TextView
from monitor.detect.outbound.vocab import events_pack

# named events: "Hurricane Milo", "#StormDennis", "the Lyon attack", "Pray for Haiti",
# "Stay strong, Manchester" (solidarity with a named place implies a tragedy there)
_NAMED = re.compile(
    r"\b(?:Hurricane|Storm|Typhoon|Cyclone|Tropical Storm)\s?[A-Z][a-z]{2,}"
    r"|\b(?!(?:The|Our|This|That|These|Those|Your|My|Their|Its|New|Big|Last|Next|Every|One|"
    r"Any|Some|No|Free|Great|Best|Top|Happy)\b)[A-Z][a-z]{2,} "
    r"(?:attacks?|bombings?|shootings?|massacre|earthquake|floods?|"
    r"wildfires?|stabbings?|explosion|crash|disaster|tragedy|riots?)\b"
    r"|\b(?:[Pp]ray(?:ing)? for|[Ss]tay strong,?|[Ss]tand with|[Ii]n hono(?:u)?r of) "
    r"[A-Z][a-z]{2,}")
_NAMED_WORDS = frozenset("""hurricane storm typhoon cyclone attack attacks bombing bombings
shooting shootings massacre earthquake flood floods wildfire wildfires stabbing stabbings
explosion crash disaster tragedy riot riots pray praying strong stand honour honor""".split())
_PLUG = re.compile(r"\bour (?:new |latest )?\w+ "
                   r"(?:collection|range|menu|line|deals?|sale|offers?)\b")
_PRICE = re.compile(r"[£$€]\s?\d|\d\s?(?:%|percent)|\b\d+\s?for\s?[£$€]?\d|\bx\d\b|\d\s?x\b")
DEFAULT_CATEGORY = "death_injury_military_conflict"


@dataclass(frozen=True, slots=True)
class Events:
    strong: PhraseSet  # every type's strong terms (one pass)
    weak: PhraseSet
    category_of: dict[str, str]  # strong or weak term (as written) -> its type's category
    promotion: PhraseSet
    joke: PhraseSet
    condolence: PhraseSet
    categories: dict[str, str]  # event term -> category (for the trending context)
    idioms: PhraseSet
    personal: frozenset[str]  # a person's own loss ("funeral"), not a public tragedy

    def unidiomatic(self, view: TextView) -> TextView:
        """``view`` with its idioms blanked out ("price war", "bath bombs"), memoised."""
        found = view.memo.get("unidiomatic")
        if found is None:
            found = view
            if self.idioms.find(view):
                masked = self.idioms.blank(view.norm)
                found = replace(view, norm=masked, token_set=frozenset(masked.split()),
                                memo={})
            view.memo["unidiomatic"] = found
        return found  # type: ignore[return-value]


@lru_cache(maxsize=16)
def events(extra: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> Events:
    pack = events_pack()
    added = dict(extra)
    strong: dict[str, str] = {}  # term -> category (the first type naming it wins)
    weak: dict[str, str] = {}
    for name, spec in pack["types"].items():
        for term in [*spec["strong"], *added.pop(name, ())]:
            strong.setdefault(term, spec["category"])
        for term in spec.get("weak", []):
            weak.setdefault(term, spec["category"])
    for terms in added.values():  # an admin's own event type
        for term in terms:
            strong.setdefault(term, DEFAULT_CATEGORY)
    categories = {t.lstrip("#").rstrip("*"): c for t, c in {**weak, **strong}.items()}
    return Events(PhraseSet(strong), PhraseSet(weak), {**weak, **strong},
                  PhraseSet(pack["promotion"]), PhraseSet(pack["joke"]),
                  PhraseSet(pack["condolence"]), categories, PhraseSet(pack["idioms"]),
                  frozenset(pack["personal"]))


def _events(ctx: ScreenContext) -> Events:
    return events(ctx.setup.events_key)


def event_hits(ctx: ScreenContext) -> list[tuple[str, str]]:
    """(term, category) of the sensitive events the post names (memoised per post)."""
    memo = ctx.view.memo
    if "events" in memo:
        return memo["events"]  # type: ignore[return-value]
    allow = ctx.params.tuned("sensitive_event").allow
    found: list[tuple[str, str]] = []
    weak: list[tuple[str, str]] = []
    ev = _events(ctx)
    view = ev.unidiomatic(ctx.view)
    found += [(t, ev.category_of[t]) for t in ev.strong.find(view) if t not in allow]
    weak += [(t, ev.category_of[t]) for t in ev.weak.find(view) if t not in allow]
    found += [(t, DEFAULT_CATEGORY) for t in ctx.find("sensitive_event", ())]
    named = _NAMED.search(ctx.view.raw) if not view.token_set.isdisjoint(_NAMED_WORDS) \
        else None
    if named:
        found.append((named.group(0), DEFAULT_CATEGORY))
    terms = {t for t, _ in weak}  # "victims of" holds "victims": one term, not two
    distinct = [w for w in weak if not any(w[0] != t and f" {w[0]} " in f" {t} " for t in terms)]
    if not found and len({t for t, _ in distinct}) >= 2:
        found = distinct[:2]
    memo["events"] = found = list(dict.fromkeys(found))
    return found


def selling(ctx: ScreenContext) -> list[str]:
    """Promotion, product plug or joke markers of the post (memoised)."""
    memo = ctx.view.memo
    if "selling" in memo:
        return memo["selling"]  # type: ignore[return-value]
    ev = _events(ctx)
    markers = ev.promotion.find(ev.unidiomatic(ctx.view)) + ev.joke.find(ctx.view)
    if not markers and (plug := _PLUG.search(ctx.view.norm)):
        markers = [plug.group(0)]
    markers += ctx.find("newsjacking", ())
    if not markers and _PRICE.search(ctx.view.raw):
        markers = ["a price"]
    memo["selling"] = markers
    return markers


def condolent(ctx: ScreenContext) -> bool:
    return bool(_events(ctx).condolence.find(ctx.view)) and not selling(ctx)


def watch_hits(ctx: ScreenContext) -> list[Watch]:
    if not ctx.params.enabled("watchlist"):
        return []
    memo = ctx.view.memo
    if "watch" not in memo:
        setup = ctx.setup
        memo["watch"] = [setup.static_by_term[t] for t in setup.static_matcher.find(ctx.view)] \
            + [w for w in ctx.watch if w.matcher.find(ctx.view)]
    return memo["watch"]  # type: ignore[return-value]


@check("sensitive_event", category=DEFAULT_CATEGORY, weight=0.3,
       reason="mentions a sensitive event")
def sensitive_event(ctx: ScreenContext) -> list[Hit]:
    found = event_hits(ctx)
    if found and watch_hits(ctx) and condolent(ctx):
        return []  # the watchlist already says it; a condolence stays a warning
    return [Hit(term, category=category) for term, category in found]


@check("watchlist", category=DEFAULT_CATEGORY, weight=0.7,
       reason="on the sensitive-events watchlist",
       cap=3.0)
def watchlist(ctx: ScreenContext) -> list[Hit]:
    base = ctx.weight("watchlist", 0.7) or 1.0
    hits = [Hit(f"{w.term}" + (f" ({w.note})" if w.note else ""),
                1.0 if w.weight is None else w.weight / base) for w in watch_hits(ctx)]
    if len(hits) > 1 and condolent(ctx):  # a memorial naming two watched terms
        explicit = [h for h, w in zip(hits, watch_hits(ctx), strict=True) if w.weight is not None]
        hits = explicit or hits[:1]
    return hits


@check("newsjacking", category=DEFAULT_CATEGORY, weight=0.7,
       reason="sells or jokes on a sensitive event")
def newsjacking(ctx: ScreenContext) -> list[Hit]:
    topics = [(w.term, DEFAULT_CATEGORY) for w in watch_hits(ctx)]
    if ctx.params.enabled("sensitive_event"):
        topics += event_hits(ctx)
    if ctx.view.raw.lstrip().startswith("@"):  # a reply: a customer's own bereavement is care
        personal = _events(ctx).personal
        topics = [t for t in topics if t[0] not in personal]
    if not topics:
        return []
    markers = selling(ctx)
    if not markers:
        return []
    term, category = topics[0]
    return [Hit(f"{term} + {markers[0]}", category=category)]


# -- the inbound stream ------------------------------------------------------------
@check("trending_context", category=DEFAULT_CATEGORY, weight=0.7,
       reason="uses what the inbound stream links to tragedy right now", cap=1.5)
def trending_context(ctx: ScreenContext) -> list[Hit]:
    if ctx.trending is None:
        return []
    p = ctx.params
    found = ctx.trending.lookup(ctx.view, ctx.brand, ctx.at, p.trending_min_posts,
                                p.trending_dark_share)
    sells = selling(ctx)
    hits = []
    categories = _events(ctx).categories
    for trend in found:
        if trend.brand and not sells:
            continue  # care replies during a crisis are needed; a sales pitch is not
        terms = ", ".join(trend.terms) or "strongly negative posts"
        what = "recent mentions of the brand" if trend.brand else f"{trend.key} is trending"
        category = next((categories[t] for t in trend.terms if t in categories),
                        DEFAULT_CATEGORY)
        hits.append(Hit(f"{what} in recent inbound posts beside {terms} "
                        f"({trend.dark:.0f} of {trend.posts:.0f} posts)", 1.0, category))
    if sells and any(not t.brand for t in found):  # selling on a dark hashtag: critical
        hits.append(Hit(f"and this post sells or jokes ({sells[0]})", 0.5))
    return hits
