"""Routing: dedup, cooldown, repeat interval, all clear, idempotent alert ids."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config.loader import load_all
from monitor.config.schema import RuleSet
from monitor.metrics import Metrics
from monitor.model import Signal
from monitor.route.router import Router
from monitor.store.sqlite import SqliteStore
from tests.timeline import T0


@pytest.fixture
def router(project: Path, tmp_path: Path) -> Router:
    _, rules = load_all(project)
    spike = rules.by_name("spike")
    assert spike is not None
    rules = RuleSet(tuple(dataclasses.replace(r, repeat_interval=timedelta(hours=2))
                          if r.name == "spike" else r for r in rules.rules))
    return Router(rules, SqliteStore(tmp_path / "r.db"), Metrics())


def sig(state: str, minutes: float, key: str = "") -> Signal:
    return Signal(rule="spike", kind="volume_spike", brand="Acme",
                  state=state,  # type: ignore[arg-type]
                  at=T0 + timedelta(minutes=minutes), summary="s", key=key)


def test_firing_then_duplicate_then_all_clear(router: Router) -> None:
    first = router.route(sig("firing", 0), T0)
    assert first is not None and first.state == "firing" and first.channels == ("file",)
    assert router.route(sig("firing", 1), T0 + timedelta(minutes=1)) is None  # dedup
    clear = router.route(sig("resolved", 20), T0 + timedelta(minutes=20))
    assert clear is not None and clear.title.startswith("All clear") and clear.severity == "info"
    assert router.store.get_alert(first.id) == first


def test_refire_within_cooldown_is_quiet_and_its_resolve_too(router: Router) -> None:
    assert router.route(sig("firing", 0), T0) is not None
    assert router.route(sig("resolved", 10), T0 + timedelta(minutes=10)) is not None
    assert router.route(sig("firing", 15), T0 + timedelta(minutes=15)) is None  # cooldown 30m
    assert router.route(sig("resolved", 20), T0 + timedelta(minutes=20)) is None
    assert router.route(sig("firing", 45), T0 + timedelta(minutes=45)) is not None


def test_repeat_interval_reminds_while_firing(router: Router) -> None:
    assert router.route(sig("firing", 0), T0) is not None
    assert router.route(sig("firing", 60), T0 + timedelta(minutes=60)) is None
    again = router.route(sig("firing", 121), T0 + timedelta(minutes=121))
    assert again is not None and again.title.startswith("Still firing")


def test_distinct_keys_do_not_share_cooldown(router: Router) -> None:
    assert router.route(sig("firing", 0, key="post-1"), T0) is not None
    assert router.route(sig("firing", 0, key="post-2"), T0) is not None


def test_same_signal_after_a_crash_gets_the_same_alert_id(router: Router, tmp_path: Path) -> None:
    a = router.route(sig("firing", 0), T0)
    other = Router(router.rules, SqliteStore(tmp_path / "other.db"), Metrics())
    b = other.route(sig("firing", 0), T0)
    assert a is not None and b is not None and a.id == b.id
    router.store.add_alert(a)  # stored twice: still one alert, one outbox item per channel
    assert len(router.store.alerts()) == 1
    assert router.store.outbox_counts() == {"pending": 1}


def test_unknown_or_disabled_rule_routes_nothing(router: Router) -> None:
    signal = dataclasses.replace(sig("firing", 0), rule="gone")
    assert router.route(signal, T0) is None
