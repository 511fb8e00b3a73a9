"""High availability on PostgreSQL with real processes: two daemons on one database,
one active (the ``active`` lease), one standing by. SIGKILL the active one in the
middle of a complaint storm: the standby takes over within 10 s and resumes from the
committed state (checkpoint + replay of the posts stored after it). Every incident's
alert is stored once and reaches the idempotent receiver once (it dedups by the
webhook's Idempotency-Key, as a real receiver does); the standby delivered the outbox
while it waited (claims keep two drainers off one item)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import DaemonProcess, free_port, wait_for
from tests.fault_helpers import (
    HookReceiver,
    settled,
    spawn,
    timeline,
    write_jsonl,
    write_project,
)

pytestmark = pytest.mark.e2e

EXPECTED = ["off-message/Acme/firing", "spike/Acme/firing", "spike/Acme/resolved",
            "spike/Globex/firing", "spike/Globex/resolved", "vip/Acme/firing"]


def cluster_project(tmp: Path, node: str, replay: Path, hook_port: int) -> DaemonProcess:
    port = free_port()
    # paced: the kill must land inside the storm whatever the speed of the machine (the
    # standby takes a moment to start; unpaced, a fast engine can finish first)
    config = write_project(tmp, port, replay,
                           {"hook": f"webhook://127.0.0.1:{hook_port}/webhook"},
                           replay_rate=1500.0)
    with config.open("a") as handle:
        handle.write("storage:\n  backend: postgres\n  dsn: ${BM_TEST_DSN}\n"
                     f"cluster:\n  node: {node}\n  lease_ttl: 4s\n  claim_ttl: 4s\n")
    return DaemonProcess(config, port)


def pg_rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_sigkill_the_active_daemon_mid_storm_and_the_standby_takes_over(
        pg_server: Any, tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    dsn = pg_server.new_database()
    posts = timeline(datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30),
                     days=4)
    replay = write_jsonl(tmp_path / "posts.jsonl", posts)
    storm = next(i for i, p in enumerate(posts) if "storm" in p.id)
    hook = HookReceiver().start()
    daemons = []
    try:
        for node in ("a", "b"):
            (tmp_path / node).mkdir()
            daemon = cluster_project(tmp_path / node, node, replay, hook.port)
            daemon.env["BM_TEST_DSN"] = dsn
            daemons.append(daemon)
        active, standby = daemons
        active.start()  # answers /healthz once it holds the lease and runs
        spawn(standby)
        wait_for(lambda: "standby" in standby.log_text(), 30, "the second daemon to stand by")

        import psycopg

        watch = psycopg.connect(dsn, autocommit=True)

        def stored() -> int:
            return int(watch.execute("SELECT count(*) FROM posts").fetchone()[0])  # type: ignore[index]

        target = storm + 60  # inside the first complaint storm
        deadline = time.monotonic() + 60
        while stored() < target and time.monotonic() < deadline:
            time.sleep(0.002)
        active.kill()
        killed_at, at_kill = time.monotonic(), stored()
        wait_for(standby.healthy, 20, "the standby to take over")
        takeover = time.monotonic() - killed_at
        wait_for(lambda: settled(standby), 90, "the replay to finish and the outbox to drain")
        time.sleep(0.5)
        wait_for(lambda: settled(standby), 30, "the outbox to drain")
        assert standby.stop() == 0

        alerts = pg_rows(dsn, "SELECT id, rule, brand, state FROM alerts")
        kinds = sorted(f"{r}/{b}/{s}" for _, r, b, s in alerts)
        processed = list(hook.processed.values())
        raw = Counter(d.alert_id for d in hook.raw())
        record_property("takeover_seconds", round(takeover, 2))
        record_property("posts_stored_at_kill", f"{at_kill}/{len(posts)}")
        record_property("raw_repeats", sum(n - 1 for n in raw.values()))
        print(f"\nHA: SIGKILL of the active daemon at {at_kill}/{len(posts)} posts (storm "
              f"starts at {storm}); standby active after {takeover:.2f} s; "
              f"{len(alerts)} alerts stored, {len(processed)} processed by the receiver, "
              f"{sum(n - 1 for n in raw.values())} raw repeat(s) (deduplicated)")
        assert at_kill < len(posts)  # the kill landed before the replay was done
        assert takeover < 10
        assert kinds == EXPECTED  # none lost, none doubled
        assert stored() == len(posts)
        assert sorted(processed) == sorted(a[0] for a in alerts)  # each delivered once
        assert len(set(processed)) == len(processed)
        assert "active: holding the active lease" in standby.log_text()
        watch.close()
    finally:
        for daemon in daemons:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait(30)  # reaped: no process outlives its test
        hook.stop()
