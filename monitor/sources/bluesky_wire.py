"""Bluesky wire formats: Jetstream events, post records, brand filtering, AppView XRPC.

Jetstream (https://github.com/bluesky-social/jetstream) turns the atproto firehose
into JSON text frames, one event each::

    {"did": "did:plc:…", "time_us": 1725911162329308, "kind": "commit",
     "commit": {"rev": "…", "operation": "create", "collection": "app.bsky.feed.post",
                "rkey": "…", "record": {"$type": "app.bsky.feed.post", "text": "…",
                "createdAt": "…", "langs": ["en"], "facets": […]}, "cid": "…"}}

plus ``identity`` events (``{"identity": {"did", "handle", "seq", "time"}}``) and
``account`` events. ``time_us`` is the resume cursor. Everything here is pure except
``AppView``, which speaks the two public XRPC calls the source needs.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from monitor.clock import parse_time
from monitor.config.schema import BrandConfig
from monitor.enrich.match import BrandMatcher
from monitor.model import MAX_TEXT
from monitor.sources.backoff import Backoff

JETSTREAM = "wss://jetstream2.us-east.bsky.network/subscribe"
APPVIEW = "https://public.api.bsky.app"
POST = "app.bsky.feed.post"
DID_RE = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]{1,2000}$")
_MENTION = "app.bsky.richtext.facet#mention"
_LINK = "app.bsky.richtext.facet#link"
K = TypeVar("K")
V = TypeVar("V")


class WireError(ValueError):
    """A payload that does not have the documented shape."""


# events -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Event:
    did: str
    time_us: int
    kind: str  # commit | identity | account | anything newer (ignored)


@dataclass(frozen=True, slots=True)
class Commit(Event):
    operation: str
    collection: str
    rkey: str
    record: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Identity(Event):
    handle: str | None


def parse_event(raw: str | bytes) -> Event:
    """Decode one Jetstream frame; raise WireError if it is not a Jetstream event."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("event is not a JSON object")
    did, time_us, kind = data.get("did"), data.get("time_us"), data.get("kind")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise WireError("event without a valid 'did'")
    if isinstance(time_us, bool) or not isinstance(time_us, int) or time_us <= 0:
        raise WireError(f"event of {did} without a valid 'time_us'")
    if not isinstance(kind, str):
        raise WireError(f"event of {did} without 'kind'")
    if kind == "commit":
        commit = data.get("commit")
        if not isinstance(commit, dict):
            raise WireError(f"commit event of {did} without a 'commit' object")
        op, coll, rkey = commit.get("operation"), commit.get("collection"), commit.get("rkey")
        if not (isinstance(op, str) and isinstance(coll, str) and isinstance(rkey, str)
                and rkey):
            raise WireError(f"commit of {did} lacks operation/collection/rkey")
        record = commit.get("record")
        if op in ("create", "update") and not isinstance(record, dict):
            raise WireError(f"{op} of {did}/{coll}/{rkey} without a record object")
        return Commit(did, time_us, kind, op, coll, rkey,
                      record if isinstance(record, dict) else None)
    if kind == "identity":
        ident = data.get("identity")
        handle = ident.get("handle") if isinstance(ident, dict) else None
        if not isinstance(handle, str) or not handle or handle == "handle.invalid":
            handle = None
        return Identity(did, time_us, kind, handle.lower() if handle else None)
    return Event(did, time_us, kind)


def subscribe_url(base: str, collections: Sequence[str], cursor: int | None) -> str:
    """``base?wantedCollections=…&cursor=…`` (no cursor: live tail)."""
    query = [("wantedCollections", c) for c in collections]
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    return str(URL(base).extend_query(query))


# post records ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PostRecord:
    text: str
    created_at: str | None
    lang: str | None
    mentions: tuple[str, ...]  # DIDs of mention facets
    links: tuple[str, ...]  # link facet URIs and external embed URIs
    replied: tuple[str, ...]  # DID of the post replied to
    quoted: tuple[str, ...]  # DID of the quoted post


def parse_post(record: Mapping[str, Any]) -> PostRecord:
    """The parts of an ``app.bsky.feed.post`` record we use; lenient on the optional ones."""
    rtype = record.get("$type")
    if rtype is not None and rtype != POST:
        raise WireError(f"record $type is {rtype!r}, not {POST}")
    text = record.get("text")
    if not isinstance(text, str):
        raise WireError("post record without a text string")
    created = record.get("createdAt")
    langs = record.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    mentions: list[str] = []
    links: list[str] = []
    for facet in _dicts(record.get("facets")):
        for feature in _dicts(facet.get("features")):
            kind = feature.get("$type")
            if kind == _MENTION and isinstance(feature.get("did"), str):
                mentions.append(feature["did"])
            elif kind == _LINK and isinstance(feature.get("uri"), str):
                links.append(feature["uri"])
    embed = record.get("embed") if isinstance(record.get("embed"), dict) else {}
    external = _get(embed, "external", "uri")
    if isinstance(external, str):
        links.append(external)
    quoted = _did_of(_get(embed, "record", "uri")) or _did_of(_get(embed, "record", "record",
                                                                   "uri"))
    replied = _did_of(_get(record, "reply", "parent", "uri"))
    return PostRecord(text=text[:MAX_TEXT],
                      created_at=created if isinstance(created, str) else None, lang=lang,
                      mentions=tuple(mentions), links=tuple(links),
                      replied=(replied,) if replied else (), quoted=(quoted,) if quoted else ())


def created_time(created_at: str | None, time_us: int) -> datetime:
    """record.createdAt, but never later than Jetstream's time (as the AppView's sortAt)."""
    seen = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    if created_at:
        try:
            return min(parse_time(created_at), seen)
        except (ValueError, OverflowError):
            pass
    return seen


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST}/{rkey}"


