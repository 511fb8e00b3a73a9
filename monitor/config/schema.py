"""Typed, immutable configuration (config.yaml) and rules (rules/*.yaml)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
MIN_SECRET = 16  # characters of an api/ingest token or HMAC secret


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
class RotationOverride:
    """``member`` is on duty from ``start`` to ``end`` (ISO-8601 times; without an
    offset they are local times in the rotation's time zone) instead of the rota."""

    member: str
    start: str
    end: str


@dataclass(frozen=True, slots=True)
class Rotation:
    """An on-call rotation: the channel is virtual and each alert routed to it goes
    to the member channel on duty at the alert's time.

    ``members`` (names of other, non-rotation channels) take turns in list order,
    one shift each. A shift is ``every`` long (default 7d) and changes at
    ``handoff`` local time in ``timezone`` (an IANA name): ``"mon 09:00"`` (a day
    and a time) or ``"09:00"``. ``start_date`` (``YYYY-MM-DD``, default
    2024-01-01) fixes the turn order: ``members[0]`` takes the shift that begins
    at the first handoff on or after that date, ``members[1]`` the next, and so on
    (also backwards in time). Shifts follow wall-clock time, so the handoff stays
    at 09:00 local across daylight-saving changes. ``overrides`` (swaps, holidays)
    win over the rota while they last; when several cover the same time, the last
    one listed wins. Example::

        - name: on-call
          rotation:
            timezone: Europe/London
            handoff: "mon 09:00"
            every: 7d
            members: [alice-sms, bob-sms]
            overrides:
              - {member: bob-sms, start: "2024-12-24T00:00", end: "2024-12-27T00:00"}

    A rotation channel has no ``url``, ``fallback`` or ``quiet_hours``: set those
    on the member channels (their quiet hours apply to what they receive).
    """

    members: tuple[str, ...]
    handoff: str = "mon 09:00"
    every: timedelta = timedelta(days=7)
    timezone: str = "UTC"
    start_date: str = "2024-01-01"
    overrides: tuple[RotationOverride, ...] = ()

    def problems(self) -> list[tuple[str, str]]:
        from monitor.route.schedule import rotation_problems

        return rotation_problems(self)


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """A notification channel: an apprise URL, or ``console://`` / ``jsonl://PATH``
    / ``webhook[s]://``; or, with ``rotation`` instead of ``url``, an on-call rotation
    over other channels (see :class:`Rotation`).

    A failed delivery is retried with backoff (``backoff`` doubling up to
    ``max_backoff``) for ``retry_for`` from its first failure; then the alert goes
    to ``fallback``, or, without one, it is kept as a dead letter and the admin
    channels are told (see monitor/notify/outbox.py). ``max_attempts`` is
    deprecated and ignored (a count of attempts gave up within minutes)."""

    name: str
    url: str = field(default="", metadata={"url": True})
    retry_for: timedelta = timedelta(hours=24)
    max_attempts: int | None = field(default=None, metadata={"min": 1})  # deprecated
    backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=30)
    fallback: str | None = None
    quiet_hours: QuietHours | None = None
    rotation: Rotation | None = None
    #: how alerts read on this channel: a built-in template (text, html, markdown,
    #: short) or a file; default: the one for its URL scheme (monitor.notify.templates)
    template: str | None = field(default=None, metadata={"public": True})

    def problems(self) -> list[tuple[str, str]]:
        if self.retry_for <= timedelta(0):
            return [("retry_for", "must be longer than 0 (e.g. 24h)")]
        if self.rotation is None:
            return [] if self.url.strip() else [("url", "required key is missing (or give "
                                                         "'rotation' for an on-call rota)")]
        found = [(key, "not allowed on a rotation channel: set it on the member channels")
                 for key, value in (("url", self.url), ("fallback", self.fallback),
                                    ("quiet_hours", self.quiet_hours),
                                    ("template", self.template)) if value]
        return found


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """``retention``: raw posts older than this are pruned (hourly); per-brand 5-minute
    aggregates, alerts and detector baselines are kept. ``alert_retention``: alerts
    (and their delivery records) older than this are pruned."""

    path: str = field(default="brand-monitor.db", metadata={"public": True})
    retention: timedelta = timedelta(days=30)
    alert_retention: timedelta = timedelta(days=365)
    #: ``sqlite`` (the embedded default: ``path`` under ``state_dir``) or ``postgres``
    #: (``dsn``, a libpq connection string given as ``${ENV_VAR}``; needs the
    #: ``cluster`` extra)
    backend: Literal["sqlite", "postgres"] = field(default="sqlite",
                                                   metadata={"public": True})
    dsn: str | None = field(default=None, metadata={"secret": True})

    def problems(self) -> list[tuple[str, str]]:
        if self.backend == "postgres" and not self.dsn:
            return [("dsn", "storage.backend postgres needs storage.dsn (as ${ENV_VAR}, "
                            "e.g. postgresql://user:password@host/db)")]
        if self.retention < timedelta(days=8):
            return [("retention", "must be at least 8d: detectors re-read a week of posts "
                                  "and the open windows after a restart")]
        if self.alert_retention < timedelta(days=1):
            return [("alert_retention", "must be at least 1d")]
        return []


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The HTTP API (see monitor/http/server.py).

    ``ingest_token`` enables ``POST /ingest`` with ``Authorization: Bearer``;
    ``ingest_hmac_secret`` (at least 16 characters) enables it for senders that
    sign the raw body instead (``X-BrandMonitor-Timestamp`` +
    ``X-BrandMonitor-Signature: sha256=...``, or GitHub's ``X-Hub-Signature-256``).
    ``api_token`` protects the alerts, silences, outbox, watchlist and ledger
    API (reads and writes) and the dashboard (``/ui``); ``read_token`` gives
    read access only (API reads, a read-only dashboard). Tokens and secrets are
    secrets: write them as ``${ENV_VAR}``, never literally, with at least 16
    random characters.

    The server refuses to start on a ``host`` other than a loopback address
    (127.0.0.0/8, ::1, localhost) without ``api_token``, since the API would be
    readable from the network; ``allow_no_api_token: true`` says that is wanted
    (e.g. an authenticating reverse proxy is the only way in).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"min": 0, "max": 65535})
    ingest_token: str | None = field(default=None, metadata={"secret": True})
    ingest_hmac_secret: str | None = field(default=None, metadata={"secret": True})
    api_token: str | None = field(default=None, metadata={"secret": True})
    read_token: str | None = field(default=None, metadata={"secret": True})
    allow_no_api_token: bool = False
    max_body_bytes: int = field(default=1_048_576, metadata={"min": 1024})
    max_batch: int = field(default=1000, metadata={"min": 1})
    #: a connection with no request in progress for this long is closed (slow or
    #: never-finished headers, idle keep-alive)
    idle_timeout: timedelta = timedelta(seconds=15)
    #: a request body must arrive within this (else 408)
    body_timeout: timedelta = timedelta(seconds=30)
    max_connections: int = field(default=512, metadata={"min": 1})
    #: /ingest waits this long for the detectors' verdicts on a batch (posts they cannot
    #: place) when the engine was idle; past it, or when other posts were queued ahead,
    #: it answers once the batch is journaled (``"queued": n``: stored, the detectors
    #: follow)
    verdict_wait: timedelta = timedelta(milliseconds=50)

    def problems(self) -> list[tuple[str, str]]:
        found = [(key, f"too short ({len(value)} characters): use at least {MIN_SECRET} random "
                       "characters, e.g. from 'openssl rand -hex 16'")
                 for key, value in (("ingest_token", self.ingest_token),
                                    ("api_token", self.api_token),
                                    ("read_token", self.read_token),
                                    ("ingest_hmac_secret", self.ingest_hmac_secret))
                 if value is not None and len(value) < MIN_SECRET]
        if self.read_token is not None and self.read_token == self.api_token:
            found.append(("read_token", "must differ from api_token (it gives read access "
                                        "only)"))
        if (self.enabled and self.api_token is None and self.read_token is None
                and not self.allow_no_api_token
                and not is_loopback(self.host)):
            found.append(("host", f"{self.host!r} is reachable from the network, but "
                                  "api_token is not set: alerts, silences and the outbound "
                                  "watchlist and ledger would be readable by anyone. Set "
                                  "http.api_token: ${BRAND_MONITOR_API_TOKEN}, or set "
                                  "http.allow_no_api_token: true if a proxy authenticates"))
        return found


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (anything else may be reachable)."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SentimentConfig:
    packs: tuple[str, ...] = ("customer-service",)
    lexicon_dir: str = field(default="rules/lexicons", metadata={"public": True})


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Several processes on one PostgreSQL store (``storage.backend: postgres``);
    docs/scaling.md. Without ``nats_url``: high availability, one active daemon (the
    holder of the ``active`` lease) and standbys that take over within ``lease_ttl``.
    With it: roles (``run --role ingest|worker|notify|all``) and the stream of posts
    partitioned by brand into ``partitions``."""

    #: this process's name in leases and logs (default: the host name)
    node: str | None = field(default=None, metadata={"public": True})
    #: a lease not renewed for this long is free (a killed holder is replaced then)
    lease_ttl: timedelta = timedelta(seconds=5)
    #: an outbox item a drainer claimed and did not finish is free again after this
    claim_ttl: timedelta = timedelta(seconds=30)
    nats_url: str | None = field(default=None, metadata={"public": True})
    #: a NATS credentials file (user JWT and seed), as ${ENV_VAR}
    nats_credentials: str | None = field(default=None, metadata={"secret": True})
    stream: str = field(default="posts", metadata={"public": True})
    partitions: int = field(default=16, metadata={"min": 1, "max": 4096})
    #: how long the stream keeps posts (replay after a long outage of every worker)
    stream_max_age: timedelta = timedelta(days=7)

    def problems(self) -> list[tuple[str, str]]:
        if self.lease_ttl < timedelta(seconds=1):
            return [("lease_ttl", "must be at least 1s")]
        if not self.stream.isidentifier():
            return [("stream", "must be a plain name (letters, digits, _)")]
        return []


@dataclass(frozen=True, slots=True)
class Config:
    brands: tuple[BrandConfig, ...]
    sources: tuple[SourceConfig, ...] = ()
    channels: tuple[ChannelConfig, ...] = ()
    admin_channels: tuple[str, ...] = ()
    state_dir: str = field(default="state", metadata={"public": True})
    rules_dir: str = field(default="rules", metadata={"public": True})
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    sentiment: SentimentConfig = SentimentConfig()
    queue_size: int = field(default=10_000, metadata={"min": 10})
    #: posts dated more than this after the clock are refused at /ingest (400), clamped
    #: or dropped by sources, and never reach a detector
    max_future: timedelta = timedelta(minutes=5)
    #: detector state is saved every ``checkpoint_every`` or ``checkpoint_posts`` posts
    #: (whichever first); a restart replays the posts stored since (see monitor.engine)
    checkpoint_every: timedelta = timedelta(seconds=10)
    checkpoint_posts: int = field(default=20_000, metadata={"min": 1})
    #: worker processes that enrich posts (brands, sentiment, intent) ahead of the
    #: engine; -1: one when the machine has two or more cores, 0: in the daemon itself
    enrich_workers: int = field(default=-1, metadata={"min": -1, "max": 8})
    #: several processes on PostgreSQL (None: one process, the default)
    cluster: ClusterConfig | None = None

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
    #: per_post | digest, for detectors of single posts (default: the detector's own);
    #: ``digest``: its parameters, built into DigestParams by the loader (detect.digest)
    mode: str | None = None
    digest: Any = None
    file: str = ""

    def applies_to(self, brand: str) -> bool:
        return not self.brands or brand in self.brands


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    _by_name: dict[str, Rule] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        index: dict[str, Rule] = {}
        for rule in self.rules:
            index.setdefault(rule.name, rule)  # the first of a name, as a scan would
        object.__setattr__(self, "_by_name", index)

    def by_name(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    def for_signal(self, signal: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.signal == signal and r.enabled)
