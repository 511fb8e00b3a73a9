"""Timeline helpers: build posts and drive an engine in event time."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.clock import ManualClock
from monitor.config.loader import load_all
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.model import Alert, Author, Post
from monitor.store.api import Store
from monitor.store.sqlite import SqliteStore

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def post(n: int, at: datetime, text: str = "flying with @acme today", *,
         author: str | None = None, followers: int = 100, kind: str = "mention",
         source: str = "test") -> Post:
    handle = author or f"user{n}"
    return Post(id=str(n), source=source, kind=kind,  # type: ignore[arg-type]
                author=Author(id=handle, handle=handle, followers=followers),
                text=text, created_at=at, url=f"https://x.example/{handle}/{n}")


def steady(start: datetime, hours: float, per_bucket: int, *, first_id: int = 0,
           seed: int = 1, texts: Iterable[str] = ("flying with @acme today", "acme lounge is nice",
                                                  "@acme what time is boarding")) -> list[Post]:
    """Ordinary traffic: ~per_bucket mentions per 5 minutes from many authors, in whole
    5-minute steps from ``start`` (an ``hours`` that is not a multiple of 5 minutes runs
    past ``start + hours``, up to the end of its last step)."""
    rng = random.Random(seed)
    options = list(texts)
    posts = []
    n = first_id
    t = start
    end = start + timedelta(hours=hours)
    while t < end:
        for _ in range(max(0, round(rng.gauss(per_bucket, per_bucket ** 0.5)))):
            at = t + timedelta(seconds=rng.uniform(0, 299))
            posts.append(post(n, at, rng.choice(options), author=f"u{rng.randrange(5000)}"))
            n += 1
        t += timedelta(minutes=5)
    return sorted(posts, key=lambda p: p.created_at)


class Harness:
    def __init__(self, config_path: Path, db: Path | None = None,
                 store: Store | None = None) -> None:
        self.config, self.rules = load_all(config_path)
        self.db = db or Path(self.config.state_dir) / "test.db"
        self.store: Any = store if store is not None else SqliteStore(self.db)
        self.clock = ManualClock(T0 - timedelta(days=30))
        self.metrics = Metrics()
        self.engine = Engine(self.config, self.rules, self.store, self.clock, self.metrics)
        self.alerts: list[Alert] = []
        self.engine.on_alerts = self.alerts.extend

    def feed(self, posts: Iterable[Post]) -> list[Alert]:
        """Posts one at a time in event time, ticking as the clock passes minutes."""
        before = len(self.alerts)
        for p in posts:
            if p.created_at - self.clock.now() >= timedelta(minutes=1):
                self.clock.set(p.created_at)
                self.engine.tick()
            self.clock.set(p.created_at)
            self.engine.process(p)
        return self.alerts[before:]

    def advance(self, delta: timedelta, step: timedelta = timedelta(minutes=1)) -> list[Alert]:
        before = len(self.alerts)
        end = self.clock.now() + delta
        while self.clock.now() < end:
            self.clock.advance(step)
            self.engine.tick()
        return self.alerts[before:]
