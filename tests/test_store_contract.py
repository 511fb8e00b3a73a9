"""The store contract, part 1 (STYLE #8): every test runs on SQLite and on a real
PostgreSQL (``make_store``, tests/conftest.py): posts, transactions, checkpoints,
aggregates, cursors, retention, leases and fencing, readers, migrations.
Part 2 (alerts, outbox, lifecycle, silences, outbound lists, dashboard) is in
test_store_contract_alerts.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from monitor.errors import LeaseLost, StoreError
from monitor.model import Alert
from monitor.store.records import Aggregate
from monitor.store.sqlbase import PRUNE_CHUNK
from tests.timeline import T0, post


def alert(n: int, channels: tuple[str, ...] = ("a", "b"), **kw: Any) -> Alert:
    base = Alert(id=f"al{n}", dedup_key="k", rule="r", kind="volume_spike", brand="Acme",
                 severity="warning", state="firing", title="t", summary="s",
                 created_at=T0 + timedelta(seconds=n), channels=channels,
                 details={"observed": 3})
    return replace(base, **kw)


# -- posts ---------------------------------------------------------------------------------
def test_seen_posts_survive_a_restart(make_store: Any) -> None:
    store = make_store()
    assert store.add_post(post(1, T0), "Acme", -0.5, "negative")
    store.close()
    store = make_store()
    assert not store.add_post(post(1, T0), "Acme", -0.5, "negative")
    [stored] = store.posts_between("Acme", T0, T0 + timedelta(seconds=1))
    assert stored.post == post(1, T0) and stored.label == "negative"
    assert stored.compound == -0.5 and stored.brand == "Acme" and stored.received_at == T0
    assert store.has_post("test:1") and not store.has_post("test:2")
    assert store.post_text("test", "1") == post(1, T0).text
    assert store.post_text("test", "2") is None


def test_add_posts_marks_duplicates_and_keeps_each_received_time(make_store: Any) -> None:
    store = make_store()
    store.add_post(post(1, T0), "Acme", 0.0, "neutral")
    rows = [(post(i, T0 + timedelta(seconds=i)), "Acme", 0.1 * i, "neutral")
            for i in (1, 2, 3, 2)]
    times = [T0 + timedelta(minutes=i) for i in range(4)]
    assert store.add_posts(rows, times) == [False, True, True, False]
    assert store.add_posts([], T0) == []
    after = store.posts_after(0)
    assert [s.post.id for s in after] == ["1", "2", "3"]
    assert [s.received_at for s in after[1:]] == times[1:3]
    assert after[0].seq < after[1].seq < after[2].seq == store.last_seq()
    assert [s.post.id for s in store.posts_after(after[0].seq, limit=1)] == ["2"]
    assert store.post_count() == 3


def test_the_ingest_journal_holds_posts_until_they_are_stored(make_store: Any) -> None:
    store = make_store()
    store.add_post(post(1, T0), "Acme", 0.0, "neutral")  # stored before
    big = replace(post(4, T0), text="crème brûlée ✈", url="https://x.test/4", lang="fr",
                  brand="Acme", author=replace(post(4, T0).author, followers=10**12))
    batch = [post(1, T0), post(2, T0), post(3, T0 + timedelta(seconds=1)), post(2, T0), big]
    numbers = store.journal_add(batch, T0)
    assert [n is None for n in numbers] == [True, False, False, True, False]
    assert numbers[1] < numbers[2] < numbers[4]
    assert store.journal_add([post(3, T0)], T0) == [None]  # journaled already
    store.close()
    store = make_store()  # durable
    pending = store.journal_pending()
    assert [(n, p) for n, p in pending] == [(numbers[1], batch[1]), (numbers[2], batch[2]),
                                             (numbers[4], big)]
    with store.transaction():  # taken out with the transaction that stores them
        store.add_posts([(p, "Acme", 0.0, "neutral") for _, p in pending[:2]], T0)
        store.journal_done([n for n, _ in pending[:2]])
    assert [p.id for _, p in store.journal_pending()] == ["4"]
    assert store.journal_add([post(2, T0)], T0) == [None]  # stored now
    with pytest.raises(RuntimeError), store.transaction():  # a rollback keeps them
        store.journal_done([numbers[4]])
        raise RuntimeError("rolled back")
    assert [p.id for _, p in store.journal_pending()] == ["4"]


def test_posts_between_is_time_ordered_and_bounded_by_sequence(make_store: Any) -> None:
    store = make_store()
    store.add_post(post(1, T0 + timedelta(seconds=30)), "Acme", 0.0, "neutral")
    store.add_post(post(2, T0 + timedelta(seconds=10)), "Acme", 0.0, "neutral")
    cut = store.last_seq()
    store.add_post(post(3, T0 + timedelta(seconds=20)), "Acme", 0.0, "neutral")
    store.add_post(post(4, T0 + timedelta(seconds=20)), "Other", 0.0, "neutral")
    store.add_post(post(5, T0 + timedelta(seconds=90)), "Acme", 0.0, "neutral")
    window = T0, T0 + timedelta(seconds=60)
    assert [s.post.id for s in store.posts_between("Acme", *window)] == ["2", "3", "1"]
    assert [s.post.id for s in store.posts_between("Acme", *window, max_seq=cut)] == ["2", "1"]
    # read a page at a time: ties in time are broken by sequence, across pages too
    store.add_post(post(6, T0 + timedelta(seconds=20)), "Acme", 0.0, "neutral")
    store.add_post(post(7, T0 + timedelta(seconds=20)), "Acme", 0.0, "neutral")
    for chunk in (1, 2, 3, 100):
        assert [s.post.id for s in store.posts_between("Acme", *window, chunk=chunk)] == [
            "2", "3", "6", "7", "1"]
        assert [s.post.id for s in store.posts_between("Acme", *window, max_seq=cut,
                                                       chunk=chunk)] == ["2", "1"]


def test_post_fields_round_trip_including_unicode_and_big_audiences(make_store: Any) -> None:
    store = make_store()
    odd = replace(post(7, T0, "ça coûte 💸 \"quoted\" 'single' % ? ;", followers=10**12),
                  lang="fr", client="web", brand="Acme", url=None)
    store.add_post(odd, None, 0.25, "positive")
    [stored] = store.posts_after(0)
    assert stored.post == odd and stored.brand is None


def test_last_seq_never_decreases_when_posts_are_pruned(make_store: Any) -> None:
    store = make_store()
    assert store.last_seq() == 0
    store.add_posts([(post(i, T0), "Acme", 0.0, "neutral") for i in range(5)], T0)
    top = store.last_seq()
    assert store.prune_posts(T0 + timedelta(days=1), limit=3) == 3
    assert store.prune_posts(T0 + timedelta(days=1), limit=3) == 2
    assert store.post_count() == 0 and store.last_seq() == top
    store.add_post(post(9, T0), "Acme", 0.0, "neutral")
    assert store.last_seq() > top


# -- transactions ---------------------------------------------------------------------------
def test_transaction_is_all_or_nothing_and_nests(make_store: Any) -> None:
    store = make_store()
    with pytest.raises(RuntimeError), store.transaction():
        store.add_post(post(1, T0), "Acme", 0.0, "neutral")
        with store.transaction():
            store.add_alert(alert(1))
        raise RuntimeError("crash mid-way")
    assert store.post_count() == 0 and store.alerts() == [] and store.outbox_counts() == {}
    with store.transaction():
        store.add_post(post(1, T0), "Acme", 0.0, "neutral")
        with store.transaction():
            store.add_alert(alert(1))
    assert make_store().post_count() == 1  # committed: another connection sees it


def test_a_failed_statement_rolls_the_transaction_back_and_the_store_stays_usable(
        make_store: Any) -> None:
    store = make_store()
    with pytest.raises(StoreError), store.transaction():
        store.add_post(post(1, T0), "Acme", 0.0, "neutral")
        store._run("INSERT INTO no_such_table VALUES (1)")
    assert store.post_count() == 0
    assert store.add_post(post(1, T0), "Acme", 0.0, "neutral")


# -- checkpoints, aggregates, cursors -----------------------------------------------------------
def test_detector_state_and_checkpoint_round_trip(make_store: Any) -> None:
    store = make_store()
    assert store.load_detector_state("r", "Acme") is None and store.checkpoint_seq() == 0
    store.save_detector_state("r", "Acme", {"a": [1, 2], "b": {"c": None}}, T0, seq=4)
    store.save_detector_state("r", "Acme", {"a": [3]}, T0, seq=5)
    store.save_detector_state("r", "Globex", {"g": 1.5}, T0)
    store.set_checkpoint_seq(41)
    store.set_checkpoint_seq(42)
    store.close()
    store = make_store()
    assert store.load_detector_state("r", "Acme") == {"a": [3]}
    assert store.load_detector_state("r", "Globex") == {"g": 1.5}
    assert store.checkpoint_seq() == 42


def test_aggregates_add_up_and_expected_replaces_only_when_given(make_store: Any) -> None:
    store = make_store()
    store.add_aggregates([])
    store.add_aggregates([Aggregate("Acme", T0, 5, 1, 2, 0, 4.0),
                          Aggregate("Acme", T0 + timedelta(minutes=5), 1, 0, 0, 1)])
    store.add_aggregates([Aggregate("Acme", T0, 2, 1, 0, 1, None)])
    got = store.aggregates("Acme", T0 - timedelta(hours=1))
    assert got == [Aggregate("Acme", T0, 7, 2, 2, 1, 4.0),
                   Aggregate("Acme", T0 + timedelta(minutes=5), 1, 0, 0, 1, None)]
    assert store.aggregates("Acme", T0, T0 + timedelta(minutes=5)) == got[:1]
    assert store.aggregates("Globex", T0) == []


def test_cursors_round_trip(make_store: Any) -> None:
    store = make_store()
    store.set_cursor("x", "123")
    store.set_cursor("x", '{"since": "456"}')
    store.close()
    store = make_store()
    assert store.get_cursor("x") == '{"since": "456"}' and store.get_cursor("y") is None


# -- retention ----------------------------------------------------------------------------------
def test_prune_keeps_recent_posts_and_alerts(make_store: Any) -> None:
    store = make_store()
    store.add_post(post(1, T0), "Acme", 0.0, "neutral")
    store.add_post(post(2, T0 + timedelta(days=9)), "Acme", 0.0, "neutral")
    store.add_alert(alert(1))
    store.prune(T0 + timedelta(days=10), timedelta(days=8))
    assert store.post_count() == 1 and len(store.alerts()) == 1


def test_retention_keeps_aggregates_pending_deliveries_and_recent_alerts(
        make_store: Any) -> None:
    """Raw posts past storage.retention and alerts past alert_retention go, in bounded
    steps; aggregates (charts, history) and anything still to deliver stay."""
    store = make_store()
    now = T0 + timedelta(days=400)
    old = [(post(i, T0 + timedelta(seconds=i)), "Acme", 0.0, "neutral")
           for i in range(PRUNE_CHUNK + 10)]
    store.add_posts(old, T0)
    store.add_posts([(post(99_999, now), "Acme", 0.0, "neutral")], now)
    store.add_aggregates([Aggregate("Acme", T0, 5, 1, 2, 0, 4.0)])
    store.add_alert(alert(1))  # year-old alerts: one delivered, one still pending
    for item in store.due(T0):
        store.mark_sent(item.id, T0)
    store.set_alert_state("k-old", "resolved", T0, "al1")
    store.set_alert_state("k-firing", "firing", T0, "al1")
    store.add_alert(alert(2, ("a",)))
    store.add_alert(alert(3, ("a",), created_at=now))
    steps = store.prune_steps(now, timedelta(days=30), timedelta(days=365))
    assert steps[0]() is True  # more than one chunk of posts: asks to be called again
    store.prune(now, timedelta(days=30), timedelta(days=365))
    assert store.post_count() == 1
    assert [a.id for a in store.alerts()] == ["al3", "al2"]  # al1 delivered and old: gone
    assert store.outbox_counts() == {"pending": 2}
    assert store.aggregates("Acme", T0 - timedelta(days=1))[0].posts == 5
    assert store.alert_state("k-old") is None and store.alert_state("k-firing") is not None


# -- leases and fencing ---------------------------------------------------------------------------
def test_a_lease_has_one_holder_until_it_expires_and_each_holder_a_new_epoch(
        make_store: Any) -> None:
    a, b = make_store(), make_store()
    ttl = timedelta(seconds=5)
    first = a.acquire_lease("active", "node-a", T0, ttl)
    assert first is not None and first.owner == "node-a"
    assert b.acquire_lease("active", "node-b", T0 + timedelta(seconds=4), ttl) is None
    renewed = a.acquire_lease("active", "node-a", T0 + timedelta(seconds=4), ttl)
    assert renewed is not None and renewed.epoch == first.epoch
    assert renewed.expires_at == T0 + timedelta(seconds=9)
    assert b.acquire_lease("active", "node-b", T0 + timedelta(seconds=8), ttl) is None
    taken = b.acquire_lease("active", "node-b", T0 + timedelta(seconds=10), ttl)
    assert taken is not None and taken.epoch == first.epoch + 1
    assert [x.owner for x in a.leases()] == ["node-b"]
    a.release_lease("active", "node-a")  # not the holder: nothing happens
    assert [x.owner for x in a.leases("act")] == ["node-b"] and a.leases("part/") == []
    b.release_lease("active", "node-b")
    again = a.acquire_lease("active", "node-a", T0 + timedelta(seconds=11), ttl)
    assert again is not None and again.epoch == taken.epoch + 1


def test_a_fenced_store_cannot_write_after_its_lease_was_taken_over(make_store: Any) -> None:
    a, b = make_store(), make_store()
    ttl = timedelta(seconds=5)
    lease = a.acquire_lease("active", "node-a", T0, ttl)
    a.fence(lease)
    with a.transaction():
        a.add_post(post(1, T0), "Acme", 0.0, "neutral")
    assert b.acquire_lease("active", "node-b", T0 + timedelta(seconds=6), ttl) is not None
    with pytest.raises(LeaseLost, match="no longer held"), a.transaction():
        a.add_post(post(2, T0), "Acme", 0.0, "neutral")
    assert b.post_count() == 1
    a.fence(None)
    with a.transaction():
        a.add_post(post(3, T0), "Acme", 0.0, "neutral")
    assert b.post_count() == 2


# -- readers and migrations -------------------------------------------------------------------
def test_a_reader_sees_committed_writes_and_cannot_write(make_store: Any) -> None:
    store = make_store()
    assert store.shareable
    store.add_post(post(1, T0), "Acme", 0.0, "neutral")
    reader = store.reader()
    try:
        assert reader.post_count() == 1
        store.add_post(post(2, T0), "Acme", 0.0, "neutral")
        assert reader.post_count() == 2
        with pytest.raises(StoreError):
            reader.add_post(post(3, T0), "Acme", 0.0, "neutral")
    finally:
        reader.close()


def test_opening_again_keeps_the_schema_and_the_data(make_store: Any) -> None:
    store = make_store()
    store.add_alert(alert(1))
    for _ in range(2):
        store.close()
        store = make_store()
    assert [a.id for a in store.alerts()] == ["al1"]
    version = store._one("SELECT value FROM meta WHERE key='schema_version'")
    assert version is not None and int(version[0]) >= 1
