"""Which configured brand(s) a post is about.

A brand matches when the post names one of its handles (with or without the
leading '@') or one of its keywords as whole words, case-insensitively, and none
of its exclusion phrases appear. A post that already names its brand (webhook,
replay) keeps it; an outbound post belongs to the brand whose handle wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.config.schema import BrandConfig
from monitor.model import Post


def _phrase_regex(phrases: Iterable[str], *, at_optional: bool) -> re.Pattern[str] | None:
    parts = set()
    for phrase in phrases:
        words = phrase.strip().lstrip("@#").split()
        if words:
            parts.add(r"\s+".join(re.escape(w) for w in words))
    if not parts:
        return None
    prefix = "[@#]?" if at_optional else ""
    body = "|".join(sorted(parts, key=len, reverse=True))
    return re.compile(rf"(?<![\w@#]){prefix}(?:{body})(?![\w])", re.IGNORECASE)


def normalise_handle(handle: str) -> str:
    return handle.strip().lstrip("@").lower()


@dataclass(frozen=True, slots=True)
class BrandRule:
    """One brand's text rules: the phrases that name it and the ones that exclude it."""

    name: str
    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None

    def names(self, text: str) -> bool:
        """``text`` contains one of the brand's handles, keywords or its name."""
        return self.include is not None and self.include.search(text) is not None

    def excluded(self, text: str) -> bool:
        """``text`` contains one of the brand's exclusion phrases."""
        return self.exclude is not None and self.exclude.search(text) is not None

    def matches(self, text: str) -> bool:
        """``text`` is about the brand: it names it and nothing excludes it."""
        return self.names(text) and not self.excluded(text)


def brand_rule(brand: BrandConfig) -> BrandRule:
    return BrandRule(brand.name,
                     _phrase_regex((*brand.handles, *brand.keywords, brand.name),
                                   at_optional=True),
                     _phrase_regex(brand.exclude, at_optional=False))


class BrandMatcher:
    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands = tuple(brands)
        self._by_name = {b.name: b for b in brands}
        self._owner = {normalise_handle(h): b.name for b in brands for h in b.handles}
        self.rules = tuple(brand_rule(b) for b in brands)

    def owner_of(self, handle: str) -> str | None:
        """The brand whose own account ``handle`` is, if any."""
        return self._owner.get(normalise_handle(handle))

    def match(self, post: Post) -> list[str]:
        if post.brand is not None:
            return [post.brand] if post.brand in self._by_name else []
        if post.kind == "outbound":
            owner = self.owner_of(post.author.handle)
            return [owner] if owner else []
        return self.match_text(post.text)

    def match_text(self, text: str) -> list[str]:
        """The brands a piece of text is about, by the text rules alone."""
        return [rule.name for rule in self.rules if rule.matches(text)]

    def rule(self, brand: str) -> BrandRule | None:
        return next((r for r in self.rules if r.name == brand), None)

    def terms(self, brand: str) -> list[str]:
        """Every name, handle and keyword of a brand (for neutralising sentiment)."""
        b = self._by_name.get(brand)
        return [] if b is None else [b.name, *b.handles, *b.keywords]

    def all_terms(self) -> list[str]:
        return [t for b in self._brands for t in self.terms(b.name)]
