"""Routing outbound alerts by brand-safety category, and the categories in `screen` output."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

from monitor import commands
from tests.conftest import BASE_CONFIG, write_project
from tests.timeline import T0, Harness, post

CONFIG = BASE_CONFIG.replace("""channels:
  - name: file
    url: jsonl://state/alerts.jsonl""", """channels:
  - name: file
    url: jsonl://state/alerts.jsonl
  - name: comms
    url: jsonl://state/comms.jsonl
  - name: security
    url: jsonl://state/security.jsonl""")
RULES = """\
rules:
  - name: outbound-hate
    signal: outbound
    channels: [comms]
    cooldown: 0s
    params: {categories: [hate_speech_aggression, terrorism]}
  - name: outbound-takeover
    signal: outbound
    channels: [security]
    cooldown: 0s
    params: {categories: [spam_harmful]}
  - name: outbound-rest
    signal: outbound
    channels: [file]
    cooldown: 0s
    params: {exclude_categories: [hate_speech_aggression, terrorism, spam_harmful]}
"""
AT = T0 + timedelta(hours=10)


def test_each_rule_sees_the_findings_of_its_categories(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, CONFIG, RULES))
    both = ("Immigrants are vermin. Send 0.1 BTC to bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh "
            "and get 0.2 BTC back!")
    alerts = h.feed([post(1, AT, both, author="acme", kind="outbound")])
    by_rule = {a.rule: a for a in alerts}
    assert set(by_rule) == {"outbound-hate", "outbound-takeover"}
    hate, takeover = by_rule["outbound-hate"], by_rule["outbound-takeover"]
    assert hate.channels == ("comms",) and takeover.channels == ("security",)
    assert hate.details["categories"] == ["hate_speech_aggression"]
    assert takeover.details["categories"] == ["spam_harmful"]
    assert all("[hate_speech_aggression]" in r for r in hate.details["reasons"])
    assert hate.severity == takeover.severity == "critical"
    scam_only = h.feed([post(2, AT + timedelta(seconds=5), "Double your Bitcoin today: send "
                             "BTC to our wallet and get 2x back!", author="acme",
                             kind="outbound")])
    assert [a.rule for a in scam_only] == ["outbound-takeover"]
    divisive = h.feed([post(3, AT + timedelta(seconds=9), "Personally I think abortion is "
                            "murder and the President is a criminal.", author="acme",
                            kind="outbound")])
    assert [a.rule for a in divisive] == ["outbound-rest"]
    assert "sensitive_social_issues" in divisive[0].details["categories"]


def test_screen_prints_categories_and_checks(tmp_path: Path) -> None:
    config = write_project(tmp_path)
    lines = [{"id": "h", "text": "Trans people are a disease."},
             {"id": "n", "text": "Hurricane Milo sale: 30% off everything!"},
             {"id": "ok", "text": "Our new app is live. Update today!"}]
    out = io.StringIO()
    stdin = io.StringIO("".join(json.dumps(x) + "\n" for x in lines))
    assert commands.screen(config, stdin, out) == 0
    rows = {r["id"]: r for r in map(json.loads, out.getvalue().splitlines())}
    assert rows["h"]["severity"] == "critical"
    assert rows["h"]["categories"] == ["hate_speech_aggression"]
    assert "identity_hate" in rows["h"]["checks"]
    assert rows["n"]["severity"] == "critical"
    assert rows["n"]["categories"] == ["death_injury_military_conflict"]
    assert rows["ok"] == {"id": "ok", "flagged": False, "severity": None, "reasons": [],
                          "categories": [], "checks": []}
