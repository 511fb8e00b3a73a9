"""Mastodon source: streaming API (WebSocket) with REST fallback, plus the brand's statuses.

Feeds: ``streams`` (public, public:local, hashtag:<tag>, user) and ``hashtags`` each
get one WebSocket at ``<streaming>/api/v1/streaming?stream=..`` (token in the
Authorization header; the streaming base is discovered from /api/v2/instance unless
``streaming_url`` is set) and a REST timeline of the same content for gaps. Public
streams carry everything, so they are filtered client-side with the brands'
listen terms and @-mentions; hashtag and user streams are passed through (the
engine matches brands). The user stream also yields mention notifications. The
brand ``account`` is looked up (/api/v1/accounts/lookup) and its statuses are
polled every ``poll_interval`` and emitted as outbound (so are its statuses seen
on any stream, and edits of them, under an ``:edit:<time>`` id).

Gaps: after connecting, and again as soon as a stream drops, each timeline is read
via REST from its cursor with ``min_id`` paging (oldest first, 40 a page, so a gap of
any size is filled; ``since_id`` would return only the newest 40). The socket buffers
frames during that read; a bounded set of recent ids drops the overlap. Cursors
(last id per timeline) are stored in ``mastodon:<name>``. After ``stream_failures``
consecutive failures, or at once on HTTP 401/403/404/410 or an error frame, the feed
falls back to polling (reported in health.last_error) and tries streaming again
after ``stream_retry``. Rate limits: X-RateLimit-Remaining/-Reset and 429 pause
every request until the reset. Post ids are the status URI (``<domain>:<id>`` if it
does not fit); authors are full accts (``user@domain``). Boosts: a boost seen in a
mention feed is emitted as the boosted status under ITS id (so boosts collapse onto
the original and never count twice); a boost BY the brand is outbound (see Normaliser).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from monitor import secrets
from monitor.config.schema import SourceConfig
from monitor.model import Post
from monitor.sources.backoff import Backoff
from monitor.sources.base import SOURCES, Emit, Source, SourceContext
from monitor.sources.mastodon_rest import MAX_BODY as MAX_BODY
from monitor.sources.mastodon_rest import REST_TIMEOUT as REST_TIMEOUT
from monitor.sources.mastodon_rest import RestClient
from monitor.sources.mastodon_wire import (
    PAGE,
    ApiError,
    Cursors,
    Endpoint,
    Feed,
    MastodonOptions,
    Normaliser,
    StreamClosed,
    StreamRefused,
    WireError,
    account_feed,
    feeds_for,
    mentions_brand,
    parse_event,
    status_id,
)
from monitor.sources.terms import listen_terms, own_handles

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[object]]
REFUSED = (401, 403, 404, 410)
RECENT = 4096
CURSOR_FLUSH = 5.0  # seconds between cursor writes while streaming
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)


@dataclass
class _FeedState:
    backoff: Backoff
    rest_backoff: Backoff
    failures: int = 0


@SOURCES.register("mastodon")
class MastodonSource(Source):
    Options = MastodonOptions

    def __init__(self, config: SourceConfig, ctx: SourceContext, *,
                 session: aiohttp.ClientSession | None = None, sleep: Sleep | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__(config, ctx)
        self.opts: MastodonOptions = config.options
        self.base = self.opts.instance.rstrip("/")
        self._session = session
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        token = self.opts.access_token
        if token:
            secrets.register(token)
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._rest = RestClient(self.name, self.base, self._auth, sleep=self._sleep,
                                now=lambda: self.ctx.clock.now())
        self.modes: dict[str, str] = {}  # feed name -> streaming | polling
        self._problems: dict[str, str] = {}  # feed (or "account") -> its current error
        self._behind = 0  # feeds reading a gap of more than one page
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._cursor_key = f"mastodon:{self.name}"
        self._cursors = self._load_cursors()
        brand = next((b for b in ctx.brands if b.name == config.brand), None)
        brands = (brand,) if brand is not None else ctx.brands
        self._terms = list(dict.fromkeys(t for b in brands for t in listen_terms(b)))
        self._own_handles = own_handles(brands)
        self._handles = frozenset(self._own_handles)
        self._norm = Normaliser(config.name, urlsplit(self.base).netloc)
        self._streaming = (self.opts.streaming_url or self.base).rstrip("/")

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        session = self._session or aiohttp.ClientSession(
            headers={"User-Agent": "brand-monitor (+mastodon source)"},
            timeout=aiohttp.ClientTimeout(total=60, sock_connect=15))
        try:
            await self._discover(session)
            async with asyncio.TaskGroup() as group:
                for feed in feeds_for(self.opts):
                    group.create_task(self._run_feed(session, feed, emit))
                if self.opts.account:
                    group.create_task(self._run_account(session, emit))
        finally:
            self._save_cursors(force=True)
            if self._session is None:
                await session.close()

    async def _discover(self, session: aiohttp.ClientSession) -> None:
        """The account domain and the streaming base URL (retried while unreachable)."""
        backoff = Backoff(base=1.0, cap=300.0, rng=self._rng)
        while True:
            try:
                domain, streaming = await self._rest.instance(session)
                break
            except (ApiError, WireError) as exc:
                log.warning("mastodon %s: no instance info (%s)", self.name,
                            secrets.mask(str(exc)))
                domain, streaming = None, None
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._trouble("instance", f"unreachable: {_describe(exc)}")
                await self._sleep(backoff.next_delay())
        self._problems.pop("instance", None)
        domain = domain or urlsplit(self.base).netloc
        if not self.opts.streaming_url and streaming:
            self._streaming = streaming.rstrip("/")
        own = {self._norm.full_acct(h).lower() for h in self._own_handles if "@" in h}
        outbound_brand = self.config.brand
        if self.opts.account:
            account = Normaliser(self.name, domain).full_acct(self.opts.account).lower()
            own.add(account)
            outbound_brand = (outbound_brand or self._own_handles.get(account)
                              or self._own_handles.get(account.split("@")[0]))
        if outbound_brand is None and len(self.ctx.brands) == 1:
            outbound_brand = self.ctx.brands[0].name
        self._norm = Normaliser(self.name, domain, frozenset(own), outbound_brand)
        log.info("mastodon %s: instance %s (accounts @%s), streaming at %s", self.name,
                 secrets.mask(self.base), domain, secrets.mask(self._streaming))

    # -- feeds -----------------------------------------------------------------------
    async def _run_account(self, session: aiohttp.ClientSession, emit: Emit) -> None:
        acct = self.opts.account or ""
        backoff = Backoff(base=5.0, cap=900.0, rng=self._rng)
        while True:
            try:
                found = await self._rest.get(session, "/api/v1/accounts/lookup",
                                             (("acct", acct),))
                if (account_id := status_id(found)) is None:
                    raise WireError("account lookup: no id")
                break
            except (ApiError, WireError, aiohttp.ClientError, TimeoutError) as exc:
                self._trouble("account", f"{acct}: lookup failed: {_describe(exc)}")
                await self._sleep(backoff.next_delay())
        self._healthy("account")
        await self._run_feed(session, account_feed(account_id), emit)

    async def _run_feed(self, session: aiohttp.ClientSession, feed: Feed, emit: Emit) -> None:
        st = _FeedState(Backoff(base=1.0, cap=300.0, rng=self._rng),
                        Backoff(base=5.0, cap=900.0, rng=self._rng))
        retry_at = 0.0
        poll = self.opts.poll_interval.total_seconds()
        loop = asyncio.get_running_loop()
        while True:
            if feed.stream is not None and self.opts.use_streaming and loop.time() >= retry_at:
                reason = "stream ended"
                try:
                    await self._stream(session, feed, emit, st)
                except StreamRefused as exc:
                    st.failures = max(st.failures + 1, self.opts.stream_failures)
                    reason = str(exc)
                    self._trouble(feed.name, reason)
                except (aiohttp.ClientError, TimeoutError, StreamClosed, ApiError,
                        WireError) as exc:
                    st.failures += 1
                    reason = _describe(exc)
                log.warning("mastodon %s: stream %s down (%s)", self.name, feed.name, reason)
                await self._fill_safe(session, feed, emit)  # the gap, before reconnecting
                if st.failures >= self.opts.stream_failures:
                    st.failures = 0
                    retry_at = loop.time() + self.opts.stream_retry.total_seconds()
                    self._set_mode(feed, "polling")
                    self.health.last_error = (
                        f"{feed.name}: streaming unavailable ({reason}); polling every "
                        f"{poll:g}s, retrying the stream in "
                        f"{self.opts.stream_retry.total_seconds():g}s")
                    log.warning("mastodon %s: %s", self.name, self.health.last_error)
                    await self._sleep(poll)
                else:
                    await self._sleep(st.backoff.next_delay())
            else:
                self._set_mode(feed, "polling")
                if await self._fill_safe(session, feed, emit):
                    st.rest_backoff.reset()
                    await self._sleep(poll)
                else:
                    await self._sleep(st.rest_backoff.next_delay())

    def _trouble(self, part: str, error: str) -> None:
        """One part (a feed, the account lookup) is failing: the source is in error."""
        self._problems[part] = error
        self.failed(f"{part}: {error}")

    def _healthy(self, part: str) -> None:
        """One part works again; the source is ok once no part is failing."""
        self._problems.pop(part, None)
        if not self._problems:
            self.ok()

    def _set_mode(self, feed: Feed, mode: str) -> None:
        self.modes[feed.name] = mode

    async def _stream(self, session: aiohttp.ClientSession, feed: Feed, emit: Emit,
                      st: _FeedState) -> None:
        url = f"{self._streaming}/api/v1/streaming"
        try:
            ws = await session.ws_connect(url, params=feed.stream, headers=self._auth,
                                          heartbeat=30.0, max_msg_size=1024 * 1024,
                                          timeout=WS_TIMEOUT)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in REFUSED:
                raise StreamRefused(f"streaming refused: HTTP {exc.status}", exc.status) from None
            raise
        try:
            log.info("mastodon %s: stream %s connected", self.name, feed.name)
            await self._fill(session, feed, emit)  # frames queue up in the socket meanwhile
            self._set_mode(feed, "streaming")
            st.failures = 0
            st.backoff.reset()
            self._healthy(feed.name)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._healthy(feed.name)
                    await self._on_frame(feed, msg.data, emit)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise StreamClosed(f"stream error: {ws.exception()}")
            raise StreamClosed(f"stream closed by the server (code {ws.close_code})")
        finally:
            self._save_cursors(force=True)
            await ws.close()

    async def _on_frame(self, feed: Feed, data: str, emit: Emit) -> None:
        try:
            event, payload = parse_event(data)
        except WireError as exc:
            self.malformed(f"{feed.name}: {exc}")
            return
        endpoint = feed.endpoints[0]
        if event == "notification":
            endpoint = next((e for e in feed.endpoints if e.notifications), endpoint)
            if not endpoint.notifications or payload.get("type") != "mention":
                return
        elif event not in ("update", "status.update"):
            return  # delete, filters_changed, announcement, ...: nothing to count
        await self._accept(feed, endpoint, payload, emit, edit=event == "status.update")
        self._save_cursors()

    # -- REST ------------------------------------------------------------------------
    async def _fill_safe(self, session: aiohttp.ClientSession, feed: Feed, emit: Emit) -> bool:
        try:
            await self._fill(session, feed, emit)
        except (ApiError, WireError, aiohttp.ClientError, TimeoutError) as exc:
            self._trouble(feed.name, _describe(exc))
            return False
        self._healthy(feed.name)
        return True

    async def _fill(self, session: aiohttp.ClientSession, feed: Feed, emit: Emit) -> None:
        """Read every timeline of ``feed`` from its cursor to now, oldest first."""
        for endpoint in feed.endpoints:
            behind = False
            try:
                while True:
                    cursor = self._cursors.values.get(endpoint.key)
                    count, ordered = await self._rest.timeline_page(session, endpoint, cursor)
                    for _ in range(count - len(ordered)):
                        self.malformed(f"{endpoint.path}: item without id")
                    if cursor is not None and count >= PAGE and not behind:
                        behind = True  # a long gap: tell the daemon history is coming
                        self._behind += 1
                        self.catching_up = True
                    for _sid, item in ordered:
                        await self._accept(feed, endpoint, item, emit)
                    self._save_cursors(force=True)
                    if (cursor is None or count < PAGE
                            or self._cursors.values.get(endpoint.key) == cursor):
                        break  # caught up (on a first start: the latest page only)
            finally:
                if behind:
                    self._behind -= 1
                    self.catching_up = self._behind > 0

    async def _accept(self, feed: Feed, endpoint: Endpoint, item: Any, emit: Emit, *,
                      edit: bool = False) -> None:
        """One timeline item (or notification): emit it if wanted, advance the cursor."""
        status = item.get("status") if endpoint.notifications and isinstance(item, Mapping) \
            else item
        try:
            post = self._norm.post(status, edit=edit)
            if (post is not None and feed.filtered and post.kind == "mention"
                    and not mentions_brand(post, status, self._terms, self._handles,
                                           self._norm)):
                post = None
        except WireError as exc:
            self.malformed(f"{feed.name}: {exc}")
            post = None
        if post is not None and post.id not in self._recent:
            self._recent[post.id] = None
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            await emit(post)
            self._count(post)
        if not edit and (sid := status_id(item)) is not None:
            self._cursors.advance(endpoint.key, sid)

    def _count(self, post: Post) -> None:
        self.health.posts += 1
        last = self.health.last_post_at
        self.health.last_post_at = post.created_at if last is None else max(last, post.created_at)

    # -- cursors -----------------------------------------------------------------------
    def _load_cursors(self) -> Cursors:
        raw = self.ctx.store.get_cursor(self._cursor_key)
        cursors = Cursors.from_json(raw, self.base)
        if raw is not None and not cursors.values:
            log.warning("mastodon %s: cursor unreadable or for another instance; starting "
                        "afresh", self.name)
        return cursors

    def _save_cursors(self, *, force: bool = False) -> None:
        cursors = self._cursors
        now = asyncio.get_running_loop().time()
        if cursors.dirty and (force or now - cursors.saved_at >= CURSOR_FLUSH):
            self.ctx.store.set_cursor(self._cursor_key, cursors.to_json(self.base))
            cursors.dirty, cursors.saved_at = False, now


def _describe(exc: BaseException) -> str:
    return secrets.mask(str(exc) or type(exc).__name__)