def post_url(did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def _dicts(value: object) -> Iterable[dict[str, Any]]:
    return (v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()


def _get(data: object, *path: str) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _did_of(uri: object) -> str | None:
    if isinstance(uri, str) and uri.startswith("at://did:"):
        return uri[5:].split("/", 1)[0]
    return None


# brand filtering -------------------------------------------------------------------
class Classifier:
    """Decides whether a post is outbound, a candidate mention (and of which brand), or noise.

    Text is matched by the engine's own rules (``BrandMatcher``); on top of that a post
    is a mention of a brand when it mentions, replies to or quotes one of the brand's
    accounts, or links to a page whose address names the brand.
    ``owners`` maps each brand-account DID to its brand name (None: unknown brand).
    ``pinned`` is the source's configured brand, set on every post when given.
    """

    def __init__(self, brands: Sequence[BrandConfig], owners: Mapping[str, str | None],
                 pinned: str | None = None) -> None:
        self.owners = dict(owners)
        self.pinned = pinned
        self._matcher = BrandMatcher(brands)

    def classify(self, did: str, post: PostRecord) -> tuple[str, str | None] | None:
        """(kind, brand) or None to drop. brand None leaves matching to the engine."""
        if did in self.owners:
            return "outbound", self.pinned or self.owners[did]
        if any(rule.matches(post.text) for rule in self._matcher.rules):
            return "mention", self.pinned  # the engine finds the same brand(s) in text
        for ref in (*post.mentions, *post.replied, *post.quoted):
            if ref in self.owners:
                owner = self.pinned or self.owners[ref]
                found = self._matcher.rule(owner) if owner is not None else None
                if found is None or not found.excluded(post.text):
                    return "mention", owner
        for rule in self._matcher.rules:
            if not rule.excluded(post.text) \
                    and any(rule.names(_link_text(u)) for u in post.links):
                return "mention", rule.name
        return None


def _link_text(uri: str) -> str:
    """A URI as words, so that ``https://acme.com/x`` or ``…/acme/…`` match ``acme``."""
    parts = urlsplit(uri)
    return f"{parts.hostname or ''} {parts.path} {parts.query}".replace("/", " ")


# bounded caches ----------------------------------------------------------------------
class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class SeenSet:
    """The last ``size`` keys added: ``add`` is False for a key already there."""

    def __init__(self, size: int) -> None:
        self._lru: LRU[str, bool] = LRU(size)

    def add(self, key: str) -> bool:
        if self._lru.get(key):
            return False
        self._lru.put(key, True)
        return True

    def __len__(self) -> int:
        return len(self._lru)


class RateLimit:
    """Token bucket: ``rate`` acquisitions a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.rate, self.burst, self._now, self._sleep = rate, max(1.0, burst), now, sleep
        self._tokens, self._last = self.burst, now()

    async def acquire(self) -> None:
        while True:
            now = self._now()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self.rate)


# AppView XRPC ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Profile:
    handle: str | None
    followers: int | None


class AppViewError(Exception):
    pass


class AppView:
    """``resolveHandle`` and ``getProfiles`` on a public AppView, cached and rate limited.

    A failed profile lookup starts a cool-down (jittered backoff) during which posts
    go out without follower counts rather than waiting on a sick service.
    """

    def __init__(self, session: aiohttp.ClientSession, base: str, *, cache: int, ttl: float,
                 rate: float, now: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]], backoff: Backoff,
                 timeout: float = 10.0) -> None:
        self._session, self._base = session, base.rstrip("/")
        self._cache: LRU[str, tuple[float, Profile]] = LRU(cache)
        self._ttl, self._now, self._backoff = ttl, now, backoff
        self._limit = RateLimit(rate, max(1.0, rate), now, sleep)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._down_until = 0.0
        self.requests = 0

    async def _get(self, method: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        self.requests += 1
        async with self._session.get(f"{self._base}/xrpc/{method}", params=params,
                                     timeout=self._timeout) as resp:
            if resp.status != 200:
                raise AppViewError(f"{method}: HTTP {resp.status}")
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                raise AppViewError(f"{method}: invalid JSON") from None
        if not isinstance(data, dict):
            raise AppViewError(f"{method}: response is not an object")
        return data

    async def resolve_handle(self, handle: str) -> str:
        try:
            data = await self._get("com.atproto.identity.resolveHandle", [("handle", handle)])
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AppViewError(f"resolveHandle {handle}: {type(exc).__name__}: {exc}") from None
        did = data.get("did")
        if not isinstance(did, str) or not DID_RE.match(did):
            raise AppViewError(f"resolveHandle {handle}: no DID in the response")
        return did

    async def profile(self, did: str) -> Profile | None:
        """Cached profile of ``did``; None while the AppView is failing."""
        now = self._now()
        cached = self._cache.get(did)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        if now < self._down_until:
            return None
        await self._limit.acquire()
        try:
            data = await self._get("app.bsky.actor.getProfiles", [("actors", did)])
        except (AppViewError, aiohttp.ClientError, TimeoutError):
            self._down_until = self._now() + self._backoff.next_delay()
            raise
        self._backoff.reset()
        found = Profile(None, None)  # unknown or deleted account: remember that too
        for item in _dicts(data.get("profiles")):
            if item.get("did") == did:
                count = item.get("followersCount")
                handle = item.get("handle")
                found = Profile(handle if isinstance(handle, str) else None,
                                count if isinstance(count, int) and not isinstance(count, bool)
                                and count >= 0 else None)
        self._cache.put(did, (self._now(), found))
        return found
