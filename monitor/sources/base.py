"""The one interface every source implements, and the source registry."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from monitor.clock import Clock
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.registry import Registry
from monitor.store.api import CursorStore

Emit = Callable[[Post], Awaitable[None]]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NoOptions:
    """For source types that take no options."""


@dataclass
class SourceHealth:
    state: str = "starting"  # starting | ok | error | finished
    last_post_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error: str | None = None
    posts: int = 0
    malformed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_post_at": self.last_post_at.isoformat() if self.last_post_at else None,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "last_error": self.last_error,
            "posts": self.posts,
            "malformed": self.malformed,
        }


@dataclass(frozen=True, slots=True)
class SourceContext:
    clock: Clock
    store: CursorStore
    metrics: Metrics
    brands: tuple[BrandConfig, ...]


class Source(ABC):
    """A producer of posts. ``run`` emits posts until cancelled or exhausted."""

    Options: ClassVar[type[Any]] = NoOptions

    def __init__(self, config: SourceConfig, ctx: SourceContext) -> None:
        self.name = config.name
        self.config = config
        self.options = config.options
        self.ctx = ctx
        self.health = SourceHealth()
        # True while replaying history faster than real time: the daemon then lets
        # event time be driven by the posts alone (no bucket closing by the clock).
        self.catching_up = False

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Produce posts through ``emit`` until done or cancelled."""

    def ok(self) -> None:
        self.health.state = "ok"
        self.health.last_ok_at = self.ctx.clock.now()
        self.ctx.metrics.source_up.labels(self.name).set(1)

    def failed(self, error: str) -> None:
        self.health.state = "error"
        self.health.last_error = error
        self.ctx.metrics.source_up.labels(self.name).set(0)
        log.warning("source %s: %s", self.name, error)

    def malformed(self, error: str) -> None:
        """Count and log one malformed payload; the caller skips it."""
        self.health.malformed += 1
        self.ctx.metrics.malformed.labels(self.name).inc()
        log.warning("source %s: skipped malformed post: %s", self.name, error)


SOURCES: Registry[type[Source]] = Registry("source type")
