"""X/Twitter API v2 wire format: search queries, tweet -> Post, error and rate-limit texts.

Pure functions only (no I/O), so each is tested on its own; the source that uses
them is ``monitor.sources.twitter``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.clock import parse_time
from monitor.config.schema import BrandConfig
from monitor.errors import PostError
from monitor.model import MAX_TEXT, Author, Post, PostKind

API_HOST = "api.twitter.com"  # tweepy hard-codes this host; the stream uses it too
API = f"https://{API_HOST}"
QUERY_LIMIT = 512  # recent search / stream rule length on the self-serve tiers
TWEET_FIELDS = ("author_id", "created_at", "public_metrics", "entities", "lang",
                "referenced_tweets", "conversation_id", "in_reply_to_user_id", "note_tweet",
                "source")
EXPANSIONS = ("author_id",)
USER_FIELDS = ("username", "name", "public_metrics", "verified")
_ID = re.compile(r"^\d{1,25}$")
_USERNAME = re.compile(r"^\w{1,50}$")
_BARE = re.compile(r"^\w+$")
_EPOCH_MS = 1288834974657


class QueryTooLong(ValueError):
    """A single term plus the brand's exclusions does not fit in one query."""


# queries -------------------------------------------------------------------------
def _clean(term: str) -> str:
    return " ".join(term.replace('"', " ").split())


def _phrase(term: str) -> str:
    """One keyword as a query term: bare if a single word, else an exact phrase."""
    clean = _clean(term)
    return clean if _BARE.match(clean) else f'"{clean}"'


def username_of(handle: str) -> str | None:
    """``@Acme`` -> ``Acme``; None if it cannot be an X username."""
    name = handle.strip().lstrip("@")
    return name if _USERNAME.match(name) else None


def brand_terms(brand: BrandConfig) -> list[str]:
    """``@handle``, ``handle``, the brand name and each keyword, de-duplicated."""
    terms: list[str] = []
    seen: set[str] = set()
    raw: list[str] = []
    for handle in brand.handles:
        name = username_of(handle)
        raw.extend((f"@{name}", name) if name else (handle,))
    raw.extend((brand.name, *brand.keywords))
    for item in raw:
        term = item if item.startswith("@") and _BARE.match(item[1:]) else _phrase(item)
        if term.strip('"') and term.lower() not in seen:
            seen.add(term.lower())
            terms.append(term)
    return terms


def query_suffix(brand: BrandConfig, *, lang: str | None = None,
                 exclude_retweets: bool = True) -> str:
    """The negations and filters every query of the brand carries."""
    parts = [f'-"{clean}"' for e in brand.exclude if (clean := _clean(e))]
    parts += [f"-from:{name}" for h in brand.handles if (name := username_of(h))]
    if exclude_retweets:
        parts.append("-is:retweet")
    if lang:
        parts.append(f"lang:{lang}")
    return " ".join(parts)


def _render(terms: Sequence[str], suffix: str) -> str:
    body = terms[0] if len(terms) == 1 else f"({' OR '.join(terms)})"
    return f"{body} {suffix}".strip()


def build_queries(brand: BrandConfig, *, lang: str | None = None, exclude_retweets: bool = True,
                  limit: int = QUERY_LIMIT) -> list[str]:
    """``(@handle OR handle OR "name" OR kw) -"exclusion" -from:handle -is:retweet``.

    Split into several queries, each carrying every exclusion, when one would be
    longer than ``limit`` characters. Raises QueryTooLong if even one term does not fit.
    """
    suffix = query_suffix(brand, lang=lang, exclude_retweets=exclude_retweets)
    queries: list[str] = []
    group: list[str] = []
    for term in brand_terms(brand):
        if len(_render([*group, term], suffix)) <= limit:
            group.append(term)
            continue
        if not group or len(_render([term], suffix)) > limit:
            raise QueryTooLong(f"brand {brand.name!r}: term {term!r} with its exclusions is "
                               f"longer than X's {limit}-character query limit")
        queries.append(_render(group, suffix))
        group = [term]
    if group:
        queries.append(_render(group, suffix))
    return queries


