"""RSS / Atom source: review sites, blogs and Google Alerts feeds, polled politely.

Each feed is polled on its own schedule (``interval``, +-10% jitter, starts spread
over a few seconds) by its own task, so one bad feed never stops the others.
Requests are conditional (If-None-Match / If-Modified-Since from the last 200);
304 means nothing new. 429 and 5xx honour Retry-After, else back off with jitter;
other errors back off too, never faster than the interval. Malformed XML, refused
documents (DTD subsets, entity declarations: see feedparse) and entries with
nothing to identify them are counted as malformed and skipped.

Entries become posts: id = a digest of the feed URL and the entry's guid / id /
link, text = title and summary (HTML stripped), created_at from
pubDate / published / updated / dc:date (the fetch time when missing or in the
future), author from dc:creator / author name, else the feed title (for Google
Alerts the linked site, whose redirect link is unwrapped). ``brand`` pins the
feed's posts to one brand; ``kind: outbound`` marks a brand's own blog.

The cursor ``rss:<name>`` keeps, per feed URL, the validators and a bounded list
of recently seen ids, so a restart neither repeats nor (while the feed still
lists them) misses entries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from monitor import __version__
from monitor.clock import utc
from monitor.config.schema import SourceConfig
from monitor.model import MAX_TEXT, Author, Post
from monitor.secrets import mask
from monitor.sources.backoff import Backoff
from monitor.sources.base import SOURCES, Emit, Source, SourceContext
from monitor.sources.feedparse import Entry, Feed, FeedError, parse_feed

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[object]]
DEFAULT_USER_AGENT = f"brand-monitor/{__version__} (+self-hosted)"
ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
          "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
MAX_BODY = 10 * 1024 * 1024  # after decompression
MIN_SEEN = 1000  # ids remembered per feed (at least 2 * max_items_per_fetch)
START_SPREAD = 5.0  # seconds over which the first fetches are spread
MAX_RETRY_AFTER = 86400.0
FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class FeedOptions:
    url: str = field(metadata={"url": True})
    interval: timedelta = timedelta(minutes=10)
    brand: str | None = None  # the feed is about this brand (else: the source's brand)
    kind: Literal["mention", "outbound"] = "mention"

    def problems(self) -> list[tuple[str, str]]:
        out = []
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            out.append(("url", "must be an http:// or https:// URL"))
        if self.interval < timedelta(seconds=1):
            out.append(("interval", "must be at least 1s"))
        return out


@dataclass(frozen=True, slots=True)
class RssOptions:
    feeds: tuple[FeedOptions, ...]
    timeout: timedelta = timedelta(seconds=30)
    user_agent: str = DEFAULT_USER_AGENT
    max_items_per_fetch: int = field(default=100, metadata={"min": 1})

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not self.feeds:
            out.append(("feeds", "at least one feed is required"))
        seen: set[str] = set()
        for index, feed in enumerate(self.feeds):
            if feed.url in seen:
                out.append((f"feeds[{index}].url", "this feed is listed twice"))
            seen.add(feed.url)
        if self.timeout <= timedelta(0):
            out.append(("timeout", "must be positive"))
        if not self.user_agent.strip():
            out.append(("user_agent", "must not be empty"))
        return out


class RetryLater(Exception):
    """429, 5xx or a network failure: retry after ``delay`` (None: back off)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class FetchError(Exception):
    """Any other failed fetch (4xx, too large): retry no sooner than the interval."""


@dataclass
class FeedState:
    etag: str | None = None
    modified: str | None = None
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def to_json(self) -> dict[str, object]:
        return {"etag": self.etag, "modified": self.modified, "seen": list(self.seen)}


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    etag: str | None
    modified: str | None


def post_id(feed_url: str, entry_key: str) -> str:
    """Stable id of an entry: the same feed and guid give the same id after a restart."""
    return hashlib.sha256(f"{feed_url}\n{entry_key}".encode()).hexdigest()[:32]


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text) if text.isdigit() else (
            utc(parsedate_to_datetime(text)) - now).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@SOURCES.register("rss")
