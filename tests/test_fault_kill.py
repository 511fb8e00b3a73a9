"""Fault test (issue 7): SIGKILL the real daemon at random moments of a replay, restart,
and check at the receivers that every expected alert arrived exactly once.

The expected alerts come from an uninterrupted reference run of the same replay
file. Delivery is at-least-once: a kill after a notifier's send went out but before
the outbox's "sent" mark was committed sends that alert again, with the same alert
id in its body, so a receiver can drop the copy. The tests allow a webhook or email
copy only for an alert that was pending in the outbox at a kill, and measure the
window itself (the receiver already had the alert while the outbox still said
pending); the jsonl channel must not repeat even then (it skips an alert id already
in its file's tail).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.daemon import DaemonProcess, free_port
from tests.fault_helpers import (
    HookReceiver,
    Inbox,
    accept_any_login,
    outbox_rows,
    post_count,
    read_jsonl_ids,
    run_to_end,
    spawn,
    timeline,
    write_jsonl,
    write_project,
)

pytestmark = pytest.mark.e2e

SCENARIOS = 2
KILLS_PER_SCENARIO = 10


@dataclass
class Reference:
    replay: Path
    posts: int
    ids: list[str]          # in creation order
    rules: dict[str, str]   # id -> rule


@dataclass
class KillStats:
    kills: int = 0
    mid_replay: int = 0      # the kill landed before every post was stored
    mid_delivery: int = 0    # ... or with alerts still pending in the outbox
    in_flight: Counter[str] = field(default_factory=Counter)  # received, still pending
    pending: Counter[str] = field(default_factory=Counter)  # pending at a kill (any phase)
    jsonl_saved: int = 0     # a jsonl line written but not marked sent: the tail check skips it


def _kill_cycles(daemon: DaemonProcess, rng: random.Random, kills: int, total_posts: int,
                 receivers: dict[str, Callable[[], list[str]]], stats: KillStats,
                 jsonl: Path | None) -> None:
    """Start, SIGKILL at a random point of the remaining work; record where it landed.

    While posts are left, the kill comes once a random number (1-600) of further posts
    is stored, plus a random 0-40 ms (a batch of 200 takes ~40 ms here), so it lands
    anywhere in the replay: reading, scoring, detecting, committing, delivering. Once
    the replay is done it comes 0.3-1.5 s after the process started: during start-up,
    recovery, the re-read of the file, delivery or idling.
    """
    db = daemon.config.parent / "state" / "brand-monitor.db"
    for _ in range(kills):
        stored = post_count(db)
        spawn(daemon)
        assert daemon.proc is not None
        if stored < total_posts:
            target = stored + rng.randint(1, min(600, total_posts - stored))
            deadline = time.monotonic() + 30
            while post_count(db) < target and time.monotonic() < deadline:
                assert daemon.proc.poll() is None, daemon.log_text()
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.04))
        else:
            time.sleep(rng.uniform(0.3, 1.5))
        daemon.kill()
        time.sleep(0.05)  # let a request already in a receiver's socket be counted
        stats.kills += 1
        pending = {(a, c) for a, c, s in outbox_rows(db) if s == "pending"}
        done = post_count(db) == total_posts
        stats.mid_replay += not done
        stats.mid_delivery += bool(pending) and done
        for channel, ids in receivers.items():
            stats.pending.update(a for a, c in pending if c == channel)
            for alert_id in set(ids()):
                if (alert_id, channel) in pending:
                    stats.in_flight[alert_id] += 1
        if jsonl is not None:
            stats.jsonl_saved += sum((a, "file") in pending for a in read_jsonl_ids(jsonl))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    tmp = tmp_path_factory.mktemp("reference")
    posts = timeline(datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30))
    replay = write_jsonl(tmp / "posts.jsonl", posts)
    port = free_port()
    config = write_project(tmp, port, replay, {"file": "jsonl://state/alerts.jsonl"})
    run_to_end(DaemonProcess(config, port))
    import json

    lines = [json.loads(x) for x in (tmp / "state" / "alerts.jsonl").read_text().splitlines()]
    yield Reference(replay, len(posts), [a["id"] for a in lines],
                    {a["id"]: f"{a['rule']}/{a['brand']}/{a['state']}" for a in lines})


def test_reference_run_raises_each_known_incident_once(reference: Reference) -> None:
    assert sorted(reference.rules.values()) == [
        "off-message/Acme/firing", "spike/Acme/firing", "spike/Acme/resolved",
        "spike/Globex/firing", "spike/Globex/resolved", "vip/Acme/firing"]


def test_sigkill_20_times_during_replay_every_alert_exactly_once(
        reference: Reference, tmp_path: Path) -> None:
    expected = reference.ids
    stats = KillStats()
    delivered_file = delivered_hook = in_flight_total = 0
    hook_dups: Counter[str] = Counter()
    for scenario in range(SCENARIOS):
        tmp = tmp_path / f"s{scenario}"
        tmp.mkdir()
        hook = HookReceiver().start()
        try:
            port = free_port()
            config = write_project(tmp, port, reference.replay, {
                "file": "jsonl://state/alerts.jsonl",
                "hook": f"json://127.0.0.1:{hook.port}/hook"})
            daemon = DaemonProcess(config, port)
            jsonl = tmp / "state" / "alerts.jsonl"
            try:
                _kill_cycles(daemon, random.Random(1000 + scenario), KILLS_PER_SCENARIO,
                             reference.posts, {"hook": hook.ids}, stats, jsonl)
                run_to_end(daemon)
            finally:
                if daemon.proc and daemon.proc.poll() is None:
                    daemon.kill()
            got_file, got_hook = read_jsonl_ids(jsonl), hook.ids()
        finally:
            hook.stop()
        # the jsonl channel: exactly once, in creation order
        assert got_file == expected, f"scenario {scenario}: jsonl {got_file} != {expected}"
        # the webhook: each alert once; a second copy only for a kill in its send/mark
        # window (seen as: the receiver had it while the outbox still said pending)
        counts = Counter(got_hook)
        assert set(counts) == set(expected), f"scenario {scenario}: missing or unexpected"
        for alert_id in expected:
            assert counts[alert_id] - 1 <= stats.pending[alert_id], (
                f"scenario {scenario}: {reference.rules[alert_id]} arrived "
                f"{counts[alert_id]} times, pending at {stats.pending[alert_id]} kill(s)")
        in_flight_total += sum(stats.in_flight.values())
        assert list(dict.fromkeys(got_hook)) == expected, "webhook order differs"
        hook_dups.update({k: n - 1 for k, n in counts.items() if n > 1})
        delivered_file += len(got_file)
        delivered_hook += len(got_hook)
        stats.in_flight.clear()
        stats.pending.clear()
    assert stats.kills == SCENARIOS * KILLS_PER_SCENARIO >= 20
    # most kills must land while there was work to interrupt, or the test proves little
    assert stats.mid_replay + stats.mid_delivery >= stats.kills // 2, stats
    print(f"\nfault-kill: {SCENARIOS} runs, {stats.kills} SIGKILLs "
          f"({stats.mid_replay} mid-replay, {stats.mid_delivery} mid-delivery), "
          f"expected {len(expected) * SCENARIOS} alerts per channel; delivered jsonl "
          f"{delivered_file} (duplicates 0, {stats.jsonl_saved} re-sends skipped by the tail "
          f"check), webhook {delivered_hook} (duplicates {sum(hook_dups.values())}; kills in "
          f"the send/mark window: {in_flight_total})")


def test_sigkill_during_replay_email_via_real_smtp_exactly_once(
        reference: Reference, tmp_path: Path) -> None:
    """The same with apprise's email to a real SMTP server (login required, no TLS)."""
    inbox = Inbox()
    smtp_port, port = free_port(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port,
                      authenticator=accept_any_login, auth_require_tls=False)
    smtp.start()
    # email for the critical alert only: apprise spaces emails 5.5 s apart per process
    config = write_project(tmp_path, port, reference.replay, {
        "file": "jsonl://state/alerts.jsonl",
        "email": (f"mailto://bm:${{BM_SMTP_PASS}}@127.0.0.1:{smtp_port}?from=bm@example.com"
                  "&to=pr@example.com&mode=insecure")}, spike_channels=["file"], email_rules=False)
    daemon = DaemonProcess(config, port, {"BM_SMTP_PASS": "any-password"})
    stats = KillStats()
    try:
        _kill_cycles(daemon, random.Random(77), 1, reference.posts, {"email": inbox.ids},
                     stats, None)
        run_to_end(daemon)
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        smtp.stop()
    wanted = [i for i in reference.ids if reference.rules[i].startswith("off-message/")]
    assert read_jsonl_ids(tmp_path / "state" / "alerts.jsonl") == reference.ids
    counts = Counter(inbox.ids())
    assert set(counts) == set(wanted)
    for alert_id in wanted:
        assert counts[alert_id] - 1 <= stats.pending[alert_id]
    assert all("off-message" in str(m["Subject"]) for m in inbox.messages)
