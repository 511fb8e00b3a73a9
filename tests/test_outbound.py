"""Outbound screen: each check, its reasons and weights, tuning and regex safety."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.loader import load_all
from monitor.config.strict import Context, build
from monitor.detect.outbound import (
    CHECKS,
    CheckParams,
    Hit,
    OutboundParams,
    OutboundScreen,
    check,
    saferegex,
    severity_of,
)
from monitor.detect.outbound.checks_risk import iban_valid, luhn
from monitor.detect.outbound.context import Watch
from monitor.errors import ConfigError
from tests.conftest import BASE_RULES, ROOT, write_project

BRAND = ("Harbor Bank", "@HarborBank")
DOMAINS = ("harborbank.example",)


def shipped() -> OutboundParams:
    """The shipped rule's parameters (rules/outbound.yaml) plus a competitor."""
    data = yaml.safe_load((ROOT / "rules" / "outbound.yaml").read_text())["rules"][0]["params"]
    return build(OutboundParams, {**data, "competitors": ["Meridian Bank"]}, Context("yaml"))


SHIPPED = shipped()


def screen(text: str, *, params: OutboundParams | None = None,
           **kwargs: Any) -> tuple[str | None, list[str], list[str]]:
    s = OutboundScreen(params or SHIPPED, DOMAINS, BRAND)
    result = s.screen(text, **kwargs)
    return (result.severity if result.flagged else None), result.checks, result.reasons


def params(**data: Any) -> OutboundParams:
    return build(OutboundParams, data, Context("test"))


# severity and registry -----------------------------------------------------------
def test_severity_mapping() -> None:
    assert [severity_of(s) for s in (0.1, 0.49, 0.5, 0.99, 1.0, 2.5)] == [
        "info", "info", "warning", "warning", "critical", "critical"]


def test_every_check_is_registered_with_weight_reason_and_scope() -> None:
    expected = {"profanity", "blocked_term", "blocked_pattern", "sensitive_event", "watchlist",
                "newsjacking", "divisive", "company_claim", "competitor", "tone", "insult",
                "personal_voice", "scam", "credential_lure", "link", "shortener",
                "lookalike_domain", "personal_data", "off_hours", "burst", "unknown_client",
                "unsanctioned"}
    assert expected <= set(CHECKS)
    for spec in CHECKS.values():
        assert spec.weight > 0 and spec.reason and spec.scope in ("text", "post")


def test_a_new_check_registers_itself_and_is_tunable() -> None:
    @check("test_emoji_storm", category="spam_harmful", weight=0.5, reason="too many emoji")
    def emoji_storm(ctx: Any) -> list[Hit]:
        return [Hit("x")] if len(ctx.view.emoji) >= 5 else []

    try:
        assert screen("🎉🎉🎉🎉🎉")[1] == ["test_emoji_storm"]
        tuned = params(checks={"test_emoji_storm": {"weight": 2.0}})
        assert screen("🎉🎉🎉🎉🎉", params=tuned)[0] == "critical"
        off = params(checks={"test_emoji_storm": {"enabled": False}})
        assert screen("🎉🎉🎉🎉🎉", params=off)[0] is None
    finally:
        del CHECKS["test_emoji_storm"]
    with pytest.raises(RuntimeError, match="twice"):
        check("profanity", category="obscenity_profanity", weight=1, reason="dup")(emoji_storm)
    with pytest.raises(ValueError, match="unknown category"):
        check("test_nope", category="gossip", weight=1, reason="x")


# profanity -----------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "what the f*ck is this", "absolute sh1tshow today", "f u c k this traffic",
    "fuuuuuck mondays", "our oven guy is an @sshole", "#fuckmondays at the office",
    "who approved this sh!t", "these f***ing drivers", "bunch of r3tards", "$hit happens",
])
def test_profanity_in_disguise_is_critical(text: str) -> None:
    severity, checks, reasons = screen(text)
    assert severity == "critical" and "profanity" in checks, reasons


