"""Request parsing for the HTTP API, kept free of aiohttp so it is easy to test
(authentication is in :mod:`monitor.http.auth`).

Everything here either returns validated values or raises :class:`ApiError`, which
the server turns into a JSON ``{"error": ...}`` response with the given status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from monitor.clock import parse_time
from monitor.detect.outbound.runtime import ApprovedPost, WatchEntry
from monitor.errors import PostError
from monitor.model import Post

#: Content types read as newline-delimited JSON (one post per line).
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
DEFAULT_ALERT_LIMIT = 100
ALERT_STATES = ("firing", "acknowledged", "resolved", "silenced")
MAX_ALERT_LIMIT = 1000
_BODY_SHAPES = 'a JSON array of posts, {"posts": [...]} or one post object'
_OFFSET_LOST_PLUS = re.compile(r"^(.*\d) (\d{2}(?::?\d{2})?)$")


class ApiError(Exception):
    """A client error: becomes ``{"error": message, **extra}`` with ``status``."""

    def __init__(self, status: int, message: str, extra: dict[str, Any] | None = None, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


# /ingest bodies ----------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _fast_loads(text: str) -> Any:
    """orjson where it can (several times faster on /ingest batches); the standard
    parser otherwise, which also words the error the sender sees (and accepts what
    orjson refuses but the validation reports better: lone surrogates, big numbers)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _loads(text)


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _json_problem(exc: Exception, *, with_line: bool) -> str:
    if isinstance(exc, json.JSONDecodeError):
        where = (f"line {exc.lineno} column {exc.colno}" if with_line
                 else f"column {exc.colno}")
        return f"invalid JSON: {exc.msg} at {where}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {exc}"


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte offset {exc.start})"
                       ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ApiError(400, f"request body is empty: send {_BODY_SHAPES}")
    return text


@dataclass(frozen=True, slots=True)
class _Item:
    value: object = None
    line: int | None = None  # NDJSON line number (1-based)
    problem: str | None = None  # the line was not valid JSON


def _json_items(text: str) -> list[_Item]:
    try:
        data = _fast_loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, _json_problem(exc, with_line=True)) from None
    if isinstance(data, list):
        return [_Item(v) for v in data]
    if isinstance(data, dict) and "posts" in data:
        extra = sorted(str(k) for k in data if k != "posts")
        if extra:
            raise ApiError(400, f"unknown field(s) next to 'posts': {', '.join(extra)}")
        if not isinstance(data["posts"], list):
            raise ApiError(400, "posts: must be a JSON array of post objects")
        return [_Item(v) for v in data["posts"]]
    if isinstance(data, dict):
        return [_Item(data)]
    raise ApiError(400, f"request body must be {_BODY_SHAPES}, not {_json_type(data)}")


