"""What a text check sees: the post's :class:`TextView` and the screen's compiled setup."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from monitor.detect.outbound.params import OutboundParams
from monitor.detect.outbound.text import PhraseSet, TextView, norm

_LABEL = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Watch:
    """One sensitive event or hashtag to stay away from (from the rule or the HTTP API)."""

    term: str
    weight: float | None = None  # None: the watchlist check's weight
    note: str = ""
    id: str = ""
    matcher: PhraseSet = field(default=PhraseSet(()), compare=False, repr=False)

    @classmethod
    def of(cls, term: str, weight: float | None = None, note: str = "", id: str = "") -> Watch:
        return cls(term, weight, note, id, PhraseSet([term]))


def label_of(text: str) -> str:
    """``"Harbor Bank"`` / ``"@HarborBank"`` / ``"harbor-bank"`` -> ``"harborbank"``."""
    return _LABEL.sub("", text.casefold())


class Setup:
    """Per-screen, per-brand precomputation shared by every post it screens."""

    def __init__(self, params: OutboundParams, allowed_domains: Iterable[str] = (),
                 brand_names: Iterable[str] = ()) -> None:
        self.params = params
        allowed = [*params.allowed_domains, *allowed_domains]
        self.allowed = tuple(dict.fromkeys(d.casefold().strip().lstrip(".") for d in allowed
                                           if d.strip()))
        self.safe_domains = self.allowed + tuple(d.casefold() for d in params.platform_domains)
        names = [*brand_names, *params.brand_terms]
        labels = [label_of(n) for n in names] + [label_of(d.split(".")[0]) for d in self.allowed]
        self.brand_labels = tuple(dict.fromkeys(x for x in labels if len(x) >= 4))
        words = [w for n in names for w in norm(n).split()]
        self.brand_words = tuple(dict.fromkeys(w for w in words if len(w) >= 6
                                               and w not in self.brand_labels))
        # the brand's own name words ("American" of American Airlines) are never a group
        self.own_words = frozenset(" ".join(norm(n).split()) for n in names) | frozenset(
            w for w in words if len(w) >= 3)
        self.own_contacts = tuple(c.casefold().strip() for c in params.own_contacts)
        self.static_watch = tuple(Watch.of(t) for t in params.watchlist)
        self.static_matcher = PhraseSet(params.watchlist)  # all of them in one pass
        self.static_by_term = {w.term: w for w in self.static_watch}
        self.identity_key = (tuple(sorted((dim, tuple(terms))
                                          for dim, terms in params.groups.items())),
                             params.tuned("identity_hate").allow)
        self.events_key = tuple(sorted((kind, tuple(terms))
                                       for kind, terms in params.events.items()))
        self._sets: dict[tuple[str, int], PhraseSet] = {}

    def phrases(self, check: str, words: Sequence[str], primary: bool = True) -> PhraseSet:
        key = (check, id(words))
        found = self._sets.get(key)
        if found is None:
            tuned = self.params.tuned(check)
            extra = tuned.terms if primary else ()
            found = self._sets[key] = PhraseSet([*words, *extra], tuned.allow)
        return found


class Trending(Protocol):
    """What the inbound stream says about the words of a post (see :mod:`.trending`)."""

    def lookup(self, view: TextView, brand: str | None, at: datetime | None,
               min_posts: float, dark_share: float) -> list[TrendHit]: ...


@dataclass(frozen=True, slots=True)
class TrendHit:
    key: str  # "#notguilty", "boston", "~shoot" (a stem), "@brand"
    posts: float  # recent inbound posts with it (decayed)
    dark: float  # ... of which about death, violence, crime or tragedy
    negative: float  # ... of which strongly negative
    terms: tuple[str, ...]  # the dark words seen most with it
    brand: bool = False  # the brand's own mentions


@dataclass(slots=True)
class ScreenContext:
    setup: Setup
    view: TextView
    watch: Sequence[Watch] = ()
    compound: float | None = None  # VADER compound of the text, when the caller has it
    trending: Trending | None = None  # the engine's view of the inbound stream
    brand: str | None = None
    at: datetime | None = None

    @property
    def params(self) -> OutboundParams:
        return self.setup.params

    def find(self, check: str, words: Sequence[str], primary: bool = True) -> list[str]:
        return self.setup.phrases(check, words, primary).find(self.view)

    def weight(self, check: str, default: float) -> float:
        return self.params.weight(check, default)
