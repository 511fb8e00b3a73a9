"""Channels against real local services: an SMTP server, an HTTP endpoint, files, stdout."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.config.schema import ChannelConfig
from monitor.errors import DeliveryError
from monitor.model import Alert
from monitor.notify.channels import (
    AppriseNotifier,
    ConsoleNotifier,
    JsonlNotifier,
    build_notifier,
    build_notifiers,
)
from monitor.notify.templates import TITLE_MAX, render

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SMTP_PASSWORD = "s3cret-pw"

DETAILS: dict[str, Any] = {
    "observed": 340, "expected": 41.25, "statistic": 7.2, "threshold": 4.0,
    "window": {"start": "2024-05-01T11:45:00+00:00", "seconds": 900.0},
    "distinct_authors": 212,
    "sentiment_mix": {"negative": 250, "neutral": 70, "positive": 20},
    "top_terms": [["refund", 88], ["outage", 61], "#acmefail"],
    "top_posts": [{"author": "bigvoice", "followers": 120000, "text": "Acme lost my bags",
                   "url": "https://social.example/p/1"}],
}


def make_alert(alert_id: str = "a1", **changes: Any) -> Alert:
    alert = Alert(id=alert_id, dedup_key="spike|Acme|", rule="spike", kind="volume_spike",
                  brand="Acme", severity="critical", state="firing",
                  title="[CRITICAL] spike: Acme",
                  summary="Acme: a mention spike: 340 mentions from 212 authors",
                  created_at=T0, channels=("email",), details=DETAILS)
    return replace(alert, **changes)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a real SMTP server ------------------------------------------------------------

@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


def start_smtp(port: int) -> tuple[Controller, Mailbox]:
    """aiosmtpd on 127.0.0.1 advertising AUTH without TLS (as a LAN relay would)."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            authenticator=box.authenticate, auth_require_tls=False)
    controller.start()
    return controller, box


def mail_url(port: int) -> str:
    # mode=insecure: plain SMTP, no STARTTLS; user+password: AUTH over the plain session
    return (f"mailto://alerts:{SMTP_PASSWORD}@127.0.0.1:{port}"
            "?from=bm@example.com&to=pr@example.com&mode=insecure")


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    port = free_port()
    controller, box = start_smtp(port)
    try:
        yield port, box
    finally:
        controller.stop()


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def test_email_is_delivered_through_a_real_smtp_server(
        smtp: tuple[int, Mailbox], tmp_path: Path) -> None:
    port, box = smtp
    notifier = build_notifier(ChannelConfig(name="email", url=mail_url(port)), tmp_path)
    assert isinstance(notifier, AppriseNotifier)
    await notifier.send(make_alert())
    assert box.logins == ["alerts"]
    assert len(box.messages) == 1
    message = box.messages[0]
    title, _ = render(make_alert())
    assert message["Subject"] == title
    assert message["From"] == "bm@example.com" and message["To"] == "pr@example.com"
    assert message["Subject"].startswith("FIRING [CRITICAL] Acme: A mention spike")
    # HTML for mail readers, and a plain-text part in the same order
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<h2>A mention spike: 340 mentions from 212 authors</h2>" in html
    assert '<a href="https://social.example/p/1">' in html
    text = text_body(message)
    assert "A mention spike: 340 mentions from 212 authors" in text
    assert "observed 340 vs expected 41.25" in text
    assert "refund" in text and "@bigvoice (120,000 followers)" in text
    assert text.index("340 mentions") < text.index("refund") < text.index("@bigvoice") \
        < text.index("observed 340")
    # the plain-text part reads as a list, one line each, commands beside their label
    text = text.replace("\r\n", "\n")
    assert "\u201crefund\u201d in 88 posts\n- \u201coutage\u201d in 61 posts" in text
    assert "Acknowledge: brand-monitor ack a1\n" in text


