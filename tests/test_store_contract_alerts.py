"""The store contract, part 2 (STYLE #8), on SQLite and a real PostgreSQL: alerts and
their state, the outbox (lanes, claims by several drainers, dead letters), lifecycle
(episodes, groups), silences, the outbound lists, web actions and dashboard reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitor.model import Silence
from monitor.store.records import Aggregate
from tests.test_store_contract import alert
from tests.timeline import T0, post


# -- alerts ---------------------------------------------------------------------------------
def test_alerts_are_idempotent_by_id_and_listed_newest_first(make_store: Any) -> None:
    store = make_store()
    assert store.add_alert(alert(1, details={"observed": 3, "terms": ["a", "b"], 5: "x"}))
    assert not store.add_alert(alert(1, title="changed"))  # same id: ignored
    store.add_alert(alert(2, brand="Globex"))
    store.add_alert(alert(3, created_at=T0 + timedelta(seconds=2)))  # same time as al2
    assert [a.id for a in store.alerts()] == ["al3", "al2", "al1"]
    assert [a.id for a in store.alerts(brand="Acme")] == ["al3", "al1"]
    assert [a.id for a in store.alerts(since=T0 + timedelta(seconds=2), limit=1)] == ["al3"]
    got = store.get_alert("al1")
    assert got is not None and got.title == "t" and got.channels == ("a", "b")
    assert got.details == {"observed": 3, "terms": ["a", "b"], "5": "x"}
    assert store.get_alert("nope") is None


def test_alert_state_round_trips(make_store: Any) -> None:
    store = make_store()
    assert store.alert_state("k") is None
    store.set_alert_state("k", "firing", T0, "al1")
    store.set_alert_state("k", "resolved", T0 + timedelta(hours=1), "")
    assert store.alert_state("k") == ("resolved", T0 + timedelta(hours=1), "")


# -- outbox ---------------------------------------------------------------------------------
def test_outbox_lifecycle(make_store: Any) -> None:
    store = make_store()
    store.add_alert(alert(1))
    store.add_alert(alert(2, ("a",)))
    due = store.due(T0)
    assert [(i.alert.id, i.channel) for i in due] == [("al1", "a"), ("al1", "b"), ("al2", "a")]
    store.mark_sent(due[0].id, T0)
    assert not store.add_alert(alert(1))  # stored again (a crash replayed): not re-queued
    assert store.outbox_status("al1", "a") == "sent"
    store.mark_failed(due[1].id, "boom", T0 + timedelta(minutes=1), failed_at=T0)
    store.mark_failed(due[2].id, "fatal", None)
    assert store.outbox_counts() == {"sent": 1, "pending": 1, "dead": 1}
    assert store.outbox_backlog() == {"pending": 1, "dead": 1}
    assert store.due(T0) == []
    [again] = store.due(T0 + timedelta(minutes=1))
    assert again.attempts == 1 and again.first_failed_at == T0
    assert store.next_due() == T0 + timedelta(minutes=1) and store.next_due("a") is None
    assert store.pending_channels() == ["b"]
    assert store.outbox_status("al1", "a") == "sent" and store.outbox_status("al1", "c") is None
    assert not store.enqueue("al1", "a", T0) and store.enqueue("al1", "c", T0)
    rows = store.outbox_items(status="dead")
    assert [(r["alert_id"], r["channel"], r["last_error"], r["brand"]) for r in rows] == [
        ("al2", "a", "fatal", "Acme")]
    assert store.outbox_item(rows[0]["id"])["status"] == "dead"
    assert store.outbox_item(10**6) is None
    assert [r["channel"] for r in store.outbox_items(channel="a")] == ["a", "a"]
    assert [(d.channel, d.status, d.attempts) for d in store.deliveries("al1")] == [
        ("a", "sent", 1), ("b", "pending", 1), ("c", "pending", 0)]
    assert store.deliveries("al1")[0].sent_at == T0


def test_dead_letters_are_retried_with_a_fresh_horizon(make_store: Any) -> None:
    store = make_store()
    store.add_alert(alert(1, ("a",)))
    store.add_alert(alert(2, ("a",)))
    first, second = store.due(T0)
    store.mark_failed(first.id, "x", None, failed_at=T0)
    store.mark_failed(second.id, "x", None, failed_at=T0)
    assert store.retry_dead([first.id, 10**6]) == [first.id]
    assert store.retry_dead(None) == [second.id]
    assert store.retry_dead(None) == []
    assert [(i.id, i.first_failed_at) for i in store.due(T0)] == [(first.id, None),
                                                                  (second.id, None)]


def test_lanes_put_the_most_severe_first_and_keep_a_keys_order(make_store: Any) -> None:
    store = make_store()
    store.add_alert(alert(1, ("a",), dedup_key="k1"))
    store.add_alert(alert(2, ("a",), dedup_key="k2", severity="critical"))
    store.add_alert(alert(3, ("a",), dedup_key="k1", severity="critical", state="resolved"))
    store.add_alert(alert(4, ("a",), dedup_key="k3", severity="info"))
    order = [i.alert.id for i in store.due_for_channel("a", T0, limit=10)]
    assert order == ["al2", "al1", "al4"]  # al3 waits behind al1 (same key)
    first = store.due_for_channel("a", T0)[0]
    store.mark_failed(first.id, "down", T0 + timedelta(minutes=2))
    assert store.channel_blocked_until("a", T0) == T0 + timedelta(minutes=2)
    assert store.channel_blocked_until("a", T0 + timedelta(minutes=3)) is None
    waiting = [i.id for i in store.due_for_channel("a", T0, limit=10)]
    store.mark_waiting(waiting, T0 + timedelta(seconds=30))
    store.mark_waiting(waiting, T0 + timedelta(minutes=9))  # started already: kept
    assert {i.first_failed_at for i in store.due_for_channel("a", T0, limit=10)} == {
        T0 + timedelta(seconds=30)}


def test_quiet_hours_defer_and_a_release_makes_deferred_items_due(make_store: Any) -> None:
    store = make_store()
    later = T0 + timedelta(hours=8)
    store.add_alert(alert(1, ("a", "b")), {"a": later})
    assert [i.channel for i in store.due(T0)] == ["b"]
    assert store.next_due("a") == later
    store.release_deferred("a", T0)
    assert [i.channel for i in store.due(T0)] == ["a", "b"]


def test_claims_give_each_item_to_one_drainer_until_the_claim_expires(
        make_store: Any) -> None:
    one, two = make_store(), make_store()  # two connections: two nodes
    for n in range(1, 4):
        one.add_alert(alert(n, ("a",), dedup_key=f"k{n}"))
    until = T0 + timedelta(minutes=1)
    got_one = one.claim_for_channel("a", T0, "node-1", until, limit=2)
    got_two = two.claim_for_channel("a", T0, "node-2", until, limit=2)
    assert [i.alert.id for i in got_one] == ["al1", "al2"]
    assert [i.alert.id for i in got_two] == ["al3"]
    assert two.claim_for_channel("a", T0, "node-2", until) == []
    one.mark_sent(got_one[0].id, T0)
    # node-1 died holding al2: its claim expires and another drainer takes it
    late = T0 + timedelta(minutes=2)
    hold = late + timedelta(minutes=1)
    assert [i.alert.id for i in two.claim_for_channel("a", late, "node-2", hold, limit=5)] == [
        "al2", "al3"]
    two.mark_failed(got_two[0].id, "down", late)  # a failure releases the claim too
    assert [i.alert.id for i in one.claim_for_channel("a", late, "node-1", hold)] == ["al3"]


# -- lifecycle ------------------------------------------------------------------------------
def test_episodes_ack_escalate_and_restart_clean(make_store: Any) -> None:
    store = make_store()
    store.start_episode("k1", "spike", "al1", T0)
    store.start_episode("k2", "spike", "al2", T0 - timedelta(hours=1))
    store.start_episode("k3", "other", "al3", T0 - timedelta(hours=2))
    assert [e.dedup_key for e in store.episodes()] == ["k3", "k2", "k1"]
    assert [e.dedup_key for e in store.episodes(["k1", "k2", "zz"])] == ["k2", "k1"]
    assert store.episodes([]) == []
    store.ack_episode("k1", "ana", "on it", T0 + timedelta(minutes=5))
    got = store.episode("k1")
    assert got is not None and (got.acked_by, got.ack_comment) == ("ana", "on it")
    assert got.acked_at == T0 + timedelta(minutes=5)
    assert [e.dedup_key for e in store.escalation_candidates("spike", T0)] == ["k2"]
    store.mark_escalated("k2", T0)
    assert store.escalation_candidates("spike", T0) == []
    assert store.episode("k2").escalated_at == T0  # type: ignore[union-attr]
    store.start_episode("k1", "spike", "al9", T0 + timedelta(hours=1))  # a new episode
    fresh = store.episode("k1")
    assert fresh is not None and fresh.alert_id == "al9" and fresh.acked_at is None
    store.end_episode("k1")
    assert store.episode("k1") is None and store.episode("nope") is None


def test_groups_open_update_and_reopen(make_store: Any) -> None:
    store = make_store()
    assert store.alert_group("Acme") is None
    store.open_group("Acme", "spike", "al1", T0)
    related = [{"rule": "neg", "alert_id": "al2", "at": "2026-03-02T00:01:00Z"}]
    store.update_group("Acme", related, T0 + timedelta(minutes=1))
    group = store.alert_group("Acme")
    assert group is not None and group.related == related
    assert group.last_update == T0 + timedelta(minutes=1) and group.started_at == T0
    store.update_group("Acme", related * 2, None)
    assert store.alert_group("Acme").last_update is None  # type: ignore[union-attr]
    store.open_group("Acme", "neg", "al5", T0 + timedelta(hours=2))
    group = store.alert_group("Acme")
    assert group is not None and (group.rule, group.related) == ("neg", [])


# -- silences -------------------------------------------------------------------------------
def test_silences_are_listed_expired_and_pruned(make_store: Any) -> None:
    store = make_store()
    a = Silence("s1", T0, T0 + timedelta(hours=2), {"brand": "Acme", "rule": "sp*"}, "ana",
                "maintenance", T0)
    b = Silence("s2", T0, T0 + timedelta(hours=1), {"kind": "outbound"}, created_at=T0
                + timedelta(seconds=1))
    store.add_silence(a)
    store.add_silence(b)
    assert store.silences(T0) == [a, b]
    assert store.silences(T0 + timedelta(minutes=90)) == [a]
    assert store.expire_silence("s1", T0 + timedelta(minutes=10))
    assert not store.expire_silence("s1", T0 + timedelta(minutes=20))  # ended already
    assert not store.expire_silence("nope", T0)
    assert [s.id for s in store.silences(T0 + timedelta(minutes=30))] == ["s2"]
    assert [s.ends_at for s in store.silences(None)] == [T0 + timedelta(minutes=10),
                                                        T0 + timedelta(hours=1)]
    assert store.prune_silences(T0 + timedelta(minutes=30)) == 1
    assert [s.id for s in store.silences(None)] == ["s2"]


# -- outbound lists ----------------------------------------------------------------------------
def test_outbound_watchlist_and_ledger(make_store: Any) -> None:
    store = make_store()
    store.add_outbound_watch("w1", {"id": "w1", "term": "recall"}, T0)
    store.add_outbound_watch("w2", {"id": "w2", "term": "crash", "é": "ü"}, None)
    store.add_outbound_watch("w1", {"id": "w1", "term": "recall!"}, None)  # replaced: last
    assert store.outbound_watch_entries() == [{"id": "w2", "term": "crash", "é": "ü"},
                                              {"id": "w1", "term": "recall!"}]
    assert store.delete_outbound_watch("w2") and not store.delete_outbound_watch("w2")
    store.add_approved_post("p1", "Acme", {"id": "p1"}, T0)
    store.add_approved_post("p2", None, {"id": "p2"}, T0 + timedelta(days=2))
    assert store.approved_posts() == [{"id": "p1"}, {"id": "p2"}]
    assert store.prune_approved_posts(T0 + timedelta(days=1)) == 1
    assert store.approved_posts() == [{"id": "p2"}]


# -- web actions and dashboard reads --------------------------------------------------------------
def test_web_actions_are_kept_per_alert(make_store: Any) -> None:
    store = make_store()
    store.record_action(T0 + timedelta(minutes=2), "ana", "ack", "al1", {"comment": "ok"})
    store.record_action(T0, "bo", "dismiss", "al1", {"reason": "fine", "n": 3})
    store.record_action(T0 + timedelta(minutes=1), "ana", "silence", None, {})
    assert [(a.actor, a.action, a.detail) for a in store.actions_for(["al1", "al1"])] == [
        ("bo", "dismiss", {"reason": "fine", "n": 3}), ("ana", "ack", {"comment": "ok"})]
    assert store.actions_for([]) == []
    assert [a.action for a in store.recent_actions(2)] == ["silence", "dismiss"]


def test_dashboard_alert_reads(make_store: Any) -> None:
    store = make_store()
    store.add_alert(alert(1, details={"silenced": "s1"}))
    store.add_alert(alert(2, dedup_key="k2", brand="Globex", kind="outbound", rule="out"))
    store.add_alert(alert(3, state="resolved"))
    store.add_alert(alert(4, title="Silenced: x"))
    assert store.alert_facets() == {"brand": ["Acme", "Globex"], "rule": ["out", "r"],
                                    "kind": ["outbound", "volume_spike"]}
    assert [(a.id, a.silenced) for a in store.alerts_with_key("k")] == [
        ("al1", True), ("al3", False), ("al4", False)]
    assert [a.id for a in store.firing_alerts(since=T0)] == ["al4", "al2", "al1"]
    assert [a.id for a in store.firing_alerts(since=T0, kind="outbound")] == ["al2"]
    assert [a.id for a in store.firing_alerts(since=T0, rule="r", brand="Acme",
                                              newest_first=False, limit=1)] == ["al1"]
    latest = store.latest_alert()
    assert latest is not None and latest.id == "al4"
    markers = store.alert_markers(["Acme", "Globex"], T0.timestamp(), T0.timestamp() + 60, 10)
    assert [a.id for a in markers] == ["al2", "al1"]
    assert store.alert_markers([], 0, 1e12, 10) == []


def test_dashboard_aggregate_and_post_reads(make_store: Any) -> None:
    store = make_store()
    assert store.latest_alert() is None and store.aggregate_brands() == []
    t = T0.timestamp()
    store.add_aggregates([Aggregate("Acme", T0, 5, 1, 2, 0, 4.5),
                          Aggregate("Acme", T0 + timedelta(minutes=5), 3, 2, 0, 0),
                          Aggregate("Globex", T0, 7, 0, 0, 0)])
    assert sorted(store.aggregate_rows("Acme", t, t + 300)) == [(t, 5, 1, 4.5),
                                                               (t + 300, 3, 2, None)]
    assert store.aggregate_rows("Acme", t + 1, t + 299) == []
    assert store.mentions_by_brand(t, t + 300) == {"Acme": 8, "Globex": 7}
    assert store.aggregate_brands() == ["Acme", "Globex"]
    store.add_post(post(1, T0, "@acme hello", followers=10), "Acme", 0.0, "neutral")
    store.add_post(post(2, T0 + timedelta(seconds=5), "@acme big", followers=900), "Acme",
                   0.0, "neutral")
    store.add_post(post(3, T0, "@acme out", kind="outbound", followers=10**6), "Acme",
                   0.0, "neutral")
    assert [s.post.id for s in store.top_posts("Acme", t, 5)] == ["2", "1"]
    assert [r[0] for r in store.recent_mentions("Acme", t, t + 5, 10, include_end=True)] == [
        "@acme big", "@acme hello"]
    assert [r[0] for r in store.recent_mentions("Acme", t, t + 5, 10, include_end=False)] == [
        "@acme hello"]
    assert store.recent_mentions("Acme", t, t + 5, 10, include_end=True)[0][1:] == (
        "user2", 900, "https://x.example/user2/2", t + 5)


def test_ack_history_is_appended_per_episode_and_per_alert(make_store: Any) -> None:
    from monitor.store.records import AckEntry

    store = make_store()
    started, later = T0, T0 + timedelta(hours=2)
    store.append_ack(AckEntry("k1", started, "al1", "ack", "ana", T0 + timedelta(minutes=1),
                              "on it"))
    store.append_ack(AckEntry("k1", started, "al1", "unack", "bo", T0 + timedelta(minutes=2)))
    store.append_ack(AckEntry("k1", later, "al7", "ack", "cy", later))
    store.append_ack(AckEntry("k2", started, "al2", "ack", "di", T0))
    history = store.ack_history([("k1", started), ("k2", started), ("k3", started)])
    assert [(e.action, e.by, e.comment) for e in history[("k1", started.timestamp())]] == [
        ("ack", "ana", "on it"), ("unack", "bo", "")]
    assert [e.by for e in history[("k2", started.timestamp())]] == ["di"]
    assert set(history) == {("k1", started.timestamp()), ("k2", started.timestamp())}
    by_alert = store.acks_by_alert(["al1", "al7", "nope"])
    assert [e.action for e in by_alert["al1"]] == ["ack", "unack"]
    assert [e.by for e in by_alert["al7"]] == ["cy"] and "nope" not in by_alert
    store.start_episode("k1", "r", "al1", started)
    store.ack_episode("k1", "ana", "on it", T0)
    store.unack_episode("k1")
    assert store.episode("k1").acked_at is None  # type: ignore[union-attr]


def test_alerts_by_rule_glob_brand_in_any_case_and_id_prefix(make_store: Any) -> None:
    store = make_store()
    store.add_alert(alert(1, rule="churn-risk", id="abc123"))
    store.add_alert(alert(2, rule="churn_x", brand="Globex", id="abd456"))
    store.add_alert(alert(3, rule="spike", id="zz9"))
    assert [a.id for a in store.alerts(rule="CHURN*")] == ["abd456", "abc123"]
    assert [a.id for a in store.alerts(rule="churn_?")] == ["abd456"]  # _ is literal
    assert [a.id for a in store.alerts(rule="churn%")] == []  # % is literal
    assert [a.id for a in store.alerts(brand="globex")] == ["abd456"]
    assert store.alert_ids_with_prefix("ab") == ["abc123", "abd456"]
    assert store.alert_ids_with_prefix("abc", limit=5) == ["abc123"]
    assert store.alert_ids_with_prefix("AB") == [] and store.alert_ids_with_prefix("%") == []
