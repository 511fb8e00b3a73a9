"""Fault test (issue: one bad post must not blind or freeze the monitor): whatever batch
reaches /ingest of the real daemon - any timestamps (years 1 to 9999, any offset),
sizes, Unicode, follower counts - it answers 2xx or 4xx within a second and /healthz
stays green; afterwards the daemon still screens and alerts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon import DaemonProcess, free_port, wait_for
from tests.fault_helpers import write_project

pytestmark = pytest.mark.e2e
TOKEN = "hostile-ingest-token-0123456789"

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=offsets),
    st.integers(-3600, 3600).map(lambda s: datetime.now(UTC) + timedelta(seconds=s)),
    st.sampled_from([datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
                     datetime(2999, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)]))
texts = st.one_of(st.text(max_size=300),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=50).map(
                      lambda t: f"@acme {t}"),
                  st.sampled_from(["@acme \u202e\u0000\ufeff", "@acme " + "x" * 10_000,
                                   "@acme " + "💥" * 500]))
followers = st.one_of(st.none(), st.integers(0, 10**6), st.integers(2**53, 2**70),
                      st.integers(-5, -1))


@st.composite
def posts(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 10**9))
    post: dict[str, Any] = {
        "id": f"h{n}", "source": draw(st.sampled_from(["hook", "x", "webhook"])),
        "kind": draw(st.sampled_from(["mention", "mention", "outbound"])),
        "author": {"id": f"a{n % 97}", "handle": f"acme{n % 3}" if n % 5 == 0 else f"u{n}"},
        "text": draw(texts),
        "created_at": draw(moments).isoformat(),
    }
    count = draw(followers)
    if count is not None:
        post["author"]["followers"] = count
    return post


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp = tmp_path_factory.mktemp("hostile")
    port = free_port()
    config = write_project(tmp, port, None, {"file": "jsonl://state/alerts.jsonl"},
                           token="BM_HOSTILE_TOKEN")
    process = DaemonProcess(config, port, {"BM_HOSTILE_TOKEN": TOKEN}).start()
    try:
        yield process
    finally:
        if process.proc and process.proc.poll() is None:
            process.stop()


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(posts(), min_size=1, max_size=60))
def test_any_batch_is_answered_2xx_or_4xx_within_a_second(daemon: DaemonProcess,
                                                         batch: list[dict[str, Any]]) -> None:
    started = time.monotonic()
    status, body = daemon.request("POST", "/ingest", batch, TOKEN)
    elapsed = time.monotonic() - started
    assert 200 <= status < 500, body
    assert elapsed < 1.0, f"{elapsed:.2f}s for {len(batch)} post(s)"
    assert daemon.request("GET", "/healthz")[0] == 200


def test_after_the_fuzz_the_daemon_still_screens_and_alerts(daemon: DaemonProcess) -> None:
    own = {"id": "own-1", "source": "hook", "kind": "outbound",
           "author": {"id": "acme", "handle": "acme"},
           "text": "this brand is a f***ing joke lol send 1 btc to double it bit.ly/x",
           "created_at": datetime.now(UTC).isoformat()}
    status, _ = daemon.request("POST", "/ingest", [own], TOKEN)
    assert status == 202
    alerts = Path(daemon.config.parent / "state" / "alerts.jsonl")
    wait_for(lambda: alerts.exists() and '"rule":"off-message"' in alerts.read_text(), 20,
             "the off-message alert")
    assert "Traceback" not in daemon.log_text()