def _ndjson_items(text: str) -> list[_Item]:
    items: list[_Item] = []
    # split on "\n" only: str.splitlines() would also split on U+2028 etc., which
    # JSON allows unescaped inside strings
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            items.append(_Item(_fast_loads(line), line=number))
        except (ValueError, RecursionError) as exc:
            items.append(_Item(line=number, problem=_json_problem(exc, with_line=False)))
    return items


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _bad_unicode(value: object, path: str = "") -> str | None:
    """The field holding a lone surrogate (from a ``\\ud800`` escape), if any.

    SQLite cannot store such strings, so they are rejected with the other
    validation errors instead of failing the whole batch in the store.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "<value>"
        return None
    if isinstance(value, Mapping):
        for key, sub in value.items():
            found = _bad_unicode(sub, f"{path}.{key}" if path else str(key))
            if found:
                return found
    return None


def _bad_post_unicode(post: Post) -> str | None:
    """The field of ``post`` holding a lone surrogate, if any (see _bad_unicode)."""
    fields = (("id", post.id), ("source", post.source), ("text", post.text),
              ("author.id", post.author.id), ("author.handle", post.author.handle),
              ("brand", post.brand), ("url", post.url), ("lang", post.lang),
              ("client", post.client))
    for name, value in fields:
        if value is not None and not value.isascii() and _bad_unicode(value):
            return name
    return None


def parse_posts(body: bytes, *, ndjson: bool, max_batch: int,
                latest: datetime | None = None) -> list[Post]:
    """Decode and validate every post of an /ingest body; all or nothing.

    Raises ApiError 400 for bad JSON or any invalid post (``errors`` lists each
    one with its ``index`` and, for NDJSON, its ``line``), 413 for too many posts.
    ``latest``: posts created after this time are invalid (``created_at`` in the
    future beyond the daemon's ``max_future``).
    """
    text = _text(body)
    items = _ndjson_items(text) if ndjson else _json_items(text)
    if len(items) > max_batch:
        raise ApiError(413, f"too many posts in one request: {len(items)} "
                            f"(max_batch is {max_batch}); split the batch")
    posts: list[Post] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        problem = item.problem
        if problem is None:
            try:
                post = Post.from_json(item.value)
            except PostError as exc:
                problem = str(exc)
            else:
                bad = _bad_post_unicode(post)
                if bad is not None:
                    problem = f"{bad}: contains invalid Unicode (a lone surrogate)"
                elif latest is not None and post.created_at > latest:
                    problem = (f"created_at: {post.created_at.isoformat()} is in the future "
                               f"(the latest accepted now is {latest.isoformat()}); fix "
                               f"the sender's clock or time zone")
                else:
                    posts.append(post)
        if problem is not None:
            error: dict[str, Any] = {"index": index, "error": problem}
            if item.line is not None:
                error["line"] = item.line
            errors.append(error)
    if errors:
        first = errors[0]
        raise ApiError(400, f"{len(errors)} of {len(items)} post(s) invalid, nothing was "
                            f"stored (first: post {first['index']}: {first['error']})",
                       {"errors": errors})
    return posts


# /alerts query -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertQuery:
    since: datetime | None = None
    brand: str | None = None
    limit: int = DEFAULT_ALERT_LIMIT
    status: str | None = None  # firing | acknowledged | resolved | silenced
    rule: str | None = None


def _parse_since(value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError:
        pass
    # an unencoded "+00:00" offset arrives as " 00:00" ("+" means space in a query)
    fixed = _OFFSET_LOST_PLUS.match(value.strip())
    if fixed:
        try:
            return parse_time(f"{fixed.group(1)}+{fixed.group(2)}")
        except ValueError:
            pass
    raise ApiError(400, f"since: not an ISO-8601 time: {value!r} "
                        "(e.g. 2024-05-01T12:00:00Z; URL-encode '+' as %2B)")


def parse_alert_query(query: Mapping[str, str], repeated: set[str]) -> AlertQuery:
    """Validate ``since``, ``brand``, ``rule``, ``limit`` and ``status`` (``state`` is the
    same, kept for old clients); unknown or repeated keys are errors."""
    allowed = ("since", "brand", "rule", "limit", "status", "state")
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)} "
                            f"(allowed: {', '.join(allowed)})")
    if "status" in query and "state" in query:
        raise ApiError(400, "give status or state (the same filter), not both")
    key = "status" if "status" in query else "state"
    status = query.get(key)
    if status is not None and status not in ALERT_STATES:
        raise ApiError(400, f"{key}: must be one of {', '.join(ALERT_STATES)}, not {status!r}")
    if repeated:
        raise ApiError(400, f"query parameter(s) given more than once: "
                            f"{', '.join(sorted(repeated))}")
    since = _parse_since(query["since"]) if "since" in query else None
    for name in ("brand", "rule"):
        value = query.get(name)
        if value is not None and not value.strip():
            raise ApiError(400, f"{name}: must not be empty")
    limit = DEFAULT_ALERT_LIMIT
    if "limit" in query:
        raw = query["limit"].strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6
                and 1 <= int(raw) <= MAX_ALERT_LIMIT):
            raise ApiError(400, f"limit: must be an integer from 1 to {MAX_ALERT_LIMIT}, "
                                f"not {query['limit']!r}")
        limit = int(raw)
    return AlertQuery(since=since, brand=query.get("brand"), limit=limit, status=status,
                      rule=query.get("rule"))


# /watchlist and /approved-posts (outbound screening) ---------------------------------
def parse_json_body(body: bytes) -> Any:
    """Decode a JSON request body (UTF-8, no NaN/Infinity) or raise ApiError 400."""
    text = _text(body)
    try:
        return _loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, _json_problem(exc, with_line=True)) from None


def _items_of(data: Any, key: str) -> tuple[list[Any], bool]:
    """(items, single): one object, a JSON array, or ``{key: [...]}``."""
    if isinstance(data, list):
        return data, False
    if isinstance(data, dict) and set(data) == {key} and isinstance(data[key], list):
        return data[key], False
    return [data], True


def _validated(items: list[Any], build: Any, max_batch: int) -> list[Any]:
    if not items:
        raise ApiError(400, "nothing to add: the list is empty")
    if len(items) > max_batch:
        raise ApiError(413, f"too many items in one request: {len(items)} "
                            f"(max_batch is {max_batch})")
    built: list[Any] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            built.append(build(item))
        except ValueError as exc:
            errors.append({"index": index, "error": str(exc)})
    if errors:
        raise ApiError(400, f"{len(errors)} of {len(items)} item(s) invalid, nothing was "
                            f"added (first: item {errors[0]['index']}: {errors[0]['error']})",
                       {"errors": errors})
    return built


def parse_watch_entries(body: bytes, now: datetime, max_batch: int
                        ) -> tuple[list[WatchEntry], bool]:
    """``{"term": ..., "brand"?, "note"?, "weight"?, "expires_in"?|"expires_at"?}``, a
    list of them or ``{"entries": [...]}``; returns (entries, body was one object)."""
    items, single = _items_of(parse_json_body(body), "entries")
    built = _validated(items, lambda item: WatchEntry.from_json(item, now), max_batch)
    return built, single


def parse_approved_posts(body: bytes, now: datetime, validity: timedelta, max_batch: int
                         ) -> tuple[list[ApprovedPost], bool]:
    """``{"text": ..., "brand"?, "id"?, "valid_for"?|"valid_until"?}``, a list of them or
    ``{"posts": [...]}``; returns (posts, body was one object)."""
    items, single = _items_of(parse_json_body(body), "posts")
    built = _validated(items, lambda item: ApprovedPost.from_json(item, now, validity),
                       max_batch)
    return built, single


def parse_outbound_query(query: Mapping[str, str], repeated: set[str]
                         ) -> tuple[str | None, bool]:
    """``brand`` and ``expired`` (``true``: include expired items) of a GET."""
    unknown = sorted(set(query) - {"brand", "expired"})
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)} "
                            "(allowed: brand, expired)")
    if repeated:
        raise ApiError(400, f"query parameter(s) given more than once: "
                            f"{', '.join(sorted(repeated))}")
    brand = query.get("brand")
    if brand is not None and not brand.strip():
        raise ApiError(400, "brand: must not be empty")
    expired = query.get("expired", "false").strip().lower()
    if expired not in ("true", "false", "1", "0"):
        raise ApiError(400, f"expired: must be true or false, not {query['expired']!r}")
    return brand, expired in ("true", "1")
