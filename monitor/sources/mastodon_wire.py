"""Mastodon wire format: options, feeds, streaming events, Status -> Post, rate limits.

Pure helpers for ``monitor.sources.mastodon`` (no I/O here), following the
Mastodon REST and streaming APIs (docs.joinmastodon.org/methods/streaming,
/methods/timelines, /entities/Status).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

from monitor.clock import parse_time, utc
from monitor.model import MAX_TEXT, Author, Post

PAGE = 40  # the largest page Mastodon serves for timelines
_STREAMS = ("public", "public:local", "user")
_ID_RE = re.compile(r"^[\w.:@/+=-]{1,200}$")  # what monitor.model accepts as a post id
_MAX_RATE_WAIT = 900.0


@dataclass(frozen=True, slots=True)
class MastodonOptions:
    instance: str = field(metadata={"url": True})  # e.g. https://mastodon.social
    access_token: str | None = field(default=None, metadata={"secret": True})
    streams: tuple[str, ...] = ()  # public, public:local, hashtag:<tag>, user
    hashtags: tuple[str, ...] = ()  # each followed as a hashtag stream/timeline
    account: str | None = None  # the brand's own acct; its statuses are outbound
    poll_interval: timedelta = timedelta(seconds=60)
    use_streaming: bool = True
    streaming_url: str | None = field(default=None, metadata={"url": True})  # else discovered
    stream_failures: int = field(default=5, metadata={"min": 1})  # before polling instead
    stream_retry: timedelta = timedelta(minutes=15)  # try streaming again after falling back

    def problems(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if urlsplit(self.instance).scheme not in ("http", "https"):
            found.append(("instance", "must be an http(s) URL like https://mastodon.social"))
        for stream in self.streams:
            if stream not in _STREAMS and not (stream.startswith("hashtag:") and stream[8:]):
                found.append(("streams", f"unknown stream {stream!r} (public, public:local, "
                                         "hashtag:<tag>, user)"))
        if "user" in self.streams and not self.access_token:
            found.append(("streams", "the user stream needs an access_token"))
        if self.poll_interval < timedelta(seconds=1):
            found.append(("poll_interval", "must be at least 1s"))
        if not self.streams and not self.hashtags and not self.account:
            found.append(("streams", "nothing to follow: set streams, hashtags or account"))
        return found


class WireError(Exception):
    """A payload that does not have the shape Mastodon documents (counted, skipped)."""


class StreamRefused(Exception):
    """The streaming server refused us (HTTP 401/403/404/410 or an error frame)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StreamClosed(Exception):
    """The stream ended (closed by the server, or a transport error)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


# feeds -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Endpoint:
    key: str  # cursor key
    path: str
    params: tuple[tuple[str, str], ...] = ()
    notifications: bool = False  # items are Notifications carrying a status


@dataclass(frozen=True, slots=True)
class Feed:
    name: str
    stream: tuple[tuple[str, str], ...] | None  # WebSocket query; None: REST only
    endpoints: tuple[Endpoint, ...]
    filtered: bool = False  # public streams carry everything: keep brand mentions only


def feeds_for(options: MastodonOptions) -> list[Feed]:
    names = list(dict.fromkeys((*options.streams,
                                *(f"hashtag:{t.strip().lstrip('#')}" for t in options.hashtags
                                  if t.strip().lstrip("#")))))
    feeds: list[Feed] = []
    for name in names:
        if name in ("public", "public:local"):
            local = (("local", "true"),) if name == "public:local" else ()
            feeds.append(Feed(name, (("stream", name),),
                              (Endpoint(name, "/api/v1/timelines/public", local),), True))
        elif name == "user":
            feeds.append(Feed(name, (("stream", "user"),), (
                Endpoint("user", "/api/v1/timelines/home"),
                Endpoint("user:mentions", "/api/v1/notifications", (("types[]", "mention"),),
                         notifications=True))))
        else:
            tag = name.split(":", 1)[1]
            feeds.append(Feed(name, (("stream", "hashtag"), ("tag", tag)),
                              (Endpoint(name, f"/api/v1/timelines/tag/{quote(tag, safe='')}"),)))
    return feeds


def account_feed(account_id: str) -> Feed:
    path = f"/api/v1/accounts/{quote(account_id, safe='')}/statuses"
    return Feed("account", None, (Endpoint("account", path, (("exclude_replies", "false"),)),))


def id_order(status_id: str) -> tuple[int, str]:
    """Mastodon ids are numeric strings (others' are fixed-width sortable): order by both."""
    return (len(status_id), status_id)


@dataclass
class Cursors:
    """The newest id read per timeline, stored as JSON in the ``mastodon:<name>`` cursor."""

    values: dict[str, str] = field(default_factory=dict)
    dirty: bool = False
    saved_at: float = 0.0

    def advance(self, key: str, value: str) -> None:
        current = self.values.get(key)
        if current is None or id_order(value) > id_order(current):
            self.values[key] = value
            self.dirty = True

    def to_json(self, instance: str) -> str:
        return json.dumps({"instance": instance, "since": self.values}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None, instance: str) -> Cursors:
        """Empty when missing, unreadable, or written for another instance."""
        try:
            data = json.loads(raw or "{}")
            if data.get("instance") != instance:
                return cls()
            return cls({str(k): str(v) for k, v in data["since"].items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


# streaming events ------------------------------------------------------------------
def parse_event(text: str | bytes) -> tuple[str, Any]:
    """One WebSocket frame -> (event, decoded payload); raise WireError or StreamRefused."""
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise WireError(f"frame is not JSON ({exc})") from None
    if not isinstance(frame, dict):
        raise WireError("frame is not a JSON object")
    if "error" in frame and "event" not in frame:
        status = frame.get("status")
        raise StreamRefused(f"streaming error: {str(frame['error'])[:200]}",
                            status if isinstance(status, int) else None)
    event = frame.get("event")
    if not isinstance(event, str):
        raise WireError("frame has no event")
    payload = frame.get("payload")
    if event in ("update", "status.update", "notification"):
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                raise WireError(f"{event}: payload is not JSON") from None
        if not isinstance(payload, dict):
            raise WireError(f"{event}: payload is not an object")
    return event, payload


# Status -> Post ----------------------------------------------------------------------
class _TextParser(HTMLParser):
    """Mastodon content HTML -> plain text: paragraphs, line breaks, full link text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in ("p", "li", "blockquote", "pre") and self.parts:
            self.parts.append("\n\n" if tag == "p" else "\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Keeps @mentions, #hashtags and whole URLs (Mastodon hides parts in spans)."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WireError(f"{what}: not an object")
    return value


def _str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise WireError(f"{what}: missing {key}")
    return value


def _opt(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def status_id(status: object) -> str | None:
    """The id of a status (or notification), if it has one: for cursors."""
    if isinstance(status, Mapping):
        value = status.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


@dataclass(frozen=True, slots=True)
class Normaliser:
    """Builds Posts from Statuses as seen on one instance.

    Statuses by an ``own`` account are outbound (tagged ``outbound_brand``). A reblog
    seen in a mention feed becomes the reblogged status under its own id, so boosts
    collapse onto the original instead of counting again; a reblog BY the brand is
    outbound, authored by the brand, with the boosted text and the reblog's id.
    """

    source: str
    domain: str  # the instance's account domain, completes local accts
    own: frozenset[str] = frozenset()  # full accts, lower case
    outbound_brand: str | None = None

    def full_acct(self, acct: str) -> str:
        acct = acct.strip().lstrip("@")
        return acct if "@" in acct else f"{acct}@{self.domain}"

    def post(self, data: object, *, edit: bool = False) -> Post | None:
        """A Post, or None when the status is not for us (an edit of a mention)."""
        status = _obj(data, "status")
        sid = _str(status, "id", "status")
        account = _obj(status.get("account"), f"status {sid}: account")
        acct = self.full_acct(_str(account, "acct", f"status {sid}: account"))
        outbound = acct.lower() in self.own
        reblog = status.get("reblog")
        if reblog is not None and not outbound:
            return self.post(_obj(reblog, f"status {sid}: reblog"), edit=edit)
        if edit and not outbound:
            return None
        body = _obj(reblog, f"status {sid}: reblog") if reblog is not None else status
        content = body.get("content")
        if not isinstance(content, str):
            raise WireError(f"status {sid}: missing content")
        text = html_to_text(content)
        spoiler = _opt(body, "spoiler_text")
        if spoiler:
            text = f"{spoiler}\n\n{text}" if text else spoiler
        try:
            created = parse_time(_str(status, "edited_at" if edit else "created_at",
                                      f"status {sid}"))
        except ValueError:
            raise WireError(f"status {sid}: created_at is not a time") from None
        post_id = _opt(status, "uri") or ""
        suffix = f":edit:{int(created.timestamp())}" if edit else ""
        if not _ID_RE.match(post_id + suffix):
            post_id = f"{self.domain}:{sid}"
        followers = account.get("followers_count")
        if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
            followers = None
        app = body.get("application")
        return Post(
            id=post_id + suffix, source=self.source, kind="outbound" if outbound else "mention",
            author=Author(id=_str(account, "id", f"status {sid}: account"), handle=acct,
                          followers=followers),
            text=text[:MAX_TEXT], created_at=created,
            brand=self.outbound_brand if outbound else None,
            url=_opt(body, "url") or _opt(status, "url") or _opt(body, "uri"),
            lang=_opt(body, "language"),
            client=_opt(app, "name") if isinstance(app, Mapping) else None)


def mentions_brand(post: Post, status: object, terms: list[str],
                   handles: frozenset[str], norm: Normaliser) -> bool:
    """For public streams: does the status name a brand (text or @-mention)?"""
    text = post.text.lower()
    if any(term in text for term in terms):
        return True
    if not isinstance(status, Mapping):
        return False
    body = status.get("reblog") if isinstance(status.get("reblog"), Mapping) else status
    mentions = body.get("mentions") if isinstance(body, Mapping) else None
    for mention in mentions if isinstance(mentions, list) else ():
        acct = mention.get("acct") if isinstance(mention, Mapping) else None
        if isinstance(acct, str) and (norm.full_acct(acct).lower() in handles
                                      or acct.lower() in handles):
            return True
    return False


# rate limits ---------------------------------------------------------------------------
def rate_limit_wait(status: int, headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to hold all requests after this response, or None.

    Mastodon sends X-RateLimit-Remaining and X-RateLimit-Reset (an ISO time) on every
    response and 429 once the window is spent. The wait is measured against the
    server's Date header when present, so clock skew does not matter.
    """
    remaining = headers.get("X-RateLimit-Remaining")
    spent = status == 429
    if not spent and remaining is not None:
        try:
            spent = int(float(remaining)) <= 0
        except ValueError:
            spent = False
    if not spent:
        return None
    server_now = utc(now)
    if date := headers.get("Date"):
        with contextlib.suppress(TypeError, ValueError):
            server_now = utc(parsedate_to_datetime(date))
    wait: float | None = None
    if reset := headers.get("X-RateLimit-Reset"):
        try:
            wait = (parse_time(reset) - server_now).total_seconds()
        except ValueError:
            wait = None
    if wait is None and (after := headers.get("Retry-After")):
        try:
            wait = float(after)
        except ValueError:
            wait = None
    if wait is None:
        wait = 60.0
    return min(max(wait, 1.0), _MAX_RATE_WAIT)


def dig(data: Any, *keys: str) -> str | None:
    """A non-empty string found by following ``keys`` through nested objects."""
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data if isinstance(data, str) and data else None


def error_text(body: bytes) -> str:
    """Mastodon errors are {"error": "..."}; anything else is cut short."""
    try:
        data = json.loads(body)
        if isinstance(data, Mapping) and isinstance(data.get("error"), str):
            return str(data["error"])[:200]
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace")