@pytest.mark.parametrize("text", [
    "Visit our Scunthorpe branch", "Wood-fired and delicious", "shiitake mushroom special",
    "The Galaxy A55 is in stock", "Class of 2025, congratulations!", "We assess every claim",
    "Cocktails and a 3-course dinner", "Our Essex and Sussex branches are open",
])
def test_ordinary_words_are_not_profanity(text: str) -> None:
    assert "profanity" not in screen(text)[1]


def test_mild_profanity_alone_is_not_critical() -> None:
    severity, _, reasons = screen("damn, what a week")
    assert severity == "info" and reasons == ["profanity or slur: damn [obscenity_profanity]"]


def test_profanity_allow_list() -> None:
    assert screen("damn good pizza", params=params(checks={"profanity": {"allow": ["damn"]}}))[
        0] is None


# the incident types of the issue ---------------------------------------------------
@pytest.mark.parametrize("text, must", [
    ("Even the President's grandma saw it coming, she died 3 days before he took office lol",
     {"divisive", "newsjacking"}),
    ("#WhyIStayed You had pizza.", {"sensitive_event", "watchlist"}),
    ("In honour of the victims of the attack, try our new recipe 20% off", {"newsjacking"}),
    ("BREAKING: Harbor Bank has been sold to Meridian Bank!", {"company_claim", "competitor"}),
    ("We're live-tweeting from HR where we're all being fired!", {"company_claim"}),
    ("Send 1 BTC to bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh and get 2 BTC back", {"scam"}),
    ("Verify your account within 24 hours: https://harb0rbank-login.com/x",
     {"credential_lure", "lookalike_domain"}),
    ("@ann your card 4539 1488 0343 6467 is unblocked", {"personal_data"}),
    ("It's our page, we set the rules. If you don't like it, leave.", {"tone"}),
    ("so drunk rn lol who even reads this account", {"personal_voice"}),
    ("Abortion is murder. Proud to be pro-life.", {"divisive"}),
])
def test_incidents_are_critical_with_each_reason(text: str, must: set[str]) -> None:
    severity, checks, reasons = screen(text)
    assert severity == "critical", reasons
    assert must <= set(checks), reasons


@pytest.mark.parametrize("text", [
    "Flash sale: 25% off all savings accounts this week! harborbank.example/sale",
    "@tom We're so sorry about the double charge, Tom. I've raised it and the refund is "
    "on its way. Please DM us rather than sharing card details here.",
    "Our app is down this morning. We're working on a fix and apologise for the disruption.",
    "We're recalling card readers from batch 22 due to a fault; a free replacement is on "
    "its way.",
    "Merry Christmas and a happy new year from all of us at Harbor Bank 🎄",
    "We are heartbroken that our colleague Dan passed away on Friday. Rest in peace, Dan.",
    "Because of Hurricane Milo our Galveston branches are closed today. Stay safe.",
    "Scam alert: we will never ask you to send money, crypto or gift cards, or your PIN.",
    "Call us free on 1-800-555-0199 or write to help@harborbank.example",
])
def test_ordinary_posts_are_never_critical(text: str) -> None:
    severity, _, reasons = screen(text)
    assert severity != "critical", reasons


@pytest.mark.parametrize("text", [
    "You're entitled to a full refund if your flight is cancelled.",
    "Some people may see delays this morning while we fix the fault.",
    "Our Leeds branch was hammered by the storm but reopens tomorrow.",
    "Check out our page for updates on the new app.",
    "Try our fruit punch and a slice for $5 🍕",
    "We woke up to snow! Whatever the weather, our drivers are on the road.",
    "Meet Molly, who has volunteered with us for 10 years 💀 just kidding, 12!",
])
def test_everyday_phrasing_is_not_raised(text: str) -> None:
    severity, _, reasons = screen(text)
    assert severity in (None, "info"), reasons


