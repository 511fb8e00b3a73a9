"""Bluesky source: the public Jetstream firehose, filtered client-side for the brands.

One WebSocket to Jetstream (no auth) subscribed to ``collections`` carries every new
post on the network; the source keeps the ones that name a brand (its listen terms,
with or without '@', as whole words; or a mention facet, reply or quote of a brand
account; or a brand term in a link), and emits the brand accounts' own posts
(``brand_dids``, or ``brand_handles`` resolved on the AppView) as outbound.
Deletes, updates, likes, reposts and ``account`` events are ignored; ``identity``
events feed a bounded DID->handle cache so authors show handles where known.

Resume: the highest ``time_us`` processed is saved (throttled, on disconnect and at
shutdown) in cursor ``bluesky:<name>``; a reconnect asks for ``cursor - cursor_rewind``
as Jetstream's docs advise for gapless playback, and a bounded seen-set drops the
replayed posts (across a restart the engine's own dedup does).
Not supported: Jetstream's zstd ``compress=true`` mode (it needs Jetstream's custom
dictionary); binary frames are counted as malformed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp

from monitor.config.schema import BrandConfig, SourceConfig
from monitor.model import Author, Post
from monitor.secrets import mask
from monitor.sources.backoff import Backoff
from monitor.sources.base import SOURCES, Emit, Source, SourceContext
from monitor.sources.bluesky_wire import (
    APPVIEW,
    DID_RE,
    JETSTREAM,
    LRU,
    POST,
    AppView,
    AppViewError,
    Classifier,
    Commit,
    Identity,
    SeenSet,
    WireError,
    created_time,
    parse_event,
    parse_post,
    post_uri,
    post_url,
    subscribe_url,
)
from monitor.sources.terms import own_handles

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]
_CURSOR_EVERY_EVENTS = 5000
_SEEN = 8192
_HANDLES = 20_000
_CATCH_UP = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class BlueskyOptions:
    jetstream: str = field(default=JETSTREAM, metadata={"url": True})
    appview: str = field(default=APPVIEW, metadata={"url": True})
    brand_dids: tuple[str, ...] = ()
    brand_handles: tuple[str, ...] = ()
    collections: tuple[str, ...] = (POST,)
    cursor_rewind: timedelta = timedelta(seconds=5)
    cursor_every: timedelta = timedelta(seconds=5)
    heartbeat: timedelta = timedelta(seconds=30)  # WebSocket ping interval; 0 disables
    fetch_profiles: bool = False
    profile_cache: int = field(default=10_000, metadata={"min": 1})
    profile_ttl: timedelta = timedelta(hours=6)
    profile_rate: float = field(default=5.0, metadata={"min": 0.01})  # lookups per second
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(minutes=5)

    def problems(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if not self.jetstream.startswith(("ws://", "wss://")):
            found.append(("jetstream", "must be a ws:// or wss:// URL"))
        if not self.appview.startswith(("http://", "https://")):
            found.append(("appview", "must be an http:// or https:// URL"))
        found += [(f"brand_dids[{i}]", f"not a DID: {d!r}")
                  for i, d in enumerate(self.brand_dids) if not DID_RE.match(d)]
        found += [(f"brand_handles[{i}]", "must not be empty")
                  for i, h in enumerate(self.brand_handles) if not h.strip().lstrip("@")]
        if POST not in self.collections:
            found.append(("collections", f"must include {POST} (the only one read as posts)"))
        if self.backoff_base.total_seconds() <= 0:
            found.append(("backoff_base", "must be positive"))
        return found


def cursor_key(name: str) -> str:
    return f"bluesky:{name}"


@SOURCES.register("bluesky")
class BlueskySource(Source):
    """Streams brand mentions and the brand's own posts from Bluesky's Jetstream."""

    Options = BlueskyOptions

    def __init__(self, config: SourceConfig, ctx: SourceContext, *,
                 session: aiohttp.ClientSession | None = None, sleep: Sleep = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        super().__init__(config, ctx)
        opts = config.options
        self.opts: BlueskyOptions = opts if isinstance(opts, BlueskyOptions) else BlueskyOptions()
        self._session, self._sleep, self._monotonic = session, sleep, monotonic
        self._rng = rng or random.Random()
        self.cursor: int | None = None  # highest time_us processed
        self.resolved: dict[str, str] = {}  # brand handle -> DID
        self.handles: LRU[str, str] = LRU(_HANDLES)  # DID -> handle
        self.seen = SeenSet(_SEEN)  # post URIs emitted lately: drops rewind replays
        self.connections = 0
        self.events = 0
        self._saved: int | None = None
        self._saved_at = monotonic()
        self._unsaved = 0
        self._classifier: Classifier | None = None
        self._appview: AppView | None = None

    # state ----------------------------------------------------------------------------
    def _load(self) -> dict[str, str]:
        raw = self.ctx.store.get_cursor(cursor_key(self.name))
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
            if isinstance(data, int) and not isinstance(data, bool):
                data = {"time_us": data}
            time_us = data.get("time_us")
            if time_us is not None and (isinstance(time_us, bool) or not isinstance(time_us, int)):
                raise ValueError("time_us is not an integer")
            handles = data.get("handles") or {}
            if not isinstance(handles, dict):
                raise ValueError("handles is not an object")
        except (ValueError, AttributeError) as exc:
            log.warning("bluesky source %s: ignoring unreadable cursor (%s)", self.name, exc)
            return {}
        self.cursor = self._saved = time_us
        return {str(k): str(v) for k, v in handles.items()}

    def save_cursor(self, *, force: bool = True) -> bool:
        """Persist the cursor: always when forced, else every ``cursor_every`` or N events."""
        if not force:
            self._unsaved += 1
            due = self._monotonic() - self._saved_at >= self.opts.cursor_every.total_seconds()
            if not due and self._unsaved < _CURSOR_EVERY_EVENTS:
                return False
        value = json.dumps({"time_us": self.cursor, "handles": self.resolved}, sort_keys=True)
        self.ctx.store.set_cursor(cursor_key(self.name), value)
        self._saved, self._saved_at, self._unsaved = self.cursor, self._monotonic(), 0
        return True

    def resume_cursor(self) -> int | None:
        """Where the next connection starts: the cursor minus ``cursor_rewind``."""
        if self.cursor is None:
            return None
        rewind = int(self.opts.cursor_rewind.total_seconds() * 1_000_000)
        return max(0, self.cursor - rewind)

    def _backoff(self) -> Backoff:
        return Backoff(base=self.opts.backoff_base.total_seconds(),
                       cap=max(self.opts.backoff_cap.total_seconds(),
                               self.opts.backoff_base.total_seconds()), rng=self._rng)

    def _brands(self) -> tuple[BrandConfig, ...] | None:
        if self.config.brand is None:
            return self.ctx.brands
        chosen = tuple(b for b in self.ctx.brands if b.name == self.config.brand)
        return chosen or None

    # run -----------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        brands = self._brands()
        if brands is None:
            self.failed(f"no brand {self.config.brand!r} configured")
            return
        cached = self._load()
        session = self._session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, connect=60))
        try:
            self._appview = AppView(
                session, self.opts.appview, cache=self.opts.profile_cache,
                ttl=self.opts.profile_ttl.total_seconds(), rate=self.opts.profile_rate,
                now=self._monotonic, sleep=self._sleep, backoff=self._backoff())
            owners = await self._resolve_owners(brands, cached)
            self._classifier = Classifier(brands, owners, self.config.brand)
            await self._stream(session, emit)
        finally:
            if self.cursor is not None:
                self.save_cursor()
            if self._session is None:
                await session.close()

    async def _resolve_owners(self, brands: tuple[BrandConfig, ...],
                              cached: dict[str, str]) -> dict[str, str | None]:
        """Brand DID -> brand name (None when it cannot be told with several brands)."""
        assert self._appview is not None
        single = brands[0].name if len(brands) == 1 else None
        by_handle = own_handles(brands)
        owners: dict[str, str | None] = {d: self.config.brand or single
                                         for d in self.opts.brand_dids}
        pending = list(dict.fromkeys(h.strip().lstrip("@").lower()
                                     for h in self.opts.brand_handles))
        backoff = self._backoff()
        while pending:
            still, error = [], ""
            for handle in pending:
                try:
                    did = await self._appview.resolve_handle(handle)
                except AppViewError as exc:
                    if handle not in cached:
                        still.append(handle)
                        error = str(exc)
                        continue
                    did = cached[handle]
                    log.warning("bluesky source %s: %s; using the DID saved earlier", self.name,
                                mask(str(exc)))
                self.resolved[handle] = did
                self.handles.put(did, handle)
                owners[did] = self.config.brand or by_handle.get(handle) or single
            pending = still
            if pending:
                self.failed(mask(f"cannot resolve brand handle(s) {', '.join(pending)}: {error}"))
                await self._sleep(backoff.next_delay())
        for did, owner in owners.items():
            if owner is None:
                log.warning("bluesky source %s: posts of %s cannot be tied to one brand; set "
                            "`brand:` on the source", self.name, did)
        return owners

    async def _stream(self, session: aiohttp.ClientSession, emit: Emit) -> None:
        backoff = self._backoff()
        heartbeat = self.opts.heartbeat.total_seconds() or None
        while True:
            url = subscribe_url(self.opts.jetstream, self.opts.collections, self.resume_cursor())
            before = self.events
            try:
                async with session.ws_connect(url, heartbeat=heartbeat) as ws:
                    self.connections += 1
                    log.info("bluesky source %s: connected to %s", self.name, mask(url))
                    self.ok()
                    await self._read(ws, emit)
                error = f"connection closed by Jetstream (code {ws.close_code})"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if self.cursor is not None:
                self.save_cursor()
            if self.events > before:
                backoff.reset()
            self.failed(mask(f"jetstream {url}: {error}"))
            await self._sleep(backoff.next_delay())

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, emit: Emit) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self._on_event(msg.data, emit)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.malformed("binary frame (zstd compression is not supported)")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise ConnectionError(str(ws.exception() or "WebSocket error"))

    async def _on_event(self, raw: str, emit: Emit) -> None:
        try:
            event = parse_event(raw)
        except WireError as exc:
            self.malformed(str(exc))
            return
        self.events += 1
        if isinstance(event, Identity) and event.handle:
            self.handles.put(event.did, event.handle)
        elif isinstance(event, Commit) and event.operation == "create" \
                and event.collection == POST and event.record is not None:
            try:
                await self._on_post(event, event.record, emit)
            except WireError as exc:
                self.malformed(f"{post_uri(event.did, event.rkey)}: {exc}")
        if self.cursor is None or event.time_us > self.cursor:
            self.cursor = event.time_us
        when = created_time(None, event.time_us)
        self.catching_up = self.ctx.clock.now() - when > _CATCH_UP
        if self.save_cursor(force=False):
            self.ok()  # refreshes last_ok_at while the stream flows

    async def _on_post(self, event: Commit, record: Mapping[str, Any], emit: Emit) -> None:
        assert self._classifier is not None
        parsed = parse_post(record)
        verdict = self._classifier.classify(event.did, parsed)
        if verdict is None:
            return
        uri = post_uri(event.did, event.rkey)
        if not self.seen.add(uri):
            return  # replayed after a rewind
        kind, brand = verdict
        handle, followers = self.handles.get(event.did), None
        if self.opts.fetch_profiles and self._appview is not None:
            try:
                profile = await self._appview.profile(event.did)
            except (AppViewError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("bluesky source %s: profile lookup failed: %s", self.name,
                            mask(f"{type(exc).__name__}: {exc}"))
                profile = None
            if profile is not None:
                followers = profile.followers
                handle = handle or profile.handle
        post = Post(id=uri, source=self.name, kind="outbound" if kind == "outbound" else "mention",
                    author=Author(id=event.did, handle=handle or event.did, followers=followers),
                    text=parsed.text, created_at=created_time(parsed.created_at, event.time_us),
                    brand=brand, url=post_url(event.did, event.rkey), lang=parsed.lang)
        await emit(post)
        self.health.posts += 1
        self.health.last_post_at = post.created_at
