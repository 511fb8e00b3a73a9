"""The stateless stage of the pipeline: which brands a post is about, its sentiment and
intent tags.

It is a pure function of the post and the configuration, so it can run anywhere: in
the engine's thread, or ahead of it in a worker process (see
:mod:`monitor.enrich.pool`) while the engine's stateful stage (detectors, routing,
store) handles the previous batch. Its result is a small picklable value.
"""

from __future__ import annotations

from typing import NamedTuple

from monitor.config.schema import Config

# what the live stream says, for the outbound screen: computed here (in the enrichment
# worker when there is one) because it is a pure function of a post's text
from monitor.detect.outbound.trending import Extracted, extract
from monitor.enrich import intent
from monitor.enrich.match import BrandMatcher
from monitor.enrich.sentiment import SentimentAnalyzer, load_packs, pack_paths
from monitor.model import Post


def build_analyzer(config: Config) -> SentimentAnalyzer:
    """VADER with the configured lexicon packs; every brand's terms neutralised."""
    packs = load_packs(pack_paths(config.sentiment.lexicon_dir, config.sentiment.packs))
    terms = [t for b in config.brands for t in (b.name, *b.handles, *b.keywords)]
    return SentimentAnalyzer(packs, terms)


class Enrichment(NamedTuple):
    """What the stateless stage found out about one post (a tuple: it crosses the
    process boundary by the thousand, and tuples pickle cheaply)."""

    brands: tuple[str, ...] = ()
    compound: float = 0.0
    label: str = "neutral"
    tags: tuple[tuple[str, ...], ...] = ()  # intent tags, one tuple per brand
    trend: Extracted | None = None  # a mention's keys for the outbound trending context

    @property
    def brand(self) -> str | None:
        """The first brand (stored with the post), if any."""
        return self.brands[0] if self.brands else None


NO_BRAND = Enrichment()


class Enricher:
    def __init__(self, config: Config, analyzer: SentimentAnalyzer | None = None) -> None:
        self.analyzer = analyzer or build_analyzer(config)
        self.matcher = BrandMatcher(config.brands)
        self._own = {b.name: intent.own_terms(b) for b in config.brands}

    def enrich(self, post: Post) -> Enrichment:
        return self.enrich_fields(post.kind, post.brand, post.author.handle, post.text)

    def enrich_fields(self, kind: str, brand: str | None, handle: str,
                      text: str) -> Enrichment:
        """The same from the only fields it reads (what a worker process is sent)."""
        brands = self.matcher.match_fields(kind, brand, handle, text)
        trend = extract(text) if kind == "mention" else None
        if not brands:
            return NO_BRAND if trend is None else Enrichment(trend=trend)
        score = self.analyzer.score(text)
        if kind == "mention":
            tags = tuple(intent.tags(text, self._own.get(b, frozenset())) for b in brands)
        else:
            tags = tuple(() for _ in brands)
        return Enrichment(tuple(brands), score.compound, score.label, tags, trend)

    def tags(self, post: Post, brand: str) -> tuple[str, ...]:
        """Intent tags of a mention for one brand."""
        if post.kind != "mention":
            return ()
        return intent.tags(post.text, self._own.get(brand, frozenset()))

    def enrich_many(self, posts: list[Post]) -> list[Enrichment]:
        return [self.enrich(p) for p in posts]
