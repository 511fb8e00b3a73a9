"""Identity-targeted hostility: obfuscation, group recognition, polarity, counter-speech, packs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from monitor.config.strict import Context, build
from monitor.detect.outbound import OutboundParams, OutboundScreen, vocab
from monitor.detect.outbound.canon import words
from monitor.detect.outbound.tagger import tag
from monitor.errors import ConfigError

SCREEN = OutboundScreen(OutboundParams(), ("acme.example",), ("Acme",))


def screen(text: str, params: OutboundParams | None = None) -> tuple[str | None, list[str]]:
    s = SCREEN if params is None else OutboundScreen(params, ("acme.example",), ("Acme",))
    result = s.screen(text)
    return (result.severity if result.flagged else None), result.checks


def canonical(text: str) -> str:
    return " ".join(w.text for w in words(text, vocab.vocabulary(), vocab.stoplist()))


@pytest.mark.parametrize("text, expected", [
    ("B4nk w0m3n are v3rm1n", "b4nk women are vermin"),  # only into pack words
    ("h a t e", "hate"), ("I h a t e them", "i hate them"), ("ver min", "vermin"),
    ("Trans gender", "transgender"), ("killallmuslims", "kill all muslims"),
    ("mulsims", "muslims"), ("vrmin", "vermin"), ("Dерort", "deport"), ("d3p0rt", "deport"),
    ("haaaate", "hate"), ("m*slims", "muslims"), ("they're dont can't", "they are do not can not"),
    ("She's not looking", "she is not looking"),
])
def test_obfuscations_are_undone_only_into_pack_words(text: str, expected: str) -> None:
    assert canonical(text) == expected


@pytest.mark.parametrize("text", [
    "the therapist is in", "Transport for London", "Scunthorpe United", "I have a dad and a mum",
    "Happy Mother's Day", "warning labels", "the beat goes on",
])
def test_ordinary_words_are_left_as_written(text: str) -> None:
    assert canonical(text) == " ".join(text.casefold().replace("'s", "").split())


def group_mentions(text: str) -> list[tuple[str, str]]:
    v = vocab.vocabulary()
    return [(t.text, t.dim) for t in tag(words(text, v, vocab.stoplist()), v)
            if "GRP" in t.classes]


def test_groups_are_recognised_by_noun_adjective_and_capital() -> None:
    assert group_mentions("Muslim women and gay people") == [("muslim women", "religion"),
                                                            ("gay people", "sexual_orientation")]
    assert group_mentions("Chinese food and a gay old time") == []  # things, not people
    assert group_mentions("Poles are here") == [("poles", "nationality")]
    assert group_mentions("tent poles are here") == []  # capital-only nouns
    assert group_mentions("the elderly") == [("the elderly", "age")]


@pytest.mark.parametrize("text", [
    "Women are vermin.", "I hate gay people.", "Immigrants should all be deported.",
    "Muslims can't be trusted.", "No Jews allowed.", "Why are trans people so stupid?",
    "I think disabled people are a burden.", "I met some Mexicans. They are filthy.",
    "Who would ever hire a Black woman?", "Kill all Hindus.", "Typical Pakistani, always lying.",
    "The world would be better without refugees.", "I'd never trust a Catholic.",
    "Old people are a waste of space.", "Lesbians are not real people.",
    "Get the Somalis out of our town.", "M u s l i m s are scum", "Wom3n are disgusting",
])
def test_hostile_statements_are_critical(text: str) -> None:
    severity, checks = screen(text)
    assert severity == "critical" and "identity_hate" in checks, (text, checks)


@pytest.mark.parametrize("text", [
    "Women are amazing.", "We stand with trans people.", "Immigrants built this city.",
    "Muslims are not terrorists.", "No one should hate gay people.",
    "It's wrong to say disabled people are lazy.", "Refugees face discrimination at work.",
    "Scams targeting pensioners are disgusting.", "Black people deserve equal rights.",
    "We would never turn away a refugee.", "Happy Pride! 🏳️‍🌈", "Jewish people are welcome here.",
    "Nobody should be deported for being gay.", "We hired three Syrian refugees this year.",
    "I love Mondays, said no one ever.", "Mosquitoes are vermin.",
])
def test_neutral_positive_and_negated_statements_stay_quiet(text: str) -> None:
    severity, checks = screen(text)
    assert severity in (None, "info"), (text, checks)


def test_counter_speech_may_warn_but_is_never_critical() -> None:
    quoted = screen('Someone wrote "Muslims are vermin" on our wall. We reported it to police.')
    assert quoted[0] == "warning" and "identity_hate" in quoted[1]
    condemned = screen("We removed comments calling immigrants animals. Hate has no place here.")
    assert condemned[0] in (None, "info")


@pytest.mark.parametrize("text, check_name", [
    ("@critic_anna we know where you live.", "threat"),
    ("I'm going to punch the next customer who complains.", "threat"),
    ("That reporter deserves a bullet.", "threat"),
    ("Slip one of these into her drink and watch the night get interesting", "consent"),
    ("@dave you're too stupid to read a bill.", "insult"),
])
def test_threats_consent_and_insults_to_a_person_are_critical(text: str,
                                                               check_name: str) -> None:
    severity, checks = screen(text)
    assert severity == "critical" and check_name in checks, (text, checks)


@pytest.mark.parametrize("text", [
    "We'll find you the perfect fit.", "Shoot us a DM and we'll sort it.",
    "This heatwave is killing us!", "Our new fries are to die for.",
    "Your family will love our new menu.", "Accidents happen: that's why repairs are free.",
    "We have your address on file, Sam.", "Beat the queues: order online.",
])
def test_everyday_violent_idioms_are_not_threats(text: str) -> None:
    severity, checks = screen(text)
    assert severity in (None, "info"), (text, checks)


def params(**data: Any) -> OutboundParams:
    return build(OutboundParams, data, Context("test"))


def test_admins_extend_the_group_pack_and_allow_terms() -> None:
    assert screen("Ruritanians are vermin.")[0] is None
    extended = params(groups={"nationality": ["Ruritanians"]})
    assert screen("Ruritanians are vermin.", extended) == ("critical", ["identity_hate"])
    assert screen("Ruritan1ans are vermin.", extended)[0] == "critical"  # obfuscated too
    allowed = params(checks={"identity_hate": {"allow": ["seniors"]}})
    assert screen("Seniors are useless at tech", allowed)[1].count("identity_hate") == 0


def test_admins_add_events_and_categories_are_validated() -> None:
    extended = params(events={"disaster": ["Storm Zed"]})
    assert screen("Storm Zed flash sale, 20% off!", extended)[0] == "critical"
    assert screen("storm zed flash sale, 20% off!")[0] is None
    with pytest.raises(ConfigError, match="unknown category gossip"):
        params(categories=["gossip"])


def test_every_reason_names_its_category() -> None:
    result = SCREEN.screen("Muslims are vermin. Send 1 BTC to bc1qxy2kgdygjrsqtzq2n0yrf2493p83kk"
                           "fjhx0wlh and get 2 back. Hurricane sale 20% off!")
    assert {"hate_speech_aggression", "spam_harmful"} <= set(result.categories)
    assert all(r.endswith("]") and "[" in r for r in result.reasons)
    only = result.only(("spam_harmful",))
    assert only.categories == ["spam_harmful"] and only.severity == "critical"


def test_the_shipped_stoplist_is_current() -> None:
    dictionaries = [p for p in (Path("/usr/share/dict/american-english"),
                                Path("/usr/share/dict/british-english")) if p.exists()]
    if not dictionaries:
        pytest.skip("no system word list (Debian wamerican/wbritish) to rebuild it from")
    words_ = [w for p in dictionaries for w in p.read_text(errors="replace").split()]
    shipped = [line for line in (vocab.PACK_DIR / "stoplist.txt").read_text().splitlines()
               if line and not line.startswith("#")]
    assert vocab.build_stoplist(words_) == shipped, \
        "run: python -m monitor.detect.outbound.vocab stoplist /usr/share/dict/*-english"


@pytest.mark.parametrize("hostile", [
    "a" * 9_000, "a b " * 2_500, "🤮" * 3_000, "x." * 4_000, "h4t3 " * 1_500,
    "killallthe" * 900, "they " * 2_000 + "Muslims", "M u s l i m s " * 600,
])
def test_crafted_posts_are_screened_in_bounded_time(hostile: str) -> None:
    started = time.perf_counter()
    SCREEN.screen(hostile)
    assert time.perf_counter() - started < 1.0