# tweets --------------------------------------------------------------------------
@dataclass
class Page:
    """One response page: posts parsed, malformed tweets described, paging info."""

    posts: list[Post] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    newest_id: str | None = None
    next_token: str | None = None


def newer(a: str | None, b: str | None) -> str | None:
    """The larger of two tweet ids (ids are numeric strings ordered by time)."""
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b


def users_by_id(includes: object) -> dict[str, Mapping[str, Any]]:
    users = includes.get("users") if isinstance(includes, Mapping) else None
    if not isinstance(users, list):
        return {}
    return {u["id"]: u for u in users if isinstance(u, Mapping) and isinstance(u.get("id"), str)}


def expand_urls(text: str, entities: object) -> str:
    """Replace t.co links with the expanded URLs the entities carry."""
    urls = entities.get("urls") if isinstance(entities, Mapping) else None
    if not isinstance(urls, list):
        return text
    for item in urls:
        if not isinstance(item, Mapping):
            continue
        short, full = item.get("url"), item.get("unwound_url") or item.get("expanded_url")
        if isinstance(short, str) and isinstance(full, str) and short:
            text = text.replace(short, full)
    return text


def tweet_to_post(tweet: object, users: Mapping[str, Mapping[str, Any]], *, source: str,
                  kind: PostKind = "mention", brand: str | None = None) -> Post:
    """One v2 tweet object (with the page's ``includes.users``) as a Post."""
    if not isinstance(tweet, Mapping):
        raise PostError("tweet is not an object")
    tweet_id = tweet.get("id")
    if not isinstance(tweet_id, str) or not _ID.match(tweet_id):
        raise PostError("tweet without a valid id")
    note = tweet.get("note_tweet")
    body = note if isinstance(note, Mapping) and isinstance(note.get("text"), str) else tweet
    text = body.get("text")
    if not isinstance(text, str):
        raise PostError(f"tweet {tweet_id}: no text")
    author_id = tweet.get("author_id")
    if not isinstance(author_id, str) or not author_id:
        raise PostError(f"tweet {tweet_id}: no author_id")
    created = tweet.get("created_at")
    try:
        created_at = parse_time(created) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    if created_at is None:
        raise PostError(f"tweet {tweet_id}: no valid created_at")
    user = users.get(author_id, {})
    username = user.get("username")
    metrics = user.get("public_metrics")
    followers = metrics.get("followers_count") if isinstance(metrics, Mapping) else None
    if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
        followers = None
    handle = username if isinstance(username, str) and username else author_id
    url_user = username if isinstance(username, str) and username else "i/web"
    lang, client = tweet.get("lang"), tweet.get("source")
    return Post(
        id=tweet_id, source=source, kind=kind, brand=brand,
        author=Author(id=author_id, handle=handle, followers=followers),
        text=expand_urls(text, body.get("entities"))[:MAX_TEXT],
        created_at=created_at,
        url=f"https://x.com/{url_user}/status/{tweet_id}",
        lang=lang if isinstance(lang, str) and lang and lang != "und" else None,
        client=client if isinstance(client, str) and client else None,
    )


