"""Intent tags (purchase intent, churn risk): the lexicon, negation, and routing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config.schema import BrandConfig
from monitor.enrich import intent
from tests.conftest import write_project
from tests.timeline import T0, Harness, post

LABELLED = [
    # purchase intent
    ("thinking of buying the acme premium plan, worth it?", ("purchase_intent",)),
    ("Where can I buy an Acme gift card?", ("purchase_intent",)),
    ("I want to upgrade to business class on @acme next week", ("purchase_intent",)),
    ("how much is the acme lounge pass?", ("purchase_intent",)),
    ("seriously considering booking acme for our honeymoon", ("purchase_intent",)),
    ("looking for a new airline for work trips, is acme any good?", ("purchase_intent",)),
    # churn risk
    ("that's it, switching to Rival Air after this delay @acme", ("churn_risk",)),
    ("how do I cancel my subscription with acme", ("churn_risk",)),
    ("Never flying with you again @acme", ("churn_risk",)),
    ("moving to another airline, acme lost my bag twice", ("churn_risk",)),
    ("I'm done with you @acme", ("churn_risk",)),
    ("closing my account at acme tomorrow", ("churn_risk",)),
    ("switched to @rivalair and never looked back, bye acme", ("churn_risk",)),
    # both
    ("cancelling my plan with acme, where can I buy a Rival pass?",
     ("purchase_intent", "churn_risk")),
    # negations
    ("not switching to Rival Air, acme sorted it out quickly", ()),
    ("I would never cancel my membership, acme is great", ()),
    ("I'm not thinking of buying anything, just browsing acme", ()),
    ("don't worry, not done with you yet @acme", ()),
    # unrelated uses of the same words
    ("switching to airplane mode now, thanks acme crew", ()),
    ("how much longer will this acme delay be?", ()),
    ("considering the weather, acme did well today", ()),
    ("still looking for a refund from @acme", ()),
    ("moving to London next month, flying acme", ()),
    ("great flight with @acme today", ()),
]


@pytest.mark.parametrize(("text", "expected"), LABELLED)
def test_lexicon_tags_labelled_texts(text: str, expected: tuple[str, ...]) -> None:
    assert intent.tags(text) == expected


def test_matches_explain_the_phrase_as_written() -> None:
    [match] = intent.find("OK @acme, Switching To Rival Air for good")
    assert (match.tag, match.label) == ("churn_risk", "switching to")
    assert match.phrase == "Switching To Rival"


def test_switching_to_the_brand_itself_is_not_churn() -> None:
    own = intent.own_terms(BrandConfig("Acme Air", handles=("@AcmeAir",), keywords=("acme",)))
    assert intent.tags("Switched to Acme Air last month and I love it", own=own) == ()
    assert intent.tags("switching to @acmeair from Rival, bye Rival", own=own) == ()
    assert intent.tags("Switched to Acme Air last month and I love it") == ("churn_risk",)
    assert intent.tags("@AcmeAir switching to Rival", own=own) == ("churn_risk",)


def test_admin_phrases_extend_the_lexicon_and_respect_negation() -> None:
    extra = intent.phrase_patterns("churn_risk", ["porting my   number"])
    assert [m.phrase for m in intent.find("Porting my number away from acme", extra)] == \
        ["Porting my number"]
    assert intent.find("not porting my number, acme fixed it", extra) == []


RULES = """\
rules:
  - name: churn
    signal: intent
    mode: per_post
    channels: [file]
    cooldown: 0s
    params: {tags: [churn_risk]}
  - name: buyers
    signal: intent
    mode: per_post
    channels: [file]
    cooldown: 0s
    params: {tags: [purchase_intent], min_followers: 500, purchase_phrases: [any student discount]}