class RssSource(Source):
    Options = RssOptions

    def __init__(self, config: SourceConfig, ctx: SourceContext, *,
                 session: aiohttp.ClientSession | None = None, sleep: Sleep | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__(config, ctx)
        self.opts: RssOptions = config.options
        self._session = session
        self.client: aiohttp.ClientSession | None = None  # the session in use while running
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._cursor_key = f"rss:{self.name}"
        self._seen_limit = max(MIN_SEEN, 2 * self.opts.max_items_per_fetch)
        self.states = self._load_states()
        self.feed_errors: dict[str, str | None] = {f.url: None for f in self.opts.feeds}

    # run ----------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        session = self._session or aiohttp.ClientSession(
            headers={"User-Agent": self.opts.user_agent})
        self.client = session
        try:
            async with asyncio.TaskGroup() as group:
                for feed in self.opts.feeds:
                    group.create_task(self._run_feed(session, feed, emit))
        finally:
            if self._session is None:
                await session.close()

    async def _run_feed(self, session: aiohttp.ClientSession, feed: FeedOptions,
                        emit: Emit) -> None:
        brand, problem = self._brand_of(feed)
        if problem:
            self._feed_failed(feed, problem)
            return
        interval = feed.interval.total_seconds()
        backoff = Backoff(base=min(30.0, interval), cap=max(3600.0, interval), rng=self._rng)
        await self._sleep(self._rng.uniform(0, min(interval, START_SPREAD)))
        while True:
            delay = await self._poll(session, feed, brand, backoff, emit)
            await self._sleep(delay)

    async def _poll(self, session: aiohttp.ClientSession, feed: FeedOptions, brand: str | None,
                    backoff: Backoff, emit: Emit) -> float:
        """One fetch of one feed; return the seconds until the next."""
        regular = feed.interval.total_seconds() * self._rng.uniform(0.9, 1.1)
        state = self.states.setdefault(feed.url, FeedState())
        try:
            fetched = await self._fetch(session, feed, state)
            parsed = None if fetched is None else parse_feed(fetched.body, feed.url)
        except RetryLater as exc:
            self._feed_failed(feed, str(exc))
            wait = backoff.next_delay()
            return max(1.0, exc.delay) if exc.delay is not None else wait
        except FeedError as exc:
            self.malformed(f"feed {mask(feed.url)}: {exc}")
            self._feed_failed(feed, str(exc))
            return regular
        except FetchError as exc:
            self._feed_failed(feed, str(exc))
            return max(regular, backoff.next_delay())
        except Exception as exc:  # one bad feed must not stop the others
            log.debug("source %s: feed %s failed", self.name, mask(feed.url), exc_info=True)
            self._feed_failed(feed, f"{type(exc).__name__}: {exc}")
            return max(regular, backoff.next_delay())
        backoff.reset()
        if fetched is not None and parsed is not None:
            await self._accept(feed, brand, parsed, state, emit)
            state.etag, state.modified = fetched.etag, fetched.modified
            self._save_states()
        self._feed_ok(feed)
        return regular

    async def _fetch(self, session: aiohttp.ClientSession, feed: FeedOptions,
                     state: FeedState) -> Fetched | None:
        """The feed's body, or None on 304 Not Modified."""
        headers = {"User-Agent": self.opts.user_agent, "Accept": ACCEPT}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.modified:
            headers["If-Modified-Since"] = state.modified
        timeout = aiohttp.ClientTimeout(total=self.opts.timeout.total_seconds())
        try:
            async with session.get(feed.url, headers=headers, timeout=timeout) as resp:
                if resp.status == 304:
                    return None
                if resp.status == 429 or resp.status >= 500:
                    delay = retry_after(resp.headers.get("Retry-After"), self.ctx.clock.now())
                    raise RetryLater(f"HTTP {resp.status}", delay)
                if not 200 <= resp.status < 300:
                    raise FetchError(f"HTTP {resp.status}")
                if (resp.content_length or 0) > MAX_BODY:
                    raise FetchError(f"feed larger than {MAX_BODY} bytes")
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise FetchError(f"feed larger than {MAX_BODY} bytes")
                    chunks.append(chunk)
                return Fetched(b"".join(chunks), resp.headers.get("ETag"),
                               resp.headers.get("Last-Modified"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(f"{type(exc).__name__}: {mask(str(exc))}") from None

    # entries -> posts -----------------------------------------------------------
    async def _accept(self, feed: FeedOptions, brand: str | None, parsed: Feed,
                      state: FeedState, emit: Emit) -> None:
        for problem in parsed.malformed:
            self.malformed(f"feed {mask(feed.url)}: {problem}")
        now = self.ctx.clock.now()
        posts = [self._post(feed, brand, parsed, entry, now) for entry in parsed.entries]
        for post in posts:  # still listed: keep it from being evicted
            if post.id in state.seen:
                state.seen.move_to_end(post.id)
        newest = sorted(posts, key=lambda p: p.created_at, reverse=True)
        for post in reversed(newest[: self.opts.max_items_per_fetch]):
            if post.id in state.seen:
                continue
            await emit(post)
            state.seen[post.id] = None
            self.health.posts += 1
            self.health.last_post_at = post.created_at
        while len(state.seen) > self._seen_limit:
            state.seen.popitem(last=False)

    def _post(self, feed: FeedOptions, brand: str | None, parsed: Feed, entry: Entry,
              now: datetime) -> Post:
        created = entry.published
        if created is None or created > now + FUTURE_SLACK:
            created = now
        text = "\n\n".join(part for part in (entry.title, entry.summary) if part)
        feed_host = urlsplit(feed.url).hostname or "feed"
        link_host = urlsplit(entry.link).hostname if entry.link else None
        if entry.author:
            name = entry.author
        elif link_host and feed_host.endswith("google.com") and not link_host.endswith(
                "google.com"):
            name = link_host  # Google Alerts: the site that published the article
        else:
            name = parsed.title or feed_host
        return Post(id=post_id(feed.url, entry.key), source=self.name, kind=feed.kind,
                    author=Author(id=f"{feed_host}:{name}", handle=name),
                    text=text[:MAX_TEXT], created_at=created, brand=brand, url=entry.link,
                    lang=entry.lang)

    def _brand_of(self, feed: FeedOptions) -> tuple[str | None, str | None]:
        """(brand, problem): the feed's brand, else the source's; outbound needs one."""
        brand = feed.brand or self.config.brand
        if brand is not None and brand not in {b.name for b in self.ctx.brands}:
            return None, f"unknown brand {brand!r}"
        if brand is None and feed.kind == "outbound":
            return None, "an outbound feed needs a brand (the brand whose blog it is)"
        return brand, None

    # health ---------------------------------------------------------------------
    def _feed_ok(self, feed: FeedOptions) -> None:
        self.feed_errors[feed.url] = None
        self.ok()

    def _feed_failed(self, feed: FeedOptions, error: str) -> None:
        self.feed_errors[feed.url] = error
        message = f"feed {mask(feed.url)}: {error}"
        if all(self.feed_errors.values()):
            self.failed(message)
        else:  # the others still work: the source stays up, the error is on record
            self.health.last_error = message
            log.warning("source %s: %s", self.name, message)

    # cursor ---------------------------------------------------------------------
    def _load_states(self) -> dict[str, FeedState]:
        raw = self.ctx.store.get_cursor(self._cursor_key)
        if raw is None:
            return {}
        try:
            data = json.loads(raw)["feeds"]
            states = {}
            for url, item in data.items():
                seen = [str(s) for s in item.get("seen", ())][-self._seen_limit:]
                states[str(url)] = FeedState(
                    etag=item.get("etag") or None, modified=item.get("modified") or None,
                    seen=OrderedDict.fromkeys(seen))
            return states
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("source %s: ignoring unreadable cursor", self.name)
            return {}

    def _save_states(self) -> None:
        configured = {f.url for f in self.opts.feeds}
        feeds = {url: s.to_json() for url, s in self.states.items() if url in configured}
        self.ctx.store.set_cursor(self._cursor_key, json.dumps({"feeds": feeds}))
