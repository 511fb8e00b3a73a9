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
from monitor.enrich.textfold import fold
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


_TOKEN = re.compile(r"\w+")


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(fold(text)))


class BrandMatcher:
    """Every brand's rules, behind a word index: a brand's exact rule only runs when
    the text holds a word of one of its phrases, so the cost per post barely grows
    with the number of brands configured."""

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands = tuple(brands)
        self._by_name = {b.name: b for b in brands}
        self._owner = {normalise_handle(h): b.name for b in brands for h in b.handles}
        self.rules = tuple(brand_rule(b) for b in brands)
        self._rule_by_name = {r.name: r for r in self.rules}
        # word -> positions of the brands with a phrase containing it; a phrase match
        # contains all of the phrase's words, so it always contains its first one
        self._index: dict[str, set[int]] = {}
        self._always: list[int] = []  # brands with a phrase that has no word at all
        for i, brand in enumerate(self._brands):
            for phrase in (*brand.handles, *brand.keywords, brand.name):
                words = _tokens(phrase)
                if not words:
                    if phrase.strip().lstrip("@#"):
                        self._always.append(i)
                    continue
                first = sorted(words, key=len)[-1]  # the longest: the most selective
                self._index.setdefault(first, set()).add(i)

    def owner_of(self, handle: str) -> str | None:
        """The brand whose own account ``handle`` is, if any."""
        return self._owner.get(normalise_handle(handle))

    def match(self, post: Post) -> list[str]:
        return self.match_fields(post.kind, post.brand, post.author.handle, post.text)

    def match_fields(self, kind: str, brand: str | None, handle: str, text: str) -> list[str]:
        if brand is not None:
            return [brand] if brand in self._by_name else []
        if kind == "outbound":
            owner = self.owner_of(handle)
            return [owner] if owner else []
        return self.match_text(text)

    def match_text(self, text: str) -> list[str]:
        """The brands a piece of text is about, by the text rules alone (in the order
        the brands are configured)."""
        index = self._index
        found = {i for word in _tokens(text) for i in index.get(word, ())}
        found.update(self._always)
        rules = self.rules
        return [rules[i].name for i in sorted(found) if rules[i].matches(text)]

    def rule(self, brand: str) -> BrandRule | None:
        return self._rule_by_name.get(brand)

    def terms(self, brand: str) -> list[str]:
        """Every name, handle and keyword of a brand (for neutralising sentiment)."""
        b = self._by_name.get(brand)
        return [] if b is None else [b.name, *b.handles, *b.keywords]

    def all_terms(self) -> list[str]:
        return [t for b in self._brands for t in self.terms(b.name)]
