"""Trending context: the real engine feeds inbound posts, then the brand posts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from monitor.detect.outbound.text import TextView
from monitor.detect.outbound.trending import MAX_TERMS, TrendingContext
from monitor.model import Author, Post
from tests.timeline import T0, Harness, post

AT = T0 + timedelta(days=1, hours=9)
VERDICT = [
    "The jury found her #NotGuilty. A little girl is dead and nobody pays for it.",
    "#NotGuilty on all murder charges. I am in shock.",
    "How can that verdict be #NotGuilty when her daughter was murdered?",
    "Protesters outside the courthouse after the #NotGuilty verdict in the murder trial",
    "The prosecution's case fell apart and now a killer walks free #NotGuilty",
    "Crying for that poor baby, killed by her own mother. #NotGuilty is a disgrace",
]
PIZZA_DAY = [
    "It's #NationalPizzaDay and I'm having pizza for every meal",
    "Pineapple or no pineapple? #NationalPizzaDay",
    "Best slice in town for #NationalPizzaDay? Go!",
    "Celebrating #NationalPizzaDay with the kids",
    "#NationalPizzaDay deals everywhere today, love it",
    "My diet ends today. #NationalPizzaDay",
]


def inbound(harness: Harness, texts: list[str], start: int = 100,
            at: object = AT - timedelta(hours=2)) -> None:
    assert isinstance(at, type(AT))
    step = timedelta(hours=2) / len(texts)
    harness.feed([post(start + i, at + step * i, text) for i, text in enumerate(texts)])


def brand_post(n: int, text: str, at: object = AT) -> Post:
    assert isinstance(at, type(AT))
    return post(n, at, text, author="acme", kind="outbound")


def test_a_hashtag_trending_beside_a_murder_is_flagged_through_the_engine(project: Path) -> None:
    h = Harness(project)
    inbound(h, VERDICT)  # none of them mentions the brand: the engine still counts them
    alerts = h.feed([brand_post(1, "Who's #NotGuilty about eating all the treats they want?! "
                                   "Order now 🍕")])
    assert len(alerts) == 1 and alerts[0].severity == "critical"
    reasons = alerts[0].details["reasons"]
    trend = next(r for r in reasons if "trending" in r)
    assert "#NotGuilty is trending in recent inbound posts" in trend
    assert "murder" in trend or "dead" in trend or "murdered" in trend
    assert "trending_context" in alerts[0].details["checks"]


def test_the_same_post_without_that_stream_or_with_a_cheerful_one_is_quiet(
        project: Path, tmp_path: Path) -> None:
    text = "Who's #NotGuilty about eating all the treats they want?!"
    quiet = Harness(project)
    assert quiet.feed([brand_post(1, text)]) == []
    cheerful = Harness(project, db=tmp_path / "other.db")
    inbound(cheerful, PIZZA_DAY)
    assert cheerful.feed([brand_post(2, "Happy #NationalPizzaDay! 2-for-1 all day 🍕")]) == []


def test_an_old_dark_stream_has_decayed_by_the_next_day(project: Path) -> None:
    h = Harness(project)
    inbound(h, VERDICT, at=AT - timedelta(days=1, hours=2))
    assert h.feed([brand_post(1, "Who's #NotGuilty about eating all the treats?!")]) == []


def test_a_word_of_the_dark_stream_is_enough_when_the_stream_is_about_a_shooting(
        project: Path) -> None:
    h = Harness(project)
    inbound(h, ["Gunman opened fire at a movie theater overnight, 12 dead",
                "The shooter was wearing body armour, police say",
                "Another mass shooting. How many more people have to be killed?",
                "Shooting victims' families gather outside the hospital",
                "Police: shooter used an assault rifle and two handguns",
                "Thoughts with everyone affected by the shooting, this is horrific",
                "Vigil tonight for the shooting victims",
                "Survivors describe the moment the shooting started"])
    alerts = h.feed([brand_post(1, "Good morning, shooters! Happy Friday! Weekend plans?")])
    assert [a.severity for a in alerts] == ["warning"]
    assert any("'shooter" in r or "'shooting" in r for r in alerts[0].details["reasons"])
    assert h.feed([brand_post(2, "Bath bombs are 3 for 2 this weekend")]) == []


def test_a_sales_pitch_while_the_brands_own_mentions_are_about_deaths(project: Path) -> None:
    h = Harness(project)
    inbound(h, ["Acme flight 209 crashed on landing, reports of many dead",
                "@acme how many people were killed on flight 209??",
                "Acme crash: 150 passengers feared dead",
                "Praying for everyone on the acme flight. This is a tragedy.",
                "Investigators at the acme crash site, bodies recovered",
                "acme victims' families gather at the airport"])
    alerts = h.feed([brand_post(1, "Fly to Paris this spring from just $49! Book now 🌸")])
    assert [a.severity for a in alerts] == ["warning"]
    assert any("recent mentions of the brand" in r for r in alerts[0].details["reasons"])
    # a care reply during the crisis is what the brand should be posting
    assert h.feed([brand_post(2, "We are devastated. Families can call our helpline on "
                                 "0800 123 456 at any time.", AT + timedelta(minutes=1))]) == []


def _inbound_post(n: int, text: str, minutes: int = 0) -> Post:
    return Post(id=str(n), source="t", kind="mention", author=Author(f"u{n}", f"u{n}"),
                text=text, created_at=AT + timedelta(minutes=minutes))


def test_memory_is_bounded_in_keys_and_in_dark_words_per_key() -> None:
    trending = TrendingContext(max_keys=50)
    for n in range(2000):
        trending.observe(_inbound_post(n, f"#tag{n} Sydney {n} killed dead murder shooting "
                                          f"bomb victims massacre hostage wounded"), -0.9)
    assert len(trending) == 50
    assert all(len(entry.terms) <= MAX_TERMS for entry in trending._keys.values())
    assert "#tag1999" in trending._keys and "#tag0" not in trending._keys  # oldest evicted


def test_lookup_needs_enough_posts_and_a_dark_share() -> None:
    trending = TrendingContext()
    view = TextView.of("Lovely day at #Bondi")
    for n in range(3):
        trending.observe(_inbound_post(n, "Shark attack at #Bondi, swimmer killed", n))
    assert trending.lookup(view, None, AT + timedelta(minutes=5), 4.0, 0.4) == []
    for n in range(3, 6):
        trending.observe(_inbound_post(n, "Shark attack at #Bondi, swimmer killed", n))
    hits = trending.lookup(view, None, AT + timedelta(minutes=5), 4.0, 0.4)
    assert [h.key for h in hits] == ["#Bondi"] and "killed" in hits[0].terms
    for n in range(6, 30):  # the stream moves on to happier things: the share drops
        trending.observe(_inbound_post(n, "Sunny and gorgeous at #Bondi today", n))
    assert trending.lookup(view, None, AT + timedelta(minutes=40), 4.0, 0.4) == []


def test_inbound_words_that_only_sound_dark_do_not_count() -> None:
    trending = TrendingContext()
    for n, text in enumerate(["That goal killed me, I'm dead 😂 #WorldCupFinal",
                              "What a match #WorldCupFinal", "Crying happy tears #WorldCupFinal",
                              "I'd die for that pass #WorldCupFinal",
                              "Best final in decades #WorldCupFinal",
                              "Penalties again? #WorldCupFinal"]):
        trending.observe(_inbound_post(n, text, n))
    view = TextView.of("Congratulations to the champions! #WorldCupFinal")
    assert trending.lookup(view, None, AT + timedelta(minutes=10), 4.0, 0.4) == []


def test_counts_decay_by_half_life_without_touching_every_key_and_survive_rebasing() -> None:
    """The scaled counters read as exponentially decayed counts, also across the rare
    rebase that keeps them from overflowing."""
    from monitor.detect.outbound import trending

    context = TrendingContext(half_life=timedelta(minutes=1))
    view = TextView.of("#Storm")

    def posts_at(minutes: float) -> float:
        hits = context.lookup(view, None, T0 + timedelta(minutes=minutes), 0.0, 0.0)
        return hits[0].posts if hits else 0.0

    for i in range(4):
        context.observe(post(i, T0, "#Storm is coming"))
    assert abs(posts_at(0) - 4.0) < 1e-9
    assert abs(posts_at(1) - 2.0) < 1e-9 and abs(posts_at(3) - 0.5) < 1e-9
    # far ahead: the scale passes REBASE_HALF_LIVES and every key is rescaled once
    later = 60 * 500
    context.observe(post(99, T0 + timedelta(minutes=later), "#Storm again"))
    assert later > trending.REBASE_HALF_LIVES and context._ref is not None
    assert abs(posts_at(later) - 1.0) < 1e-9
    assert abs(posts_at(later + 1) - 0.5) < 1e-9
