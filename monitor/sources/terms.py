"""What to listen for: a brand's handles, name and keywords, and its exclusions."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.config.schema import BrandConfig


def listen_terms(brand: BrandConfig) -> list[str]:
    """Lower-cased phrases whose presence makes a post a candidate mention."""
    terms: list[str] = []
    for term in (*brand.handles, brand.name, *brand.keywords):
        t = term.strip().lower()
        for variant in (t, t.lstrip("@")):
            if variant and variant not in terms:
                terms.append(variant)
    return terms


def own_handles(brands: Sequence[BrandConfig]) -> dict[str, str]:
    """Handle (no @, lower case) -> brand name, for recognising outbound posts."""
    return {h.strip().lstrip("@").lower(): b.name for b in brands for h in b.handles}
