"""Digests of per-post signals (intent): one running alert per brand and rule, updated
while it grows, resolved when it ends, and the same after a crash (issue 15)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.model import Alert, Post
from tests.conftest import BASE_CONFIG, write_project
from tests.timeline import T0, Harness, post, steady

DIGEST_RULES = """\
rules:
  - name: churn
    signal: intent
    channels: [file]
    cooldown: 0s
    params: {tags: [churn_risk]}
    digest: {window: 30m, min_posts: 3, update_every: 10m, update_growth: 1.5}
  - name: buyers
    signal: intent
    mode: per_post
    channels: [file]
    cooldown: 0s
    params: {tags: [purchase_intent]}
"""
LEAVING = ("@acme cancelling my account, switching to Rival Air",
           "done with @acme, never flying with you again",
           "acme app down again. I'm switching to Rival Air")


def leaving(first: int, start, count: int, every: timedelta, *, authors: int | None = None,
            reach=lambda i: 100 + i) -> list[Post]:
    return [post(first + i, start + every * i, LEAVING[i % 3],
                 author=f"leaver{first + (i % authors if authors else i)}", followers=reach(i))
            for i in range(count)]


def digest(alerts: list[Alert], rule: str = "churn") -> list[Alert]:
    return [a for a in alerts if a.rule == rule]


def test_per_post_intent_becomes_one_digest_per_brand_and_window(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=DIGEST_RULES))
    start = T0 + timedelta(hours=2)
    # two lone posts an hour apart: never three within 30 minutes, no alert
    assert digest(h.feed(leaving(0, start, 2, timedelta(minutes=40)))) == []
    storm = start + timedelta(hours=2)
    posts = leaving(100, storm, 12, timedelta(minutes=1), reach=lambda i: [50, 90_000, 300][i % 3])
    posts.append(post(999, storm + timedelta(seconds=30), "where can I buy acme vouchers?"))
    fired = h.feed(sorted(posts, key=lambda p: p.created_at))
    churn = digest(fired)
    assert len(churn) == 1, [a.title for a in churn]
    alert = churn[0]
    assert alert.state == "firing" and alert.title == "[WARNING] churn: Acme"
    assert alert.created_at == storm + timedelta(minutes=2)  # the third post opened it
    assert alert.headline == "3 customers said they are leaving Acme in the last 2 min"
    assert alert.to_json()["headline"] == alert.headline
    d = alert.details
    assert d["digest"]["posts"] == 3 and d["distinct_authors"] == 3
    top = d["top_posts"]
    assert [p["followers"] for p in top] == [90_000, 300, 50]  # by reach
    assert all(p["url"].startswith("https://x.example/") for p in top)
    assert d["why"][0].startswith("\u201c") and d["why_title"] == "What they said"
    assert d["sentiment_mix"]["negative"] + d["sentiment_mix"]["neutral"] + \
        d["sentiment_mix"]["positive"] == 3
    # per_post stays available: the purchase question is its own alert
    assert [a.details["post"]["id"] for a in digest(fired, "buyers")] == ["999"]


def test_digest_updates_on_growth_at_most_every_interval_and_resolves(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=DIGEST_RULES))
    storm = T0 + timedelta(hours=3)
    fired = digest(h.feed(leaving(0, storm, 40, timedelta(seconds=30))))  # 20 minutes
    assert [a.title.split(":")[0] for a in fired] == ["[WARNING] churn", "Updated"]
    opened, first = fired
    assert first.created_at - opened.created_at == timedelta(minutes=10)
    assert first.headline == ("Now 22 customers said they are leaving Acme in the last 11 min, "
                              "up from 3")
    assert first.dedup_key == opened.dedup_key  # one episode
    # the growth since (to 40 people) is held back until 10 minutes after that notice
    trickle = leaving(1000, storm + timedelta(minutes=22), 2, timedelta(minutes=5))
    [second] = digest(h.feed(trickle))
    assert second.created_at - first.created_at >= timedelta(minutes=10)
    assert second.headline == ("Now 40 customers said they are leaving Acme in the last 21 "
                               "min, up from 22")
    # a trickle: one more author every 5 minutes does not make 1.5x: no update
    trickle = leaving(2000, storm + timedelta(minutes=32), 4, timedelta(minutes=5))
    assert digest(h.feed(trickle)) == []
    # no new post for the window: all clear, with the episode's totals
    done = digest(h.advance(timedelta(minutes=45)))
    assert [a.state for a in done] == ["resolved"]
    assert done[0].title.startswith("All clear: ")
    assert done[0].headline.startswith("Quiet again: 46 customers said they are leaving Acme "
                                       "between ")
    last = trickle[-1].created_at
    assert done[0].created_at >= last + timedelta(minutes=30)
    # the next storm is a new episode with a new alert
    again = digest(h.feed(leaving(3000, last + timedelta(hours=2), 3, timedelta(minutes=1))))
    assert [a.state for a in again] == ["firing"] and again[0].id != opened.id


def test_growth_held_back_by_the_interval_is_sent_when_due_without_new_posts(
        tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=DIGEST_RULES))
    storm = T0 + timedelta(hours=3)
    fired = digest(h.feed(leaving(0, storm, 12, timedelta(seconds=20))))  # 4 minutes
    assert len(fired) == 1  # grew 4x within the interval: held back
    later = digest(h.advance(timedelta(minutes=12)))
    assert [a.title.split(":")[0] for a in later] == ["Updated"]
    assert later[0].created_at == fired[0].created_at + timedelta(minutes=10)
    assert "Now 12 customers" in later[0].headline


def test_one_author_repeating_does_not_update_and_counts_people_once(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=DIGEST_RULES))
    storm = T0 + timedelta(hours=3)
    fired = digest(h.feed(leaving(0, storm, 30, timedelta(minutes=1), authors=3)))
    assert len(fired) == 1
    assert fired[0].headline == "3 customers said they are leaving Acme in the last 2 min"
    d = h.engine.detectors[("churn", "Acme")]
    assert d.to_state()["episode"]["count"] == 30  # type: ignore[index]


def test_digest_per_brand(tmp_path: Path) -> None:
    config = BASE_CONFIG.replace(
        '    allowed_domains: ["acme.example"]',
        '    allowed_domains: ["acme.example"]\n  - name: Globex\n    handles: ["@globex"]\n'
        '    keywords: ["globex"]')
    h = Harness(write_project(tmp_path, config, DIGEST_RULES))
    start = T0 + timedelta(hours=3)
    posts = leaving(0, start, 3, timedelta(minutes=1))
    posts += [post(100 + i, start + timedelta(minutes=i, seconds=5),
                   "@globex cancelling my account today", author=f"g{i}") for i in range(3)]
    fired = digest(h.feed(sorted(posts, key=lambda p: p.created_at)))
    assert sorted(a.brand for a in fired) == ["Acme", "Globex"]
    assert fired[1].headline == "3 customers said they are leaving Globex in the last 2 min"


def test_late_post_is_counted_late_not_joined(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=DIGEST_RULES))
    start = T0 + timedelta(hours=3)
    h.feed(leaving(0, start, 3, timedelta(minutes=1)))
    h.clock.set(start + timedelta(hours=2))
    h.engine.tick()
    late = post(50, start + timedelta(minutes=5), LEAVING[0], author="slow")
    assert h.engine.process(late).accepted
    detector = h.engine.detectors[("churn", "Acme")]
    assert detector.late == 1 and detector.to_state()["episode"] is None  # type: ignore[index]


def test_digest_state_round_trips_through_json(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=DIGEST_RULES))
    start = T0 + timedelta(hours=3)
    h.feed(leaving(0, start, 5, timedelta(minutes=1)))
    h.feed(leaving(10, start + timedelta(minutes=6), 1, timedelta(minutes=1)))
    detector = h.engine.detectors[("churn", "Acme")]
    state = json.loads(json.dumps(detector.to_state()))
    from monitor.detect.base import build_detector

    clone = build_detector(detector.rule, detector.brand)
    clone.load_state(state)
    assert clone.to_state() == detector.to_state()


def test_crash_between_checkpoints_replays_digests_to_the_same_alerts(project: Path) -> None:
    """Checkpoints far apart: a crash anywhere in a churn storm, then a restart, raises
    exactly the digest alerts (opening, updates, all clear) of an uninterrupted run, and
    the detectors end in the same state."""
    from monitor.engine import CheckpointPolicy, Engine

    (project.parent / "rules" / "base.yaml").write_text(DIGEST_RULES)
    never = CheckpointPolicy(every_posts=10**9, every_seconds=1e12)
    posts = steady(T0, 6, 6)
    storm = T0 + timedelta(hours=6, minutes=1)
    posts += leaving(100_000, storm, 60, timedelta(seconds=20))
    posts += steady(storm + timedelta(minutes=21), 2, 6, first_id=500_000, seed=4)
    posts += leaving(200_000, storm + timedelta(hours=1, minutes=30), 4, timedelta(minutes=2))
    posts.sort(key=lambda p: p.created_at)

    def run(crash_at: list[int]) -> tuple[list[str], dict[str, object]]:
        h = Harness(project, db=project.parent / f"digest{len(crash_at)}-{crash_at[:1]}.db")
        h.engine = Engine(h.config, h.rules, h.store, h.clock, h.metrics, checkpoints=never)
        h.engine.on_alerts = h.alerts.extend
        h.engine.checkpoint(force=True)
        done = 0
        for cut in [*crash_at, len(posts)]:
            h.feed(posts[done:cut])
            done = cut
            if cut < len(posts):  # crash: nothing but the store survives
                clock_at = h.clock.now()
                h.store.close()
                h = Harness(project, db=h.db)
                h.engine = Engine(h.config, h.rules, h.store, h.clock, h.metrics,
                                  checkpoints=never)
                h.engine.on_alerts = h.alerts.extend
                h.clock.set(clock_at)
                h.engine.recover()
        h.advance(timedelta(hours=1))
        state = {f"{r}/{b}": d.to_state() for (r, b), d in h.engine.detectors.items()}
        stored = sorted((a.id, a.title, a.headline) for a in h.store.alerts(limit=1000)
                        if a.rule == "churn")
        h.store.close()
        return [repr(s) for s in stored], state

    reference, ref_state = run([])
    titles = [r for r in reference]
    assert sum("Updated" in t for t in titles) >= 1 and sum("All clear" in t for t in titles) == 2
    first = next(i for i, p in enumerate(posts) if p.created_at >= storm)
    for crash_at in ([first + 2], [first + 1, first + 25, first + 50],
                     [first + 59, len(posts) - 3]):
        got, state = run(crash_at)
        assert got == reference, crash_at
        assert state == ref_state, crash_at


@pytest.mark.parametrize(("rules", "expected"), [
    ("  - {name: s, signal: volume_spike, channels: [file], mode: digest}\n",
     "base.yaml:2: rules[0].mode: signal 'volume_spike' takes no mode 'digest' (remove mode: "
     "modes are for signals about single posts: influencer, intent)"),
    ("  - {name: s, signal: influencer, channels: [file], mode: digests}\n",
     "base.yaml:2: rules[0].mode: unknown mode 'digests' (known: digest, per_post)"),
    ("  - {name: s, signal: intent, channels: [file], mode: batch}\n",
     "base.yaml:2: rules[0].mode: unknown mode 'batch' (known: digest, per_post)"),
    ("  - name: s\n    signal: intent\n    channels: [file]\n    mode: per_post\n"
     "    digest: {window: 1h}\n",
     "base.yaml:6: rules[0].digest: only for mode: digest (this rule's mode is per_post)"),
    ("  - name: s\n    signal: influencer\n    channels: [file]\n    digest: {window: 1h}\n",
     "base.yaml:5: rules[0].digest: only for mode: digest (this rule's mode is per_post)"),
    ("  - name: s\n    signal: intent\n    channels: [file]\n    digest:\n      window: 10s\n",
     "base.yaml:6: rules[0].digest.window: must be at least 1m"),
    ("  - name: s\n    signal: intent\n    channels: [file]\n    digest:\n"
     "      min_posts: 0\n",
     "base.yaml:6: rules[0].digest.min_posts: must be at least 1, got 0"),
    ("  - name: s\n    signal: intent\n    channels: [file]\n    digest:\n      windw: 1h\n",
     "base.yaml:6: rules[0].digest.windw: unknown key (allowed: min_posts, top_posts, "
     "update_every, update_growth, window)"),
])
def test_mode_and_digest_are_validated_with_file_line_and_key(
        tmp_path: Path, rules: str, expected: str) -> None:
    from monitor.config.loader import load_all

    path = write_project(tmp_path, rules="rules:\n" + rules)
    with pytest.raises(ConfigError) as caught:
        load_all(path)
    assert [str(p).split("/")[-1] for p in caught.value.problems] == [expected]


def test_modes_resolve_to_the_detector_default(tmp_path: Path) -> None:
    from monitor.config.loader import load_all
    from monitor.detect.digest import DigestDetector, DigestParams

    rules = ("rules:\n  - {name: a, signal: intent, channels: [file]}\n"
             "  - {name: b, signal: influencer, channels: [file]}\n"
             "  - {name: c, signal: volume_spike, channels: [file]}\n"
             "  - {name: d, signal: influencer, channels: [file], mode: digest}\n")
    _, loaded = load_all(write_project(tmp_path, rules=rules))
    assert [(r.mode, r.digest) for r in loaded.rules] == [
        ("digest", DigestParams()), ("per_post", None), (None, None), ("digest", DigestParams())]
    h = Harness(write_project(tmp_path, rules=rules))
    kinds = {rule: type(d).__name__ for (rule, _), d in h.engine.detectors.items()}
    assert kinds == {"a": DigestDetector.__name__, "b": "InfluencerDetector",
                     "c": "VolumeSpikeDetector", "d": DigestDetector.__name__}
