"""SQLite store: dedup across restarts, atomic transactions, outbox, cursors, errors."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.model import Alert
from monitor.store.sqlite import SqliteStore
from tests.timeline import T0, post


def _alert(n: int, channels: tuple[str, ...] = ("a", "b")) -> Alert:
    return Alert(id=f"al{n}", dedup_key="k", rule="r", kind="volume_spike", brand="Acme",
                 severity="warning", state="firing", title="t", summary="s",
                 created_at=T0 + timedelta(seconds=n), channels=channels,
                 details={"observed": 3})


def test_seen_posts_survive_a_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    assert store.add_post(post(1, T0), "Acme", -0.5, "negative")
    store.close()
    store = SqliteStore(tmp_path / "s.db")
    assert not store.add_post(post(1, T0), "Acme", -0.5, "negative")
    [stored] = store.posts_between("Acme", T0, T0 + timedelta(seconds=1))
    assert stored.post == post(1, T0) and stored.label == "negative"
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_post(post(1, T0), "Acme", 0.0, "neutral")
        store.add_alert(_alert(1))
        raise RuntimeError("crash mid-way")
    assert store.post_count() == 0 and store.alerts() == [] and store.outbox_counts() == {}


def test_outbox_lifecycle(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.add_alert(_alert(1))
    store.add_alert(_alert(2, ("a",)))
    due = store.due(T0)
    assert [(i.alert.id, i.channel) for i in due] == [("al1", "a"), ("al1", "b"), ("al2", "a")]
    store.mark_sent(due[0].id, T0)
    store.mark_failed(due[1].id, "boom", T0 + timedelta(minutes=1))
    store.mark_failed(due[2].id, "fatal", None)
    assert store.outbox_counts() == {"sent": 1, "pending": 1, "dead": 1}
    assert store.due(T0) == []
    assert [i.attempts for i in store.due(T0 + timedelta(minutes=1))] == [1]
    assert store.next_due() == T0 + timedelta(minutes=1)


def test_cursors_and_detector_state_round_trip(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.set_cursor("x", "123")
    store.save_detector_state("r", "Acme", {"a": [1, 2]}, T0)
    store.close()
    store = SqliteStore(tmp_path / "s.db")
    assert store.get_cursor("x") == "123" and store.get_cursor("y") is None
    assert store.load_detector_state("r", "Acme") == {"a": [1, 2]}


def test_prune_keeps_recent_posts_and_alerts(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.add_post(post(1, T0), "Acme", 0.0, "neutral")
    store.add_post(post(2, T0 + timedelta(days=9)), "Acme", 0.0, "neutral")
    store.add_alert(_alert(1))
    store.prune(T0 + timedelta(days=10), timedelta(days=8))
    assert store.post_count() == 1 and len(store.alerts()) == 1


def test_locked_database_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store._db.execute("PRAGMA busy_timeout=100")
    try:
        with pytest.raises(StoreError, match="locked"), store.transaction():
            store.add_post(post(1, T0), "Acme", 0.0, "neutral")
    finally:
        other.execute("ROLLBACK")
    assert store.add_post(post(1, T0), "Acme", 0.0, "neutral")  # usable again


def test_unusable_path_is_a_clear_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="cannot open state database"):
        SqliteStore(tmp_path / "dir.db")


def test_retention_keeps_aggregates_pending_deliveries_and_recent_alerts(
        tmp_path: Path) -> None:
    """Raw posts past storage.retention and alerts past alert_retention go, in bounded
    steps; aggregates (charts, history) and anything still to deliver stay."""
    from monitor.store.sqlite import PRUNE_CHUNK, Aggregate

    store = SqliteStore(tmp_path / "s.db")
    now = T0 + timedelta(days=400)
    old = [(post(i, T0 + timedelta(seconds=i)), "Acme", 0.0, "neutral")
           for i in range(PRUNE_CHUNK + 10)]
    store.add_posts(old, T0)
    store.add_posts([(post(99_999, now), "Acme", 0.0, "neutral")], now)
    store.add_aggregates([Aggregate("Acme", T0, 5, 1, 2, 0, 4.0)])
    store.add_alert(_alert(1))  # year-old alerts: one delivered, one still pending
    for item in store.due(T0):
        store.mark_sent(item.id, T0)
    store.add_alert(_alert(2, ("a",)))
    store.add_alert(replace(_alert(3, ("a",)), created_at=now))
    steps = store.prune_steps(now, timedelta(days=30), timedelta(days=365))
    assert steps[0]() is True  # more than one chunk of posts: asks to be called again
    store.prune(now, timedelta(days=30), timedelta(days=365))
    assert store.post_count() == 1
    assert [a.id for a in store.alerts()] == ["al3", "al2"]  # al1 delivered and old: gone
    assert store.outbox_counts() == {"pending": 2}
    assert store.aggregates("Acme", T0 - timedelta(days=1))[0].posts == 5
