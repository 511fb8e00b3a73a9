"""Outbound detector state: hours, bursts, clients, the ledger, the watchlist, the folder."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import commands
from monitor.config.schema import BrandConfig, Rule
from monitor.config.strict import Context, build
from monitor.detect.base import DetectorContext
from monitor.detect.outbound import (
    ApprovedPost,
    OutboundDetector,
    OutboundParams,
    OutboundRuntime,
    WatchEntry,
    similarity,
)
from monitor.detect.outbound.folder import ApprovedFolder, FolderSpec, folder_specs
from monitor.model import Author, Post
from monitor.store.sqlite import SqliteStore
from tests.conftest import BASE_RULES, write_project
from tests.timeline import T0, Harness, post

BRAND = BrandConfig(name="Acme", handles=("@acme",), allowed_domains=("acme.example",))
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


def detector(runtime: OutboundRuntime | None = None, **data: Any) -> OutboundDetector:
    params = build(OutboundParams, data, Context("test"))
    rule = Rule(name="outbound", signal="outbound", channels=("security",), params=params,
                severity="critical")
    return OutboundDetector(rule, BRAND, DetectorContext(outbound=runtime or OutboundRuntime()))


def out(n: int, text: str, at: datetime = NOON, client: str | None = None) -> Post:
    return Post(id=str(n), source="test", kind="outbound", author=Author("acme", "acme"),
                text=text, created_at=at, client=client, url=f"https://x.example/acme/{n}")


# similarity ------------------------------------------------------------------------
def test_similarity_tolerates_links_emoji_and_small_edits() -> None:
    approved = "Spring sale! 20% off all flights this weekend. Book at https://acme.example/s"
    assert similarity(approved, "Spring sale 🌸 20% off all flights this weekend! "
                                "Book at https://t.co/abc") >= 0.9
    assert similarity(approved, "Spring sale: 20% off flights this weekend, book now") >= 0.75
    assert similarity(approved, "We have been sold to Globex. Goodbye!") < 0.3
    assert similarity("", "") == 1.0 and similarity("", "x") == 0.0


# posting context -----------------------------------------------------------------
def test_off_hours_in_the_brand_time_zone_and_days() -> None:
    d = detector(timezone="Europe/London", hours="07:00-22:00", days=["mon", "tue", "wed",
                                                                      "thu", "fri"])
    assert d.evaluate(out(1, "Good morning!", NOON)).checks == []
    late = d.evaluate(out(2, "Good night!", datetime(2026, 3, 2, 23, 30, tzinfo=UTC)))
    assert late.checks == ["off_hours"]
    assert "Mon 23:30 Europe/London, outside 07:00-22:00" in late.reasons[0]
    sunday = d.evaluate(out(3, "Hello", datetime(2026, 3, 1, 12, tzinfo=UTC)))
    assert "not an allowed day" in sunday.reasons[0]
    overnight = detector(hours="22:00-06:00")
    assert overnight.evaluate(out(4, "x", datetime(2026, 3, 2, 2, tzinfo=UTC))).checks == []
    assert overnight.evaluate(out(5, "x", NOON)).checks == ["off_hours"]


def test_burst_counts_posts_within_the_window_and_survives_a_restart() -> None:
    d = detector(burst_limit=3, burst_window="10m")
    checks = [d.evaluate(out(i, f"post {i}", NOON + timedelta(minutes=i))).checks
              for i in range(5)]
    assert checks[:3] == [[], [], []] and checks[3] == ["burst"] and checks[4] == ["burst"]
    assert d.dirty()
    state = d.to_state()
    again = detector(burst_limit=3, burst_window="10m")
    again.load_state(json.loads(json.dumps(state)))
    assert again.evaluate(out(9, "later", NOON + timedelta(minutes=6))).checks == ["burst"]
    assert again.evaluate(out(10, "much later", NOON + timedelta(hours=2))).checks == []


def test_unknown_client_only_when_the_source_reports_one() -> None:
    d = detector(known_clients=["Sprout Social", "Hootsuite"])
    assert d.evaluate(out(1, "hi", client="hootsuite")).checks == []
    assert d.evaluate(out(2, "hi", client=None)).checks == []
    flagged = d.evaluate(out(3, "hi", client="Unknown Android"))
    assert flagged.reasons == ["posted from an unknown app: 'Unknown Android' [spam_harmful]"]
    assert flagged.severity == "warning"


def test_hijack_signals_add_up_to_critical() -> None:
    d = detector(hours="08:00-20:00", known_clients=["Hootsuite"])
    result = d.evaluate(out(1, "test test can anyone see this",
                            datetime(2026, 3, 2, 3, 10, tzinfo=UTC), client="Web"))
    assert result.severity == "critical"
    assert {"off_hours", "unknown_client"} <= set(result.checks)


# ledger ----------------------------------------------------------------------------
def test_ledger_auto_starts_with_the_first_approved_post() -> None:
    runtime = OutboundRuntime()
    d = detector(runtime)
    assert d.evaluate(out(1, "Big news tomorrow!")).checks == []  # no ledger in use yet
    runtime.approve(ApprovedPost.from_json({"text": "Spring sale: 20% off this weekend!"},
                                           NOON - timedelta(hours=1), timedelta(days=1)))
    assert d.evaluate(out(2, "Spring sale 20% off this weekend 🌸")).checks == []
    result = d.evaluate(out(3, "Big news tomorrow!"))
    assert result.checks == ["unsanctioned"] and result.severity == "warning"
    assert "only" in result.reasons[0] and "similar" in result.reasons[0]
    expired = d.evaluate(out(4, "Spring sale: 20% off this weekend!", NOON + timedelta(days=2)))
    assert expired.reasons == ["not in the approved-posts ledger: no approved post is valid now "
                               "[spam_harmful]"]


def test_ledger_modes_and_brands() -> None:
    runtime = OutboundRuntime()
    item = ApprovedPost.from_json({"text": "Hello from Globex", "brand": "Globex"}, NOON,
                                  timedelta(days=1))
    runtime.approve(item)
    assert detector(runtime).evaluate(out(1, "anything")).checks == []  # other brand's item
    assert detector(runtime, ledger="on").evaluate(out(2, "anything")).checks == [
        "unsanctioned"]
    runtime.approve(ApprovedPost.from_json({"text": "Hello from Acme"}, NOON, timedelta(1)))
    assert detector(runtime, ledger="off").evaluate(out(3, "anything")).checks == []
    assert detector(runtime, ledger_threshold=0.2).evaluate(out(4, "Hello Acme")).checks == []


def test_approved_post_validation() -> None:
    with pytest.raises(ValueError, match="text: required"):
        ApprovedPost.from_json({"brand": "Acme"}, NOON, timedelta(1))
    with pytest.raises(ValueError, match="unknown field"):
        ApprovedPost.from_json({"text": "x", "when": 1}, NOON, timedelta(1))
    with pytest.raises(ValueError, match="not both"):
        ApprovedPost.from_json({"text": "x", "valid_for": "1h", "valid_until": "2026-01-01"},
                               NOON, timedelta(1))
    item = ApprovedPost.from_json({"text": "x", "valid_for": "2h"}, NOON, timedelta(1))
    assert item.valid_until == NOON + timedelta(hours=2)
    assert item.id == ApprovedPost.from_json({"text": "x"}, NOON, timedelta(1)).id


# persistence ----------------------------------------------------------------------
def test_watchlist_and_ledger_persist_in_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    runtime = OutboundRuntime()
    runtime.bind(store)
    entry = runtime.add_watch(WatchEntry.from_json({"term": "#SomeTragedy", "expires_in": "2d",
                                                    "note": "current event"}, NOON))
    runtime.add_watch(WatchEntry.from_json({"term": "old", "expires_in": "1h"},
                                           NOON - timedelta(days=1)))
    runtime.approve(ApprovedPost.from_json({"text": "Hello"}, NOON, timedelta(days=1)))
    store.close()

    store = SqliteStore(tmp_path / "s.db")
    again = OutboundRuntime()
    again.bind(store)
    assert [e.term for e in again.watchlist(NOON)] == ["#SomeTragedy"]
    assert len(again.watchlist(NOON, expired=True)) == 2
    assert again.watch[entry.id] == entry
    assert [a.text for a in again.approved_posts(NOON)] == ["Hello"]
    assert again.remove_watch(entry.id) and not again.remove_watch(entry.id)
    assert again.prune(NOON + timedelta(days=40)) == 2  # the expired entry, the old item
    assert store.approved_posts() == []
    store.close()


def test_watch_entry_validation() -> None:
    for body, message in [({}, "term: required"), ({"term": " "}, "non-empty"),
                          ({"term": "x", "weight": 11}, "weight"),
                          ({"term": "x", "expires_in": "soon"}, "expires_in"),
                          ({"term": "x", "expires_at": "tomorrow"}, "expires_at"),
                          ("x", "JSON object")]:
        with pytest.raises(ValueError, match=message):
            WatchEntry.from_json(body, NOON)
    forever = WatchEntry.from_json({"term": "x", "expires_at": None}, NOON)
    assert forever.expires_at is None and forever.active(NOON + timedelta(days=999))
    assert WatchEntry.from_json({"term": "x"}, NOON).expires_at == NOON + timedelta(days=14)


# the engine, end to end --------------------------------------------------------------
def test_engine_alert_carries_post_link_and_reasons_and_watchlist_applies(
        project: Path) -> None:
    h = Harness(project)
    at = T0 + timedelta(hours=3)
    h.engine.context.outbound.add_watch(WatchEntry.from_json({"term": "Easton", "weight": 1.0}, at))
    alerts = h.feed([post(1, at, "Thinking of everyone in Easton today", author="acme",
                          kind="outbound"),
                     post(2, at, "Thinking of everyone in Leeds today", author="acme",
                          kind="outbound"),
                     post(3, at + timedelta(seconds=2), "Send 0.1 BTC and get 0.2 BTC back!",
                          author="acme", kind="outbound")])
    assert [a.details["post"]["id"] for a in alerts] == ["1", "3"]
    first = alerts[0]
    assert first.details["link"] == "https://x.example/acme/1"
    assert first.details["checks"] == ["watchlist"]
    assert "https://x.example/acme/1" in first.summary and first.severity == "critical"
    assert first.channels == ("file",)


def test_min_severity_keeps_info_findings_quiet(tmp_path: Path) -> None:
    rules = BASE_RULES + "    params: {min_severity: info}\n"
    h = Harness(write_project(tmp_path, rules=rules))
    at = T0 + timedelta(hours=3)
    text = "Our thoughts are with everyone affected by the earthquake."
    assert [a.severity for a in h.feed([post(1, at, text, author="acme", kind="outbound")])
            ] == ["info"]
    quiet = Harness(write_project(tmp_path / "q"))
    assert quiet.feed([post(1, at, text, author="acme", kind="outbound")]) == []


# watched folder --------------------------------------------------------------------
def test_folder_reads_json_and_text_once_settled(tmp_path: Path) -> None:
    runtime = OutboundRuntime()
    folder = ApprovedFolder(runtime, FolderSpec(tmp_path, timedelta(days=1),
                                                timedelta(seconds=5)))
    (tmp_path / "a.json").write_text(json.dumps([{"text": "One", "brand": "Acme"},
                                                 {"text": "Two", "valid_for": "1h"}]))
    (tmp_path / "b.txt").write_text("Three\n")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "ignored.csv").write_text("text\nx")
    now = time.time()
    assert folder.scan(NOON, wall=now) == 0  # too fresh: may still be being written
    assert folder.scan(NOON, wall=now + 5) == 3
    assert folder.scan(NOON, wall=now + 10) == 0  # nothing changed
    texts = sorted(a.text for a in runtime.approved_posts(NOON))
    assert texts == ["One", "Three", "Two"]
    assert {a.source for a in runtime.approved.values()} == {"folder:a.json", "folder:b.txt"}
    (tmp_path / "bad.json").write_text('{"posts": [{"text": "Four"}]}')
    os.utime(tmp_path / "bad.json", (now + 1, now + 1))
    assert folder.scan(NOON, wall=now + 20) == 1


def test_folder_specs_from_the_rules(tmp_path: Path) -> None:
    rules = BASE_RULES + "    params: {ledger_folder: approved, ledger_poll: 2s}\n"
    h = Harness(write_project(tmp_path, rules=rules))
    specs = folder_specs(h.rules, tmp_path)
    assert [(s.path, s.poll) for s in specs] == [((tmp_path / "approved").resolve(),
                                                  timedelta(seconds=2))]


# the screen command --------------------------------------------------------------------
def test_screen_command_uses_brand_context_and_the_state_database(tmp_path: Path) -> None:
    rules = BASE_RULES + "    params: {hours: '08:00-20:00'}\n"
    config = write_project(tmp_path, rules=rules)
    (tmp_path / "state").mkdir()
    store = SqliteStore(tmp_path / "state" / "brand-monitor.db")
    runtime = OutboundRuntime()
    runtime.bind(store)
    runtime.add_watch(WatchEntry.from_json({"term": "Easton", "weight": 1.0,
                                            "expires_at": None}, NOON))
    store.close()
    stdin = io.StringIO(
        '{"id": 1, "text": "Hello Easton"}\n'
        '{"id": 2, "brand": "Acme", "created_at": "2026-03-02T03:00:00Z", "text": "hi"}\n'
        '{"id": 3, "brand": "Acme", "created_at": "2026-03-02T12:00:00Z", "text": "hi"}\n')
    stdout = io.StringIO()
    assert commands.screen(config, stdin, stdout) == 0
    rows = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert rows[0]["severity"] == "critical" and "Easton" in rows[0]["reasons"][0]
    assert rows[1]["severity"] == "info" and "outside 08:00-20:00" in rows[1]["reasons"][0]
    assert rows[2]["flagged"] is False
