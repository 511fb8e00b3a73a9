"""Brand matching: handles with or without @, keywords as whole words, exclusions."""

from __future__ import annotations

from monitor.config.schema import BrandConfig
from monitor.enrich.match import BrandMatcher
from tests.timeline import T0, post

BRANDS = (
    BrandConfig(name="Acme Air", handles=("@AcmeAir",), keywords=("acme air",),
                exclude=("acme anvil",)),
    BrandConfig(name="Globex", handles=("@globex",), keywords=("globex",)),
)


def brands_of(text: str, **kwargs: object) -> list[str]:
    return BrandMatcher(BRANDS).match(post(1, T0, text, **kwargs))  # type: ignore[arg-type]


def test_handle_with_or_without_at_and_any_case() -> None:
    assert brands_of("@acmeair where is my bag") == ["Acme Air"]
    assert brands_of("flying ACMEAIR again") == ["Acme Air"]
    assert brands_of("#AcmeAir delays") == ["Acme Air"]


def test_keywords_are_whole_words_and_phrases() -> None:
    assert brands_of("Acme   Air lost my bag") == ["Acme Air"]
    assert brands_of("acmeairline fan club") == []
    assert brands_of("globexcorp") == []
    assert brands_of("globex and acme air both late") == ["Acme Air", "Globex"]


def test_exclusions_win() -> None:
    assert brands_of("the acme air acme anvil cartoon") == []


def test_explicit_brand_and_outbound_owner() -> None:
    matcher = BrandMatcher(BRANDS)
    explicit = post(1, T0, "no names here")
    assert matcher.match(explicit) == []
    from dataclasses import replace

    assert matcher.match(replace(explicit, brand="Globex")) == ["Globex"]
    assert matcher.match(replace(explicit, brand="Unknown")) == []
    own = post(2, T0, "Spring sale!", author="AcmeAir", kind="outbound")
    assert matcher.match(own) == ["Acme Air"]
    stranger = post(3, T0, "acme air rocks", author="someone", kind="outbound")
    assert matcher.match(stranger) == []


def test_text_rules_are_shared_per_brand() -> None:
    matcher = BrandMatcher(BRANDS)
    assert matcher.match_text("globex and ACME AIR both late") == ["Acme Air", "Globex"]
    assert matcher.match_text("the acme air acme anvil cartoon") == []
    rule = matcher.rule("Acme Air")
    assert rule is not None and rule.name == "Acme Air"
    assert rule.names("#acmeair") and not rule.names("acmeairline")
    assert rule.excluded("an Acme  Anvil") and not rule.excluded("acme air")
    assert not rule.matches("acme air acme anvil") and rule.matches("@AcmeAir hi")
    assert matcher.rule("Nope") is None
    assert [r.name for r in matcher.rules] == ["Acme Air", "Globex"]