async def test_email_to_a_closed_port_is_retryable_and_hides_the_password(
        tmp_path: Path) -> None:
    notifier = build_notifier(ChannelConfig(name="email", url=mail_url(free_port())), tmp_path)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable is True
    assert "email" in str(info.value)
    assert SMTP_PASSWORD not in str(info.value)


# --- a real HTTP endpoint (SMS/pager gateways take JSON posts) -------------------

@pytest.fixture
async def http_sink() -> AsyncIterator[tuple[int, list[Mapping[str, Any]], list[int]]]:
    received: list[Mapping[str, Any]] = []
    statuses = [200]  # the status the next requests get (last one repeats)

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return web.json_response({"ok": status == 200}, status=status)

    app = web.Application()
    app.router.add_post("/hooks/pager", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield port, received, statuses
    finally:
        await runner.cleanup()


async def test_json_webhook_receives_title_and_body(
        http_sink: tuple[int, list[Mapping[str, Any]], list[int]], tmp_path: Path) -> None:
    port, received, _ = http_sink
    notifier = build_notifier(
        ChannelConfig(name="pager", url=f"json://127.0.0.1:{port}/hooks/pager"), tmp_path)
    alert = make_alert(state="resolved", severity="info", title="All clear: [INFO] spike: Acme")
    await notifier.send(alert)
    assert len(received) == 1
    payload = received[0]
    title, body = render(alert)
    assert payload["title"] == title and payload["message"] == body
    assert payload["title"].startswith("RESOLVED [INFO] Acme: A mention spike")
    assert payload["type"] == "success"


async def test_json_webhook_server_error_is_retryable(
        http_sink: tuple[int, list[Mapping[str, Any]], list[int]], tmp_path: Path) -> None:
    port, received, statuses = http_sink
    statuses[:] = [503]
    notifier = build_notifier(
        ChannelConfig(name="pager", url=f"json://127.0.0.1:{port}/hooks/pager"), tmp_path)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable is True
    assert len(received) == 1


# PagerDuty's Events API v2 is on the internet: apprise's endpoint table is pointed at the
# local sink (the request, headers and payload are apprise's real ones).
PD_INTEGRATION_KEY = "a" * 32
PD_API_KEY = "pd-api-key-123456"


@pytest.fixture
def pagerduty_at(monkeypatch: pytest.MonkeyPatch,
                 http_sink: tuple[int, list[Mapping[str, Any]], list[int]]) -> str:
    from apprise.plugins import pagerduty

    port = http_sink[0]
    for region in list(pagerduty.PAGERDUTY_API_LOOKUP):
        monkeypatch.setitem(pagerduty.PAGERDUTY_API_LOOKUP, region,
                            f"http://127.0.0.1:{port}/hooks/pager")
    return f"pagerduty://{PD_INTEGRATION_KEY}@{PD_API_KEY}"


async def test_pagerduty_gets_one_dedup_key_per_episode_and_all_clear_resolves(
        http_sink: tuple[int, list[Mapping[str, Any]], list[int]], pagerduty_at: str) -> None:
    _, received, _ = http_sink
    notifier = AppriseNotifier("pager", pagerduty_at)
    firing = make_alert("a1")
    await notifier.send(firing)
    await notifier.send(firing)  # a resend after a crash
    await notifier.send(make_alert("a2", state="resolved", severity="info"))
    await notifier.send(make_alert("a3", dedup_key="negative|Acme|"))
    keys = [event["dedup_key"] for event in received]
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert keys[0].startswith("brand-monitor-") and len(keys[0]) <= 255
    assert [event["event_action"] for event in received] == [
        "trigger", "trigger", "resolve", "trigger"]
    assert all(event["routing_key"] == PD_INTEGRATION_KEY for event in received)


async def test_pagerduty_key_and_action_from_the_url_win(
        http_sink: tuple[int, list[Mapping[str, Any]], list[int]], pagerduty_at: str) -> None:
    _, received, _ = http_sink
    await AppriseNotifier("p1", pagerduty_at + "?dedup=my-key").send(make_alert())
    await AppriseNotifier("p2", pagerduty_at + "?action=trigger").send(
        make_alert(state="resolved"))
    assert received[0]["dedup_key"] == "my-key"
    assert received[1]["event_action"] == "trigger"
    assert received[1]["dedup_key"].startswith("brand-monitor-")


# --- configuration errors ----------------------------------------------------------

@pytest.mark.parametrize("url", [
    "nosuchservice://user:hunter2secret@example.com/x",
    f"mailto://alerts:hunter2secret@127.0.0.1:{2525}?mode=bogus",
])
def test_url_apprise_rejects_fails_at_construction_without_leaking(url: str,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(DeliveryError) as info:
        build_notifier(ChannelConfig(name="ops-pager", url=url), tmp_path)
    assert info.value.retryable is False
    assert "ops-pager" in str(info.value)
    assert "hunter2secret" not in str(info.value)


def test_build_notifiers_picks_the_implementation_by_scheme(tmp_path: Path) -> None:
    notifiers = build_notifiers([
        ChannelConfig(name="out", url="console://"),
        ChannelConfig(name="file", url="jsonl://state/alerts.jsonl"),
        ChannelConfig(name="hook", url="json://127.0.0.1:9/x"),
    ], tmp_path)
    assert isinstance(notifiers["out"], ConsoleNotifier)
    assert isinstance(notifiers["file"], JsonlNotifier)
    assert notifiers["file"].path == tmp_path / "state" / "alerts.jsonl"
    assert isinstance(notifiers["hook"], AppriseNotifier)
    assert {name: n.name for name, n in notifiers.items()} == {"out": "out", "file": "file",
                                                              "hook": "hook"}
    with pytest.raises(DeliveryError) as info:
        build_notifier(ChannelConfig(name="file", url="jsonl://"), tmp_path)
    assert info.value.retryable is False


# --- files and console -----------------------------------------------------------

async def test_jsonl_appends_one_line_per_alert_and_creates_directories(
        tmp_path: Path) -> None:
    notifier = build_notifier(ChannelConfig(name="file", url="jsonl://deep/dir/alerts.jsonl"),
                              tmp_path)
    first, second = make_alert("a1"), make_alert("a2", state="resolved", severity="info")
    await notifier.send(first)
    await notifier.send(second)
    lines = (tmp_path / "deep" / "dir" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [first.to_json(), second.to_json()]


async def test_jsonl_write_failure_is_retryable(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    notifier = build_notifier(ChannelConfig(name="file", url="jsonl://blocker/alerts.jsonl"),
                              tmp_path)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable is True


async def test_console_writes_one_readable_block(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleNotifier("out").send(make_alert())
    out = capsys.readouterr().out
    title, body = render(make_alert())
    assert title in out and out.count(title) == 1 and out.endswith("\n")
    lines = out.splitlines()
    assert lines[1] == title  # the headline, between the rules
    assert "A mention spike" not in "\n".join(lines[3:])  # not repeated in the block
    assert body.split("\n", 2)[2] in out  # then the text template's sections


# --- templates -----------------------------------------------------------------------

def test_render_explains_a_spike() -> None:
    title, body = render(make_alert())
    assert title == "FIRING [CRITICAL] Acme: A mention spike: 340 mentions from 212 authors"
    lines = body.splitlines()
    assert lines[0] == "A mention spike: 340 mentions from 212 authors"  # headline first
    assert lines[2:6] == ["Why: most common words and hashtags:",
                          "  1. \u201crefund\u201d in 88 posts",
                          "  2. \u201coutage\u201d in 61 posts", "  3. \u201c#acmefail\u201d"]
    assert lines[6:9] == ["The post:", '  - @bigvoice (120,000 followers): "Acme lost my bags"',
                          "    https://social.example/p/1"]
    assert lines[9] == "Sentiment: 250 negative (74%), 70 neutral, 20 positive"
    assert lines[10] == ("For analysts: observed 340 vs expected 41.25 in a 15-minute window; "
                         "statistic 7.2 (alerts at 4); 212 distinct authors")
    assert lines[12:] == ["FIRING \u00b7 critical \u00b7 Acme \u00b7 rule spike \u00b7 alert a1 "
                          "\u00b7 2024-05-01 12:00 UTC",
                          "Acknowledge: brand-monitor ack a1",
                          "Silence for 2 h: brand-monitor silence add a1 --for 2h"]


def test_render_outbound_post_reasons_and_states() -> None:
    alert = make_alert(kind="outbound", rule="outbound", details={
        "post": {"author": "@acme", "text": "Use code FREE at http://bad.example",
                 "url": "https://social.example/p/9"},
        "reasons": ["link to a domain not on the allow-list: bad.example", "promo code"],
    })
    title, body = render(alert)
    assert title.startswith("FIRING [CRITICAL] Acme: A mention spike")
    assert ("Why it was flagged:\n  1. link to a domain not on the allow-list: bad.example"
            "\n  2. promo code") in body
    assert 'The post:\n  - @acme: "Use code FREE at http://bad.example"\n' \
        "    https://social.example/p/9" in body
    reminder = render(replace(alert, title="Still firing: [CRITICAL] outbound: Acme"))[0]
    assert reminder.startswith("STILL FIRING [CRITICAL]")
    update = render(replace(alert, title="Updated: [CRITICAL] outbound: Acme"))[0]
    assert update.startswith("UPDATED [CRITICAL]")
    cleared = render(replace(alert, state="resolved", severity="info", details={},
                             summary="Acme: outbound post screening is quiet"))
    assert cleared[0] == "RESOLVED [INFO] Acme: Outbound post screening is quiet"
    assert "Acknowledge" not in cleared[1]  # nothing to do about an all clear


def test_render_title_stays_sms_sized() -> None:
    title, body = render(make_alert(brand="B" * 300, rule="r" * 300, summary="s" * 20_000))
    assert len(title) <= TITLE_MAX and title.endswith("…")
    assert len(body) <= 4000


def test_render_tolerates_wrong_types_in_details(caplog: pytest.LogCaptureFixture) -> None:
    details = {"observed": 12, "expected": "n/a", "top_terms": "notalist",
               "top_posts": [None, 5, {"text": None}], "sentiment_mix": [1, 2],
               "window": None, "reasons": "x", "post": "y", "distinct_authors": True}
    with caplog.at_level(logging.ERROR):
        title, body = render(make_alert(details=details))
    assert title.startswith("FIRING [CRITICAL] Acme: A mention spike")
    assert "For analysts: observed 12" in body and "could not be shown" not in body
    assert "Why" not in body and "Sentiment" not in body
    assert not caplog.records


class ExplodingDetails(Mapping[str, Any]):
    """Details that fail on access (e.g. a broken row decoded from the database)."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        return iter(["observed"])

    def __len__(self) -> int:
        return 1


def test_render_falls_back_to_a_minimal_message_and_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    alert = make_alert(details=ExplodingDetails())
    with caplog.at_level(logging.ERROR, logger="monitor.notify.templates"):
        title, body = render(alert)
    assert title == "FIRING [CRITICAL] Acme"
    assert alert.summary in body and "details could not be shown" in body
    assert any("could not render alert a1" in r.getMessage() for r in caplog.records)


async def test_channels_still_deliver_when_rendering_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleNotifier("out").send(make_alert(details=ExplodingDetails()))
    assert "details could not be shown" in capsys.readouterr().out


async def test_jsonl_channel_writes_a_resent_alert_once(tmp_path: Path) -> None:
    """At-least-once delivery (crash between write and "sent") must not duplicate lines."""
    notifier = JsonlNotifier("file", tmp_path / "a.jsonl")
    first, second = make_alert(), replace(make_alert(), id="other-id")
    await notifier.send(first)
    await notifier.send(second)
    await notifier.send(first)
    ids = [json.loads(line)["id"] for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert ids == [first.id, "other-id"]
