"""X/Twitter source (API v2 through tweepy's AsyncClient).

Mentions come from recent search, one or more queries per brand (see
``twitter_wire.build_queries``); the brands' own posts come from their user
timelines as ``outbound``. With ``stream: true`` the same queries (and
``from:<user id>`` for the timelines) become filtered-stream rules tagged
``brandmon:<source>:<feed>``; every (re)connect first runs one polling pass so the
gap while disconnected is filled from search.

Each feed keeps a cursor ``twitter:<source>:<feed>`` (JSON: ``since_id``, the query,
and a pending ``next_token`` while a backlog is paged through), written after the
posts it covers were emitted, so a restart neither misses nor repeats. A first run
takes only the newest page. A search cursor older than X's 7-day window is dropped
(the gap is logged).

Rate limits: ``x-rate-limit-remaining``/``x-rate-limit-reset`` are read from every
response; at 0 the next call to that endpoint waits for the reset, and a 429 waits
until ``x-rate-limit-reset`` (X sends no Retry-After). 5xx and network errors back
off with jitter; 401/403 (e.g. ``client-not-enrolled``) and other 4xx are reported
in health and retried slowly. tweepy hard-codes ``https://api.twitter.com``: tests
inject a session factory whose connector resolves that host to a local TLS server.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from tweepy import StreamRule
from tweepy.asynchronous import AsyncClient, AsyncStreamingClient

from monitor import secrets
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.errors import PostError
from monitor.model import Post
from monitor.sources import twitter_wire as wire
from monitor.sources.backoff import Backoff
from monitor.sources.base import SOURCES, Emit, Source, SourceContext
from monitor.sources.twitter_rest import MAX_RATE_WAIT as MAX_RATE_WAIT
from monitor.sources.twitter_rest import Feed as Feed
from monitor.sources.twitter_rest import TwitterApi, error_of
from monitor.sources.twitter_wire import ApiError, Cursor

log = logging.getLogger(__name__)
SessionFactory = Callable[[], aiohttp.ClientSession]
Sleep = Callable[[float], Awaitable[None]]
SEARCH_WINDOW = timedelta(days=7) - timedelta(minutes=5)
_SEEN = 10_000
_LANG = re.compile(r"^[a-z]{2,3}$")

# tweepy logs each request's headers (the bearer token) at DEBUG: mask at the record.
_tweepy_log = logging.getLogger("tweepy.asynchronous.client")
if not any(isinstance(f, secrets.MaskingFilter) for f in _tweepy_log.filters):
    _tweepy_log.addFilter(secrets.MaskingFilter())


@dataclass(frozen=True, slots=True)
class TwitterOptions:
    bearer_token: str = field(metadata={"secret": True})
    poll_interval: timedelta = timedelta(seconds=60)
    max_results: int = field(default=100, metadata={"min": 10, "max": 100})
    max_pages: int = field(default=5, metadata={"min": 1, "max": 50})  # per feed and poll
    brands: tuple[str, ...] = ()  # default: the source's `brand`, else every brand
    own_user_ids: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # brand -> ids
    timeline: bool = True  # poll the brands' own posts as outbound
    stream: bool = False
    lang: str | None = None
    exclude_retweets: bool = True

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.poll_interval < timedelta(seconds=1):
            found.append(("poll_interval", "must be at least 1s"))
        if self.lang is not None and not _LANG.match(self.lang):
            found.append(("lang", "must be a language code such as en or fr"))
        return found


def _default_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, sock_connect=30))


@SOURCES.register("twitter")
class TwitterSource(Source):
    Options = TwitterOptions

    def __init__(self, config: SourceConfig, ctx: SourceContext, *,
                 session_factory: SessionFactory | None = None, sleep: Sleep = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        super().__init__(config, ctx)
        self._session_factory = session_factory or _default_session
        self._sleep = sleep
        rng = rng or random.Random()
        self._backoff = Backoff(base=2.0, cap=300.0, rng=rng)
        self._slow = Backoff(base=300.0, cap=3600.0, rng=rng)  # credentials / config errors
        opts: TwitterOptions = self.options
        self._api = TwitterApi(self.name, max_results=opts.max_results,
                               exclude_retweets=opts.exclude_retweets,
                               now=lambda: self.ctx.clock.now(), sleep=sleep,
                               malformed=self.malformed)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._own: set[str] = set()  # user ids whose posts are outbound, never mentions
        self._session: aiohttp.ClientSession | None = None
        self._client: Any = None
        self._rules: Any = None

    # main loop ---------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        opts: TwitterOptions = self.options
        secrets.register(opts.bearer_token)
        try:
            brands = self._brands()
            searches = [Feed(f"search:{b.name}:{i}", "mention", q) for b in brands
                        for i, q in enumerate(wire.build_queries(
                            b, lang=opts.lang, exclude_retweets=opts.exclude_retweets))]
        except ValueError as exc:
            self.failed(str(exc))
            return
        async with self._session_factory() as session:
            self._session = session
            self._client = AsyncClient(bearer_token=opts.bearer_token,
                                       return_type=aiohttp.ClientResponse)
            self._client.session = session
            self._rules = AsyncStreamingClient(opts.bearer_token,
                                               return_type=aiohttp.ClientResponse)
            self._rules.session = session
            feeds: list[Feed] | None = None
            while True:
                try:
                    if feeds is None:
                        feeds = searches + (await self._timelines(brands) if opts.timeline
                                            else [])
                    if opts.stream:
                        await self._stream(emit, feeds)
                    else:
                        for feed in feeds:
                            await self._poll(feed, emit)
                        self._healthy()
                        await self._sleep(opts.poll_interval.total_seconds())
                except ApiError as err:
                    await self._sleep(self._after(err))

    def _brands(self) -> list[BrandConfig]:
        wanted = self.options.brands or ((self.config.brand,) if self.config.brand else ())
        known = {b.name: b for b in self.ctx.brands}
        missing = [n for n in (*wanted, *self.options.own_user_ids) if n not in known]
        if missing:
            raise ValueError(f"unknown brand(s): {', '.join(missing)}")
        chosen = [known[n] for n in wanted] if wanted else list(self.ctx.brands)
        if not chosen:
            raise ValueError("no brand configured")
        return chosen

    def _healthy(self) -> None:
        self._backoff.reset()
        self._slow.reset()
        self.ok()

    def _after(self, err: ApiError) -> float:
        """Report an API error; return how long to wait before trying again."""
        message = secrets.mask(str(err))
        if err.kind == "rate":
            wait = (err.reset - self.ctx.clock.now().timestamp() + 1 if err.reset is not None
                    else self._backoff.next_delay())
            wait = min(max(wait, 1.0), MAX_RATE_WAIT)
            if "UsageCapExceeded" in message:
                self.failed(f"monthly post cap reached: {message}")
            else:
                log.warning("source %s: rate limited (%s); waiting %.0fs", self.name, message,
                            wait)
            return wait
        self.failed(message)
        return (self._backoff if err.kind == "transient" else self._slow).next_delay()

    # requests ----------------------------------------------------------------------
    async def _timelines(self, brands: list[BrandConfig]) -> list[Feed]:
        """One outbound feed per own account: ``own_user_ids``, else the resolved handles."""
        opts: TwitterOptions = self.options
        lookup = [u for b in brands if b.name not in opts.own_user_ids
                  for h in b.handles if (u := wire.username_of(h))]
        ids = await self._api.user_ids(self._client, lookup)
        feeds = []
        for brand in brands:
            own = list(opts.own_user_ids.get(brand.name, ()))
            for handle in brand.handles if brand.name not in opts.own_user_ids else ():
                name = wire.username_of(handle)
                if name and name.lower() in ids:
                    own.append(ids[name.lower()])
                else:
                    log.warning("source %s: X account %r of brand %s not found; its own "
                                "posts are not followed", self.name, handle, brand.name)
            rule = "" if not self.options.exclude_retweets else " -is:retweet"
            self._own.update(own)
            feeds += [Feed(f"timeline:{uid}", "outbound", f"from:{uid}{rule}", brand.name, uid)
                      for uid in dict.fromkeys(own)]
        return feeds

    # polling -----------------------------------------------------------------------
    def _load(self, feed: Feed) -> Cursor:
        raw = self.ctx.store.get_cursor(f"twitter:{self.name}:{feed.key}")
        try:
            cursor = Cursor.from_json(raw) if raw else Cursor()
        except ValueError:
            log.warning("source %s: ignoring unreadable cursor of %s", self.name, feed.key)
            return Cursor()
        if feed.user_id is None and cursor.since_id is not None \
                and wire.snowflake_time(cursor.since_id) < self.ctx.clock.now() - SEARCH_WINDOW:
            log.warning("source %s: cursor of %s is older than X's 7-day search window; "
                        "posts in between are lost", self.name, feed.key)
            return Cursor()
        return cursor

    def _save(self, feed: Feed, cursor: Cursor) -> None:
        self.ctx.store.set_cursor(f"twitter:{self.name}:{feed.key}", cursor.to_json())

    async def _poll(self, feed: Feed, emit: Emit) -> None:
        """Fetch what is new for one feed (bounded pages), emit it, advance its cursor."""
        cur = self._load(feed)
        resuming = cur.next_token is not None and cur.query == feed.query
        token = cur.next_token if resuming else None
        newest = cur.newest_id if resuming else None
        first = cur.since_id is None and not resuming
        posts: list[Post] = []
        try:
            for _ in range(1 if first else self.options.max_pages):
                page = await self._api.page(self._client, feed, cur.since_id, token)
                posts += page.posts
                newest, token = wire.newer(newest, page.newest_id), page.next_token
                if token is None:
                    break
        except ApiError:
            if posts:  # keep the pages already fetched; resume at the failed one
                await self._emit(emit, posts)
                self._save(feed, Cursor(cur.since_id, feed.query, token, newest))
            raise
        await self._emit(emit, posts)
        if token is None or first:
            self._save(feed, Cursor(wire.newer(cur.since_id, newest), feed.query))
        else:
            self._save(feed, Cursor(cur.since_id, feed.query, token, newest))

    async def _emit(self, emit: Emit, posts: list[Post]) -> None:
        """Oldest first; not a post another feed emitted, nor a brand's own post as a mention."""
        for post in sorted(posts, key=lambda p: int(p.id)):
            if post.id in self._seen or (post.kind == "mention" and post.author.id in self._own):
                continue
            self._seen[post.id] = None
            if len(self._seen) > _SEEN:
                self._seen.popitem(last=False)
            await emit(post)
            self.health.posts += 1
            self.health.last_post_at = post.created_at

    # filtered stream -----------------------------------------------------------------
    def _tag(self, feed: Feed) -> str:
        return f"brandmon:{self.name}:{feed.key}"

    async def _sync_rules(self, feeds: list[Feed]) -> None:
        """Make this source's stream rules (by tag prefix) exactly one per feed."""
        want = {self._tag(f): f.query for f in feeds}
        body = await self._api.call("rules", self._rules.get_rules)
        have = body.get("data") if isinstance(body, Mapping) else None
        have = [r for r in have if isinstance(r, Mapping)] if isinstance(have, list) else []
        mine = f"brandmon:{self.name}:"
        stale = [str(r.get("id")) for r in have if str(r.get("tag", "")).startswith(mine)
                 and want.get(str(r.get("tag"))) != r.get("value")]
        kept = {str(r.get("tag")) for r in have if want.get(str(r.get("tag"))) == r.get("value")}
        if stale:
            await self._api.call("rules", self._rules.delete_rules, stale)
        add = [StreamRule(value=q, tag=t) for t, q in want.items() if t not in kept]
        if add:
            body = await self._api.call("rules", self._rules.add_rules, add)
            errors = body.get("errors") if isinstance(body, Mapping) else None
            if errors:
                raise ApiError("rejected", "stream rules refused: "
                               + wire.problem_text(400, {"errors": errors}))

    async def _stream(self, emit: Emit, feeds: list[Feed]) -> None:
        """Sync rules, fill the gap by polling, then read the stream until it ends."""
        assert self._session is not None
        await self._sync_rules(feeds)
        for feed in feeds:
            await self._poll(feed, emit)
        by_tag = {self._tag(f): f for f in feeds}
        params = {"tweet.fields": ",".join(wire.TWEET_FIELDS),
                  "expansions": ",".join(wire.EXPANSIONS),
                  "user.fields": ",".join(wire.USER_FIELDS)}
        headers = {"Authorization": f"Bearer {self.options.bearer_token}",
                   "User-Agent": self._client.user_agent}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        try:
            async with self._session.get(f"{wire.API}/2/tweets/search/stream", params=params,
                                         headers=headers, timeout=timeout) as response:
                if response.status != 200:
                    raise await error_of(response)
                self._healthy()
                async for raw in response.content:
                    if line := raw.strip():  # empty lines are keep-alives
                        await self._stream_line(line, by_tag, emit)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ApiError("transient", f"stream: {exc!r}") from None
        raise ApiError("transient", "stream closed by the server")

    async def _stream_line(self, line: bytes, by_tag: Mapping[str, Feed], emit: Emit) -> None:
        try:
            item = wire.stream_item(line)
        except PostError as exc:
            self.malformed(f"stream: {exc}")
            return
        if item.problem is not None:
            log.warning("source %s: stream says %s", self.name, item.problem)
            if "disconnect" in item.problem.lower():
                raise ApiError("transient", f"stream: {item.problem}")
            return
        feeds = [by_tag[t] for t in item.tags if t in by_tag]
        if not feeds:
            return  # a rule of another application sharing the stream
        try:
            post = wire.tweet_to_post(item.tweet, item.users, source=self.name,
                                      kind=feeds[0].kind, brand=feeds[0].brand)
        except PostError as exc:
            self.malformed(f"stream: {exc}")
            return
        await self._emit(emit, [post])
        for feed in feeds:
            cur = self._load(feed)
            if cur.next_token is None:
                self._save(feed, Cursor(wire.newer(cur.since_id, post.id), feed.query))
