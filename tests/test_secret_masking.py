"""Issue 12 item 3: a ``${ENV}`` secret in a channel URL never leaves the process.

For each place a secret can sit in a URL (path, query, userinfo user or password,
URL-encoded or not, the whole URL from the environment, the webhook's HMAC
``secret=``) and each channel kind (native webhook, apprise, jsonl, console), the
channel is made to fail against a hostile local receiver that echoes the request
back, and every output is searched for the secret in every encoding: ``check`` and
``notify-test`` stdout/stderr, the daemon's log lines (DEBUG), the outbox worker's
stored rows (``last_error``), the admin alert about the dead letter, and the raw
bytes of every file in the state folder.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest

from monitor import logs, secrets
from monitor.app import Daemon
from monitor.cli import main
from monitor.clock import ManualClock
from monitor.model import Alert
from tests.conftest import write_project

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers 500 and echoes what it was sent: path, query and the auth header."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"error": "boom", "path": self.path,
                           "auth": self.headers.get("Authorization", "")}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Case:
    url: str        # {port} is the echo receiver's port
    value: str      # BM_LEAK
    secret: str     # what must never show (a part of value, or value itself)
    fails: bool = True


CASES = {
    "webhook-path": Case("webhook://127.0.0.1:{port}/services/T000/${{BM_LEAK}}",
                         "XyZ1aBc2dEf3gHi4jKl5", "XyZ1aBc2dEf3gHi4jKl5"),
    "webhook-query": Case("webhook://127.0.0.1:{port}/hook?sig=${{BM_LEAK}}&v=1",
                          "p@ss/w+rd=Zq9!x~", "p@ss/w+rd=Zq9!x~"),
    "webhook-password-encoded": Case("webhook://bm:${{BM_LEAK}}@127.0.0.1:{port}/hook",
                                     "pa%40ss%2Fw0rd-91", "pa%40ss%2Fw0rd-91"),
    "webhook-user": Case("webhook://${{BM_LEAK}}@127.0.0.1:{port}/hook",
                         "usr-T0k3nAbCdEf", "usr-T0k3nAbCdEf"),
    "webhook-whole-url": Case("${{BM_LEAK}}",
                              "webhook://127.0.0.1:{port}/services/T000/Wh0leUrlS3cr3t",
                              "Wh0leUrlS3cr3t"),
    "webhook-hmac-secret": Case("webhook://127.0.0.1:{port}/hook?secret=${{BM_LEAK}}",
                                "whsec-HmAcKeY-0123456789", "whsec-HmAcKeY-0123456789"),
    "apprise-path": Case("json://127.0.0.1:{port}/services/${{BM_LEAK}}",
                         "ApPr1sePathT0ken99", "ApPr1sePathT0ken99"),
    "apprise-password-encoded": Case("json://bm:${{BM_LEAK}}@127.0.0.1:{port}/hook",
                                     "ap%40pw%2Fsecret-77", "ap%40pw%2Fsecret-77"),
    "apprise-query": Case("json://127.0.0.1:{port}/hook?:sig=${{BM_LEAK}}",
                          "ApPr1seQu3ry+V@lue", "ApPr1seQu3ry+V@lue"),
    "apprise-whole-url": Case("${{BM_LEAK}}",
                              "json://127.0.0.1:{port}/services/Wh0leAppr1seT0ken",
                              "Wh0leAppr1seT0ken"),
    "jsonl-path": Case("jsonl://${{BM_LEAK}}/alerts.jsonl", "{blocked}/S3cretD1rName",
                       "{blocked}/S3cretD1rName"),
    "console-query": Case("console://?sig=${{BM_LEAK}}", "C0ns0leS3cretXyz",
                          "C0ns0leS3cretXyz", fails=False),
}


def forms(secret: str) -> set[str]:
    """The secret as written, decoded and encoded every usual way (either hex case)."""
    out = set()
    for base in {secret, unquote(secret), unquote_plus(secret)}:
        for form in (base, quote(base, safe=""), quote(base), quote_plus(base),
                     json.dumps(base)[1:-1]):
            out.update({form, form.lower() if "%" in form else form})
            if "%" in form:  # lower-case hex digits only
                out.add("".join(part[:2].lower() + part[2:] if i else part
                                for i, part in enumerate(form.split("%"))))
    return {f for f in out if len(f) >= secrets.MIN_LENGTH}


def project(tmp_path: Path, url: str) -> Path:
    url = url.replace("{", "{{").replace("}", "}}")  # write_project formats the text
    return write_project(tmp_path, f"""\
        state_dir: state
        rules_dir: rules
        brands:
          - name: Acme
            keywords: [acme]
        channels:
          - name: file
            url: jsonl://state/alerts.jsonl
          - name: leaky
            url: "{url}"
            retry_for: 1h
            backoff: 1m
            max_backoff: 30m
          - name: admin
            url: jsonl://state/admin.jsonl
        admin_channels: [admin]
        http:
          enabled: false
        sentiment:
          packs: []
          lexicon_dir: {{lexicons}}
        """)


async def _outbox_until_dead(config: Path) -> dict[str, int]:
    daemon = Daemon(config)
    clock = ManualClock(T0)
    try:
        worker = daemon.outbox_worker(clock)
        daemon.store.add_alert(Alert(
            id="a1", dedup_key="spike|Acme", rule="spike", kind="volume_spike", brand="Acme",
            severity="warning", state="firing", title="spike: Acme", summary="Acme: spike",
            created_at=T0, channels=("leaky",)))
        for _ in range(200):
            await worker.run_once()
            pending = [datetime.fromisoformat(r["next_attempt"])
                       for r in daemon.store.outbox_items(status="pending")]
            if not pending:
                break
            clock.set(max(clock.now() + timedelta(seconds=1), min(pending)))
        return daemon.store.outbox_counts()
    finally:
        daemon.store.close()


def _state_text(state: Path) -> str:
    """Every row of every table, and the raw bytes of every file in the state folder."""
    parts = []
    db = state / "brand-monitor.db"
    with sqlite3.connect(db) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            parts.extend(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
    conn.close()
    for file in sorted(state.rglob("*")):
        if file.is_file():
            parts.append(file.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.mark.parametrize("name", list(CASES))
def test_a_secret_in_a_channel_url_is_masked_in_every_output(
        name: str, tmp_path: Path, echo_port: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    value = case.value.format(port=echo_port, blocked=blocker)
    secret = case.secret.format(port=echo_port, blocked=blocker)
    monkeypatch.setenv("BM_LEAK", value)
    config = project(tmp_path, case.url.format(port=echo_port))

    outputs: list[str] = []
    assert main(["check", "-c", str(config)]) == 0
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    code = main(["notify-test", "-c", str(config), "--channel", "leaky"])
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    assert code == (1 if case.fails else 0), captured.err
    if case.fails:
        assert "leaky: FAILED" in captured.err

    logs.setup("DEBUG")  # the daemon's log lines, all of them
    counts = asyncio.run(_outbox_until_dead(config))
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    state = _state_text(tmp_path / "state")
    outputs.append(state)
    if case.fails:
        assert counts == {"dead": 1, "sent": 1}, counts  # the dead letter, the admin alert
        admin = (tmp_path / "state" / "admin.jsonl").read_text()
        assert "not delivered to channel leaky" in admin
        assert "gave up delivering alert a1 to leaky" in captured.err
    else:
        assert counts == {"sent": 1}

    leaked = sorted({(i, f) for i, text in enumerate(outputs) for f in forms(secret)
                     if f in text})
    assert not leaked, f"{name}: the secret leaked as (output, form) {leaked}"


def test_mask_hides_each_form_and_leaves_other_text_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "_SECRETS", set())  # only this test's secrets
    monkeypatch.setattr(secrets, "_pattern", None)
    secrets.register("Mask-Me/Plz+99")
    for form in ("Mask-Me/Plz+99", "Mask-Me%2FPlz%2B99", "Mask-Me%2fPlz%2b99",
                 "Mask-Me%2FPlz+99", "Mask-Me\\/Plz+99"):
        assert secrets.mask(f"a {form} b") == "a *** b", form
    secrets.register("pw%40corp%2Fhq")  # written encoded, as a URL's userinfo needs it
    assert secrets.mask("login pw@corp/hq failed") == "login *** failed"
    secrets.register("webhook://hooks.example/services/T0/Tail-S3cret")
    assert secrets.mask("POST http://hooks.example/services/T0/Tail-S3cret: 500") == \
        "POST http://***: 500"
    assert secrets.mask("GET /services/T0/Tail-S3cret") == "GET ***"
    assert secrets.mask("nothing to hide here") == "nothing to hide here"