def test_watch_entries_and_their_weight() -> None:
    entry = Watch.of("Easton", weight=1.0, note="marathon bombing")
    severity, checks, reasons = screen("Thinking of Easton today 💙", watch=[entry])
    assert severity == "critical" and checks == ["watchlist"]
    assert reasons == ["on the sensitive-events watchlist: Easton (marathon bombing) "
                       "[death_injury_military_conflict]"]
    assert screen("Thinking of Easton today", watch=[Watch.of("Easton")])[0] == "warning"
    assert screen("Thinking of Eastonville", watch=[Watch.of("Easton")])[0] is None
    tagged = params(watchlist=["#PrayFor*"])
    # solidarity alone asks for a look (the watchlist says it; the event is not counted twice)
    assert screen("#PrayForLyon", params=tagged)[:2] == ("warning", ["watchlist"])
    severity, checks, _ = screen("#PrayForLyon 20% off everything today", params=tagged)
    assert severity == "critical" and {"watchlist", "sensitive_event", "newsjacking"} <= set(
        checks)


# links ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, check_name, detail", [
    ("more at https://evil.example/x", "link", "evil.example"),
    ("more at bit.ly/3xYz", "shortener", "bit.ly"),
    ("log in at harborbank-secure.com/login", "lookalike_domain", "harborbank-secure.com"),
    ("log in at https://harb0rbank.com", "lookalike_domain", "harb0rbank.com"),
    ("log in at https://xn--harborbnk-12a.com", "lookalike_domain", "harborbänk.com"),
    ("see http://203.0.113.9/login", "link", "203.0.113.9"),
])
def test_link_checks(text: str, check_name: str, detail: str) -> None:
    _, checks, reasons = screen(text)
    assert check_name in checks and any(detail in r for r in reasons), reasons


def test_allowed_platform_and_email_domains_are_not_links() -> None:
    for text in ("see https://www.harborbank.example/help", "watch youtube.com/watch?v=1",
                 "mail help@harborbank.example", "sub.harborbank.example/x is ours"):
        assert screen(text)[0] is None, text


def test_without_allowed_domains_only_risky_links_count() -> None:
    s = OutboundScreen(OutboundParams(), (), ("Acme",))
    assert not s.screen("read https://news.example/story").flagged
    assert s.screen("read https://bit.ly/x").checks == ["shortener"]


# personal data ------------------------------------------------------------------
def test_card_and_iban_validation() -> None:
    assert luhn("4539148803436467") and not luhn("4539148803436468")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert screen("ref 4539 1488 0343 6468 noted")[0] is None  # fails Luhn: an order number
    assert screen("pay GB82 WEST 1234 5698 7654 32 today")[1] == ["personal_data"]


def test_phone_and_email_weights_and_own_contacts() -> None:
    assert screen("call Jo on 07700 900123")[0] == "warning"
    assert screen("call Jo on 07700 900123 or jo.bloggs@gmail.com")[0] == "critical"
    own = OutboundParams(own_contacts=("020 7946 0000",))
    assert screen("call us on 020 7946 0000", params=own)[0] is None
    assert screen("we open 2019-2024 from 9:30 to 17:00, price $1,234.50")[0] is None


# tuning and validation --------------------------------------------------------------
def test_terms_are_added_and_weights_changed() -> None:
    tuned = params(checks={"divisive": {"terms": ["pineapple debate"], "weight": 1.0}})
    assert screen("Join the pineapple debate!", params=tuned)[0] == "critical"
    assert screen("Join the pineapple debate!")[0] is None


def test_blocked_terms_and_patterns() -> None:
    p = params(blocked_terms=["Project Falcon"], blocked_patterns=[r"\bcode\s*red\b"])
    _, checks, reasons = screen("project falcon is CODE RED", params=p)
    assert checks == ["blocked_term", "blocked_pattern"]
    assert reasons[0] == "blocked term: Project Falcon [spam_harmful]"


