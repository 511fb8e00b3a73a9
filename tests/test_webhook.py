"""The native webhook channel against a real local aiohttp server (HTTP and HTTPS)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from monitor.clock import ManualClock
from monitor.config.loader import load_config
from monitor.config.schema import ChannelConfig
from monitor.errors import ConfigError, DeliveryError
from monitor.metrics import Metrics
from monitor.notify.channels import WebhookNotifier, build_notifier
from monitor.notify.outbox import OutboxWorker
from monitor.notify.webhook import sign
from monitor.secrets import mask
from monitor.store.sqlite import SqliteStore
from tests.conftest import write_project
from tests.test_notify import T0, free_port, make_alert

SECRET = "whsec-0123456789abcdef"


@dataclass
class Delivery:
    path: str
    query: dict[str, str]
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers with ``statuses`` in turn (the last one repeats)."""

    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=lambda: [200])

    async def hook(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(request.path, dict(request.query), str(request.url),
                                        dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return web.json_response({"ok": status < 300}, status=status)

    def url(self, scheme: str = "webhook", query: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hooks/bm{query}"


async def _serve(receiver: Receiver, ssl_context: ssl.SSLContext | None = None
                 ) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/hooks/bm", receiver.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    receiver.port = int(runner.addresses[0][1])
    return runner


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    runner = await _serve(rec)
    try:
        yield rec
    finally:
        await runner.cleanup()


def webhook(url: str, tmp_path: Path, name: str = "hook") -> WebhookNotifier:
    notifier = build_notifier(ChannelConfig(name=name, url=url), tmp_path)
    assert isinstance(notifier, WebhookNotifier)
    return notifier


def verify(secret: bytes, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check, as documented in the README."""
    stamp = headers.get("X-BrandMonitor-Timestamp", "")
    sig = headers.get("X-BrandMonitor-Signature", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    mac = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(sig, "sha256=" + mac.hexdigest())


# --- what is sent ------------------------------------------------------------------------

async def test_posts_the_alert_json_with_its_id_as_idempotency_key(
        receiver: Receiver, tmp_path: Path) -> None:
    notifier = webhook(receiver.url(), tmp_path)
    alert = make_alert("a1b2c3")
    await notifier.send(alert)
    await notifier.send(alert)  # a re-send (e.g. after a crash) carries the same key
    assert len(receiver.deliveries) == 2
    first, second = receiver.deliveries
    assert first.path == "/hooks/bm"
    sent = json.loads(first.body)
    # alert.to_json() as it was, plus what people read (issue 15): nothing removed
    assert {k: v for k, v in sent.items() if k not in ("message", "text")} == \
        json.loads(json.dumps(alert.to_json()))
    assert sent["message"]["headline"] == alert.headline and sent["text"]
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "a1b2c3"
    assert "X-BrandMonitor-Signature" not in first.headers  # no secret, no signature
    await notifier.send(make_alert("other"))
    assert receiver.deliveries[2].headers["Idempotency-Key"] == "other"


async def test_signature_verifies_with_the_secret_and_not_with_another(
        receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = webhook(receiver.url(query=f"?secret={SECRET}&team=pr&x=a%20b"), tmp_path)
    assert notifier.signed
    await notifier.send(make_alert("a1"))
    got = receiver.deliveries[0]
    assert verify(SECRET.encode(), got.headers, got.body)
    assert not verify(b"whsec-wrong", got.headers, got.body)
    assert not verify(SECRET.encode(), got.headers, got.body + b" ")  # body tampered
    stale = dict(got.headers, **{"X-BrandMonitor-Timestamp": str(int(time.time()) - 600)})
    assert not verify(SECRET.encode(), stale, got.body)  # outside the 5-minute tolerance
    stamp = int(got.headers["X-BrandMonitor-Timestamp"])
    assert abs(stamp - time.time()) < 60
    assert got.headers["X-BrandMonitor-Signature"] == sign(SECRET.encode(), stamp, got.body)
    # the secret is not part of the requested URL; other parameters pass through
    assert got.query == {"team": "pr", "x": "a b"}
    assert SECRET not in got.url and "secret" not in got.url
    assert SECRET not in notifier.url and SECRET not in repr(vars(notifier).get("shown"))
    assert SECRET not in caplog.text


async def test_a_resend_is_signed_afresh_with_the_same_key(
        receiver: Receiver, tmp_path: Path) -> None:
    clock = iter([1_700_000_000.0, 1_700_003_600.0])
    notifier = WebhookNotifier.from_url("hook", receiver.url(query=f"?secret={SECRET}"))
    notifier._now = lambda: next(clock)
    await notifier.send(make_alert("a1"))
    await notifier.send(make_alert("a1"))
    first, second = receiver.deliveries
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "a1"
    assert first.headers["X-BrandMonitor-Timestamp"] == "1700000000"
    assert second.headers["X-BrandMonitor-Timestamp"] == "1700003600"
    for got in (first, second):
        stamp = int(got.headers["X-BrandMonitor-Timestamp"])
        assert got.headers["X-BrandMonitor-Signature"] == sign(SECRET.encode(), stamp, got.body)


# --- status handling ---------------------------------------------------------------------

@pytest.mark.parametrize(("status", "retryable"), [
    (503, True), (500, True), (502, True), (429, True), (408, True), (425, True),
    (404, False), (400, False), (401, False), (410, False), (301, False)])
async def test_status_decides_whether_to_retry(
        receiver: Receiver, tmp_path: Path, status: int, retryable: bool) -> None:
    receiver.statuses[:] = [status]
    notifier = webhook(receiver.url(query=f"?secret={SECRET}"), tmp_path)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable is retryable
    assert f"HTTP {status}" in str(info.value) and "'hook'" in str(info.value)
    assert SECRET not in str(info.value)
    assert len(receiver.deliveries) == 1  # a redirect is not followed


async def test_2xx_is_delivered(receiver: Receiver, tmp_path: Path) -> None:
    receiver.statuses[:] = [202]
    await webhook(receiver.url(), tmp_path).send(make_alert())
    assert len(receiver.deliveries) == 1


async def test_connection_refused_is_retryable_and_hides_the_secret(tmp_path: Path) -> None:
    port = free_port()
    notifier = webhook(f"webhook://127.0.0.1:{port}/h?secret={SECRET}", tmp_path)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable is True
    assert SECRET not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


async def test_error_body_echoing_the_secret_is_masked(tmp_path: Path) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=400, text=f"bad request to {request.url} {SECRET}")

    app = web.Application()
    app.router.add_post("/h", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = int(runner.addresses[0][1])
        notifier = webhook(f"webhook://127.0.0.1:{port}/h?secret={SECRET}", tmp_path)
        with pytest.raises(DeliveryError) as info:
            await notifier.send(make_alert())
    finally:
        await runner.cleanup()
    assert info.value.retryable is False
    assert "HTTP 400" in str(info.value) and "bad request" in str(info.value)
    assert SECRET not in str(info.value)


async def test_a_slow_receiver_times_out_as_retryable(tmp_path: Path) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_post("/h", slow)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = int(runner.addresses[0][1])
        notifier = WebhookNotifier.from_url("hook", f"webhook://127.0.0.1:{port}/h",
                                            timeout=0.2)
        with pytest.raises(DeliveryError) as info:
            await notifier.send(make_alert())
    finally:
        await runner.cleanup()
    assert info.value.retryable is True and "0.2s" in str(info.value)


# --- HTTPS -------------------------------------------------------------------------------

@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def test_webhooks_scheme_posts_over_tls(ca: trustme.CA) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    rec = Receiver()
    runner = await _serve(rec, server_ctx)
    try:
        notifier = WebhookNotifier.from_url("hook", rec.url("webhooks", f"?secret={SECRET}"),
                                            ssl=client_ctx)
        assert notifier.url.startswith("https://")
        await notifier.send(make_alert("tls1"))
        untrusted = WebhookNotifier.from_url("hook", rec.url("webhooks"))  # system CAs only
        with pytest.raises(DeliveryError) as info:
            await untrusted.send(make_alert("tls2"))
    finally:
        await runner.cleanup()
    assert [d.headers["Idempotency-Key"] for d in rec.deliveries] == ["tls1"]
    assert verify(SECRET.encode(), rec.deliveries[0].headers, rec.deliveries[0].body)
    assert info.value.retryable is True


# --- configuration -----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["webhook://", "webhook:///path", "webhook://h:99999/x",
                                 "webhook://h/x?secret=", "webhook://h/x?secret=a1b2&secret=c3"])
def test_invalid_webhook_urls_are_configuration_errors(url: str, tmp_path: Path) -> None:
    with pytest.raises(DeliveryError) as info:
        build_notifier(ChannelConfig(name="hook", url=url), tmp_path)
    assert info.value.retryable is False and "'hook'" in str(info.value)


def test_scheme_is_case_insensitive_and_path_defaults_to_root(tmp_path: Path) -> None:
    assert webhook("WEBHOOK://example.com", tmp_path).url == "http://example.com/"
    assert webhook("Webhooks://example.com:8443/a/b?x=1", tmp_path).url == \
        "https://example.com:8443/a/b?x=1"


def _config_with(tmp_path: Path, url: str) -> Path:
    config = write_project(tmp_path)
    text = config.read_text().replace("url: jsonl://state/alerts.jsonl",
                                      f"url: {url}")
    config.write_text(text)
    return config


def test_config_accepts_a_secret_from_the_environment_and_refuses_a_literal(
        tmp_path: Path) -> None:
    env = {"WEBHOOK_SECRET": "from-the-env-9f8e7d"}
    ok = _config_with(tmp_path / "ok", "webhook://127.0.0.1:9/h?secret=${WEBHOOK_SECRET}")
    config = load_config(ok, env)
    notifier = webhook(config.channels[0].url, tmp_path)
    assert notifier.signed and "from-the-env-9f8e7d" not in notifier.url
    # the value itself is masked wherever text is logged (the loader registers the URL)
    assert "from-the-env-9f8e7d" not in mask(f"sent with from-the-env-9f8e7d to {ok}")
    bad = _config_with(tmp_path / "bad", "webhook://127.0.0.1:9/h?secret=literal-secret")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env)
    assert "${ENV_VAR}" in str(info.value) and "literal-secret" not in str(info.value)


@pytest.mark.parametrize("url", [
    "webhook://${HOOK_HOST}/h?secret=literal-secret",       # another part is a reference
    "json://${HOOK_HOST}/?token=literal-secret",
    "mailtos://user:literal-secret@${HOOK_HOST}",
    "webhook://127.0.0.1:9/h?secret=${WEBHOOK_SECRET}&token=literal-secret",
])
def test_a_literal_secret_beside_an_env_reference_is_refused(tmp_path: Path, url: str) -> None:
    env = {"WEBHOOK_SECRET": "from-the-env-9f8e7d", "HOOK_HOST": "127.0.0.1:9"}
    with pytest.raises(ConfigError, match="carries a password or token"):
        load_config(_config_with(tmp_path, url), env)


@pytest.mark.parametrize("url", [
    "${WHOLE_URL}",
    "mailtos://user:${SMTP_PASSWORD}@${HOOK_HOST}?from=bm@example.com&to=pr@example.com",
    "webhook://${HOOK_HOST}/h?secret=${WEBHOOK_SECRET}&format=json",
])
def test_secrets_that_are_references_are_accepted(tmp_path: Path, url: str) -> None:
    env = {"WEBHOOK_SECRET": "s3", "HOOK_HOST": "127.0.0.1:9", "SMTP_PASSWORD": "pw",
           "WHOLE_URL": "json://127.0.0.1:9/?token=x"}
    assert load_config(_config_with(tmp_path, url), env).channels[0].url


# --- through the outbox ------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "state.db")
    yield db
    db.close()


async def test_outbox_retries_carry_the_same_idempotency_key(
        receiver: Receiver, store: SqliteStore, tmp_path: Path) -> None:
    receiver.statuses[:] = [503, 429, 200]
    url = receiver.url(query=f"?secret={SECRET}")
    chan = ChannelConfig(name="hook", url=url, backoff=timedelta(seconds=1),
                         max_backoff=timedelta(seconds=2))
    clock = ManualClock(T0)
    worker = OutboxWorker(store, {"hook": webhook(url, tmp_path)}, {"hook": chan}, clock,
                          Metrics(), random.Random(3))
    alert = make_alert("k1", channels=("hook",))
    store.add_alert(alert)
    for _ in range(3):
        await worker.run_once()
        clock.advance(timedelta(seconds=5))
    assert store.outbox_counts() == {"sent": 1}
    assert [d.headers["Idempotency-Key"] for d in receiver.deliveries] == ["k1"] * 3
    assert len({d.body for d in receiver.deliveries}) == 1
    assert all(verify(SECRET.encode(), d.headers, d.body) for d in receiver.deliveries)
    # and a "restart": a new notifier and worker re-sending the same alert use the same key
    again = webhook(url, tmp_path)
    await again.send(alert)
    assert receiver.deliveries[-1].headers["Idempotency-Key"] == "k1"