def parse_page(body: object, *, source: str, kind: PostKind = "mention",
               brand: str | None = None) -> Page:
    """A search/timeline response body -> Page. Raises PostError if it is not v2 JSON."""
    if not isinstance(body, Mapping):
        raise PostError("response is not a JSON object")
    data = body.get("data", [])
    if not isinstance(data, list):
        raise PostError("response 'data' is not a list")
    meta = body.get("meta")
    if not isinstance(meta, Mapping):
        meta = {}
    page = Page()
    users = users_by_id(body.get("includes"))
    for tweet in data:
        try:
            post = tweet_to_post(tweet, users, source=source, kind=kind, brand=brand)
        except PostError as exc:
            page.errors.append(str(exc))
            if isinstance(tweet, Mapping) and isinstance(tweet.get("id"), str) \
                    and _ID.match(tweet["id"]):
                page.newest_id = newer(page.newest_id, tweet["id"])
            continue
        page.posts.append(post)
        page.newest_id = newer(page.newest_id, post.id)
    newest, token = meta.get("newest_id"), meta.get("next_token")
    if isinstance(newest, str) and _ID.match(newest):
        page.newest_id = newer(page.newest_id, newest)
    page.next_token = token if isinstance(token, str) and token else None
    return page


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One filtered-stream message: a tweet with its matching rule tags, or a problem."""

    tweet: object = None
    users: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    problem: str | None = None


def stream_item(line: bytes) -> StreamItem:
    """Parse one non-empty stream line. Raises PostError if it is not a JSON object."""
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise PostError(f"stream line is not JSON: {exc}") from None
    if not isinstance(body, Mapping):
        raise PostError("stream line is not a JSON object")
    if "data" not in body:
        return StreamItem(problem=problem_text(None, body))
    rules = body.get("matching_rules")
    rules = rules if isinstance(rules, list) else []
    tags = tuple(tag for rule in rules
                 if isinstance(rule, Mapping) and isinstance(tag := rule.get("tag"), str))
    return StreamItem(body["data"], users_by_id(body.get("includes")), tags)


def snowflake_time(tweet_id: str) -> datetime:
    """When a tweet id was minted (ids embed milliseconds since the X epoch)."""
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + _EPOCH_MS) / 1000, UTC)


# errors --------------------------------------------------------------------------
def problem_text(status: int | None, body: object) -> str:
    """A one-line description of an API error body (RFC 7807 problem or v2 errors list).

    E.g. ``HTTP 403 Client Forbidden (client-not-enrolled): When authenticating...``.
    """
    prefix = f"HTTP {status}" if status is not None else "X API"
    if not isinstance(body, Mapping):
        return prefix
    parts: list[str] = []
    items = [body, *(e for e in body.get("errors", ()) if isinstance(e, Mapping))] \
        if isinstance(body.get("errors", ()), list) else [body]
    for item in items:
        title, reason = item.get("title"), item.get("reason")
        detail = item.get("detail") or item.get("message")
        text = " ".join(str(x) for x in (title,) if x)
        if reason:
            text += f" ({reason})"
        if detail and detail != title:
            text += f": {detail}" if text else str(detail)
        if text and text not in parts:
            parts.append(text)
    return f"{prefix} " + "; ".join(parts) if parts else prefix


def rate_headers(headers: Mapping[str, str]) -> tuple[int | None, float | None]:
    """(x-rate-limit-remaining, x-rate-limit-reset epoch seconds), None where absent."""
    def number(name: str) -> float | None:
        try:
            return float(headers[name])
        except (KeyError, TypeError, ValueError):
            return None
    remaining = number("x-rate-limit-remaining")
    return (None if remaining is None else int(remaining)), number("x-rate-limit-reset")


class ApiError(Exception):
    """A failed API call. kind: rate | auth | transient | rejected."""

    def __init__(self, kind: str, message: str, status: int = 0,
                 reset: float | None = None) -> None:
        super().__init__(message)
        self.kind, self.status, self.reset = kind, status, reset


def classify(status: int, headers: Mapping[str, str], body: object) -> ApiError:
    """429 -> rate (with x-rate-limit-reset), 401/403 -> auth, 5xx -> transient, else rejected."""
    text = problem_text(status, body)
    if status == 429:
        return ApiError("rate", text, status, rate_headers(headers)[1])
    if status in (401, 403):
        return ApiError("auth", f"X API refused the credentials: {text}", status)
    if status >= 500 or status in (408, 420):
        return ApiError("transient", text, status)
    return ApiError("rejected", f"X API rejected the request: {text}", status)


# cursors -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cursor:
    """What one feed remembers: ``since_id``, and a backlog being paged through."""

    since_id: str | None = None
    query: str = ""
    next_token: str | None = None
    newest_id: str | None = None  # newest id seen when the backlog began

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in (("since_id", self.since_id), ("query", self.query),
                                             ("next_token", self.next_token),
                                             ("newest_id", self.newest_id)) if v})

    @classmethod
    def from_json(cls, raw: str) -> Cursor:
        """Raises ValueError if ``raw`` is not a cursor this module wrote."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("cursor is not an object")
        try:
            cursor = cls(**{k: str(v) for k, v in data.items()})
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        for value in (cursor.since_id, cursor.newest_id):
            if value is not None and not _ID.match(value):
                raise ValueError(f"not a tweet id: {value!r}")
        return cursor