@pytest.mark.parametrize("data, key, message", [
    ({"checks": {"nope": {}}}, "checks", "unknown check(s) nope"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"hours": "9-17"}, "hours", "expected HH:MM-HH:MM"),
    ({"days": ["funday"]}, "days", "unknown day(s) funday"),
    ({"blocked_patterns": ["(a+)+$"]}, "blocked_patterns[0]", "nested quantifier"),
    ({"blocked_patterns": [r"(\w)\1"]}, "blocked_patterns[0]", "backreferences"),
    ({"blocked_patterns": ["(?=x)y"]}, "blocked_patterns[0]", "lookahead"),
    ({"blocked_patterns": ["(a|ab)*c"]}, "blocked_patterns[0]", "alternation"),
    ({"blocked_patterns": [".*a.*b.*c"]}, "blocked_patterns[0]", "unbounded repeats"),
])
def test_params_problems(data: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        params(**data)
    problem = info.value.problems[0]
    assert problem.key == key and message in problem.message


def test_rule_file_with_unsafe_regex_is_rejected_with_its_line(tmp_path: Path) -> None:
    rules = BASE_RULES + "    params:\n      blocked_patterns: ['(x+x+)+y']\n"
    config = write_project(tmp_path, rules=rules)
    with pytest.raises(ConfigError) as info:
        load_all(config)
    assert "nested quantifier" in str(info.value.problems[0])
    assert info.value.problems[0].line is not None


@pytest.mark.parametrize("engine", ["re2", "re"])
def test_admin_patterns_stay_fast_on_hostile_input(engine: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "re":
        monkeypatch.setattr(saferegex, "RE2", None)
    elif saferegex.RE2 is None:
        pytest.skip("google-re2 is not installed")
    p = params(blocked_patterns=[r"a.*b.*c", r"\b(?:btc|eth)+\b.{0,40}double"])
    s = OutboundScreen(p, DOMAINS, BRAND)
    hostile = "a" * 9_000 + "b" * 900
    started = time.perf_counter()
    assert not s.screen(hostile).checks.count("blocked_pattern")
    assert s.screen("a then b then c").checks == ["blocked_pattern"]
    assert time.perf_counter() - started < 2.0


def test_long_posts_are_screened_quickly() -> None:
    text = ("Our winter sale is on! " * 400)[:10_000]
    started = time.perf_counter()
    assert screen(text)[0] is None
    assert time.perf_counter() - started < 1.0


def test_check_params_defaults() -> None:
    p = OutboundParams(checks={"tone": CheckParams(enabled=False)}, profanity=False)
    assert not p.enabled("tone") and not p.enabled("profanity") and p.enabled("scam")
    assert replace(p, check_links=False).enabled("shortener") is False


def test_required_strings_skip_the_engine_but_never_change_the_answer() -> None:
    assert saferegex.required(r"\b(?:send|transfer)\b.{0,40}\bbtc\b.{0,9}\bdouble\b") == (
        "btc",)  # the first literal run every match holds
    assert saferegex.required(r"(?:Send|wire)\s+it") == ("send", "wire")
    assert saferegex.required(r"\bcode\s*red\b") == ("code",)
    assert saferegex.required("a.*b.*c") == () and saferegex.required("foo|bar") == ()
    for pattern in (r"\bcode\s*red\b", r"(?:Send|wire)\s+now", "foo|bar"):
        matcher = saferegex.compile_safe(pattern)
        for text in ("CODE  RED now", "please SEND NOW", "wire now", "bar", "nothing"):
            assert matcher(text) == bool(re.search(pattern, text, re.IGNORECASE)), (pattern,
                                                                                      text)


def test_a_new_outbound_detector_has_its_packs_loaded_before_the_first_post() -> None:
    """The first outbound post must not load the data packs on the daemon's event loop
    (a 200 ms stall was measured): constructing the detector warms the screen. Checked
    in a fresh interpreter (this one has the packs cached by earlier tests): once the
    detector exists, screening must not read a pack file."""
    import subprocess
    import sys

    script = """
from monitor.config.schema import BrandConfig, Rule
from monitor.detect.outbound import OutboundParams, vocab
from monitor.detect.outbound.detector import OutboundDetector

rule = Rule(name="outbound", signal="outbound", channels=("c",), params=OutboundParams())
detector = OutboundDetector(rule, BrandConfig(name="Acme", keywords=("acme",)))

read = vocab._read
loaded = []
vocab._read = lambda name: loaded.append(name) or read(name)
result = detector.screener.screen("Hurricane Sandy got you down? 25% off today #sandy")
assert not loaded, f"packs read on the first post: {loaded}"
assert any(f.check == "newsjacking" for f in result.findings), result
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
