"""Typed, immutable configuration (config.yaml) and rules (rules/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class BrandConfig:
    """A brand to monitor. Handles match with or without '@'; keywords match whole words."""

    name: str
    handles: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()

    def problems(self) -> list[tuple[str, str]]:
        if not self.name.strip():
            return [("name", "must not be empty")]
        if not self.handles and not self.keywords:
            return [("handles", "a brand needs at least one handle or keyword")]
        return []


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    type: str
    enabled: bool = True
    brand: str | None = None
    options: Any = None  # built into the source type's own Options dataclass by the loader


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local times (``HH:MM``, ``timezone`` an IANA name) during which non-critical
    alerts for a channel wait; ``days`` (mon..sun, empty: every day) are the days
    on which a quiet period starts. See monitor/route/schedule.py."""

    start: str
    end: str
    timezone: str = "UTC"
    days: tuple[str, ...] = ()

    def problems(self) -> list[tuple[str, str]]:
        from monitor.route.schedule import quiet_hours_problems

        return quiet_hours_problems(self)


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """A notification channel: an apprise URL, or ``console://`` / ``jsonl://PATH``."""

    name: str
    url: str = field(metadata={"url": True})
    max_attempts: int = field(default=10, metadata={"min": 1})
    backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=30)
    fallback: str | None = None
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: str = "brand-monitor.db"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"min": 0, "max": 65535})
    ingest_token: str | None = field(default=None, metadata={"secret": True})
    api_token: str | None = field(default=None, metadata={"secret": True})
    max_body_bytes: int = field(default=1_048_576, metadata={"min": 1024})
    max_batch: int = field(default=1000, metadata={"min": 1})


@dataclass(frozen=True, slots=True)
class SentimentConfig:
    packs: tuple[str, ...] = ("customer-service",)
    lexicon_dir: str = "rules/lexicons"


@dataclass(frozen=True, slots=True)
class Config:
    brands: tuple[BrandConfig, ...]
    sources: tuple[SourceConfig, ...] = ()
    channels: tuple[ChannelConfig, ...] = ()
    admin_channels: tuple[str, ...] = ()
    state_dir: str = "state"
    rules_dir: str = "rules"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    sentiment: SentimentConfig = SentimentConfig()
    queue_size: int = field(default=10_000, metadata={"min": 10})

    def brand(self, name: str) -> BrandConfig | None:
        return next((b for b in self.brands if b.name == name), None)

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)


@dataclass(frozen=True, slots=True)
class Rule:
    """Maps a detector's signals for some brands to a severity and channels."""

    name: str
    signal: str
    channels: tuple[str, ...]
    severity: Severity = "warning"
    brands: tuple[str, ...] = ()  # empty: every brand
    cooldown: timedelta = timedelta(minutes=30)
    repeat_interval: timedelta = timedelta(0)  # 0: no reminders while still firing
    notify_resolved: bool = True
    escalate_after: timedelta = timedelta(0)  # 0: never escalate
    escalate_to: tuple[str, ...] = ()
    group_window: timedelta = timedelta(0)  # 0: not grouped with other rules
    enabled: bool = True
    description: str = ""
    params: Any = None  # built into the detector's own Params dataclass by the loader
    file: str = ""

    def applies_to(self, brand: str) -> bool:
        return not self.brands or brand in self.brands


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()

    def by_name(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def for_signal(self, signal: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.signal == signal and r.enabled)
