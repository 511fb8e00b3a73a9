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


def test_fold_agrees_with_the_regex_engine_over_the_bmp() -> None:
    """The prefilters' lower-casing never separates characters re.IGNORECASE equates."""
    import re

    from monitor.enrich.textfold import fold

    for code in range(0x20, 0x10000):
        if 0xD800 <= code < 0xE000:
            continue
        c = chr(code)
        rx = re.compile(re.escape(c), re.IGNORECASE)
        for d in {c.lower(), c.upper(), c.casefold(), c.swapcase(), c.title(), *"iIıſsSςσkK"}:
            if len(d) == 1 and rx.fullmatch(d):
                assert fold(c) == fold(d), (hex(code), d)


def test_word_index_gives_the_same_brands_as_every_rule_on_its_own() -> None:
    """100 brands behind the index: the same answer as trying each brand's rule."""
    import random

    brands = [BrandConfig("AT&T", ("@ATT",), ("at&t",)),
              BrandConfig("Southwest", ("@SouthwestAir",), ("south west",)),
              BrandConfig("Sigma", ("@sigma",), ("ΣΙΓΜΑ bank",)),
              BrandConfig("Straße", ("@strasse",), ("straße",))]
    brands += [BrandConfig(f"Brand {i}", (f"@brand{i}",), (f"co{i} group",),
                           exclude=(f"not co{i}",)) for i in range(100)]
    matcher = BrandMatcher(brands)
    words = ["at&t", "AT & T", "@att", "South  West", "south-west", "σιγμα bank", "ΣΙΓΜΑ BANK",
             "STRASSE", "Straße", "straẞe", "@brand7", "co42 group", "not co42 group", "CO9",
             "group", "hello", "#Brand13", "xbrand1", "brand1x", "ſouth west", "@southwestair!"]
    rng = random.Random(5)
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        expected = [r.name for r in matcher.rules if r.matches(text)]
        assert matcher.match_text(text) == expected, text