"""


def test_engine_tags_posts_and_routes_one_alert_per_post(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    at = T0 + timedelta(hours=1)
    alerts = h.feed([
        post(1, at, "@acme lost my bag again, switching to Rival Air"),
        post(2, at + timedelta(seconds=10), "@acme is not switching to Rival Air, promise"),
        post(3, at + timedelta(seconds=20), "where can I buy acme vouchers?", followers=50),
        post(4, at + timedelta(seconds=30), "where can I buy acme vouchers?", followers=900),
        post(5, at + timedelta(seconds=40), "acme any student discount?", followers=900),
        post(6, at + timedelta(seconds=50), "acme crew were lovely"),
        post(7, at + timedelta(seconds=55), "switched to Acme from Rival Air, love it"),
    ])
    assert [(a.rule, a.details["post"]["id"]) for a in alerts] == \
        [("churn", "1"), ("buyers", "4"), ("buyers", "5")]
    churn = alerts[0]
    assert churn.details["tags"] == ["churn_risk"]
    assert churn.details["matches"][0]["phrase"] == "switching to Rival"
    assert '"switching to Rival"' in churn.summary
    assert alerts[2].details["matches"] == [{"tag": "purchase_intent",
                                             "pattern": "any student discount",
                                             "phrase": "any student discount"}]
    # routed to the rule's channel and stored; a redelivered post adds nothing
    assert all(a.channels == ("file",) for a in alerts)
    assert h.feed([post(1, at + timedelta(minutes=2), "@acme lost my bag again, switching "
                        "to Rival Air")]) == []
    assert {a.id for a in h.store.alerts(limit=10)} == {a.id for a in alerts}
    # the tags are on the enriched post for every detector
    [item] = h.engine.enrich(post(9, at, "cancel my subscription @acme"))
    assert item.tags == ("churn_risk",)


def test_shipped_intent_rules_load(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    text = (ROOT / "rules" / "intent.yaml").read_text()
    h = Harness(write_project(tmp_path, rules=text.replace("console, ", "").replace(
        "alerts-file", "file")))
    # a digest: one alert once three customers said so within 30 minutes
    alerts = h.feed([post(i, T0 + timedelta(minutes=i), "@acme never flying with you again",
                          author=f"c{i}") for i in range(3)])
    assert [a.rule for a in alerts] == ["churn-risk"]
    assert alerts[0].headline == "3 customers said they are leaving Acme in the last 2 min"
    assert json.loads(json.dumps(alerts[0].details))["tags"] == ["churn_risk"]


def test_every_builtin_match_contains_one_of_its_triggers() -> None:
    """The substring triggers that let most posts skip the regexes never hide a match:
    for each pattern, strings it matches (the labelled cases, the airline tweets when
    present, and generated phrasings with odd case and Unicode case-folds) contain a
    trigger."""
    import itertools

    from tests.conftest import SHARED

    texts = [t for t, _ in LABELLED]
    tweets = SHARED / "data" / "airline-dev" / "tweets_dev.csv"
    if tweets.exists():
        import csv

        with tweets.open(encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    words = ["buy", "ordering", "purchase", "booking", "upgrade", "sign up", "subscribing",
             "how much is", "considering getting a", "looking for a new", "in the market for",
             "take my money", "switching to Rival", "switched over to another",
             "moving to another bank", "cancelling my account", "never flying again",
             "i'm done with you", "closing my card", "taking my business elsewhere",
             "last time I fly"]
    lead = ["thinking of", "where can I", "I want to", "should we", "", "planning"]
    texts += [f"{a} {w}" for a, w in itertools.product(lead, words)]
    texts += [t.upper() for t in texts[-40:]] + ["ſwitching to Rival", "taKe my money"]
    matched = 0
    for pattern, triggers in zip(intent.BUILTIN, intent.TRIGGERS, strict=True):
        for text in texts:
            for m in pattern.regex.finditer(text):
                matched += 1
                assert any(t in intent._lower(m.group(0)) for t in triggers), \
                    (pattern.label, m.group(0))
    assert matched > 100
