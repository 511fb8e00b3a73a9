"""Immutable values that flow through the pipeline: Post -> Signal -> Alert."""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from monitor.clock import parse_time
from monitor.errors import PostError

PostKind = Literal["mention", "outbound"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
MAX_TEXT = 10_000
MAX_FOLLOWERS = 10**12  # beyond any real audience (and within the store's 64-bit integers)
_ID_RE = re.compile(r"^[\w.:@/+=-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Author:
    id: str
    handle: str
    followers: int | None = None


_POST_FIELDS = frozenset({"id", "source", "kind", "brand", "author", "text", "created_at",
                          "url", "lang", "client"})


@dataclass(frozen=True, slots=True)
class Post:
    """One post as normalised from any source (see DESIGN.md, Post JSONL)."""

    id: str
    source: str
    kind: PostKind
    author: Author
    text: str
    created_at: datetime
    brand: str | None = None
    url: str | None = None
    lang: str | None = None
    client: str | None = None

    @property
    def key(self) -> str:
        """Identity used for dedup across sources and restarts."""
        return f"{self.source}:{self.id}"

    @classmethod
    def from_json(cls, data: object) -> Post:
        """Validate one decoded JSON object; raise PostError naming the field."""
        if not isinstance(data, Mapping):
            raise PostError("post must be a JSON object")
        unknown = sorted(data.keys() - _POST_FIELDS)
        if unknown:
            raise PostError(f"unknown field(s): {', '.join(map(str, unknown))}")
        post_id = _str(data, "id")
        if not _ID_RE.match(post_id):
            raise PostError("id: must be 1-200 characters of letters, digits or .:@/+=-_")
        kind = data.get("kind", "mention")
        if kind not in ("mention", "outbound"):
            raise PostError("kind: must be 'mention' or 'outbound'")
        author_raw = data.get("author")
        if not isinstance(author_raw, Mapping):
            raise PostError("author: must be an object with id and handle")
        followers = author_raw.get("followers")
        if followers is not None and (
            isinstance(followers, bool) or not isinstance(followers, int) or followers < 0
        ):
            raise PostError("author.followers: must be a non-negative integer")
        if followers is not None and followers > MAX_FOLLOWERS:
            raise PostError(f"author.followers: {followers} is more than {MAX_FOLLOWERS:,}")
        author = Author(
            id=_str(author_raw, "id", prefix="author."),
            handle=_str(author_raw, "handle", prefix="author."),
            followers=followers,
        )
        text = data.get("text")
        if not isinstance(text, str):
            raise PostError("text: must be a string")
        if len(text) > MAX_TEXT:
            raise PostError(f"text: longer than {MAX_TEXT} characters")
        try:
            created = parse_time(_str(data, "created_at"))
        except ValueError as exc:
            raise PostError(f"created_at: not an ISO-8601 time ({exc})") from None
        return cls(
            id=post_id,
            source=_str(data, "source"),
            kind=kind,
            author=author,
            text=text,
            created_at=created,
            brand=_opt_str(data, "brand"),
            url=_opt_str(data, "url"),
            lang=_opt_str(data, "lang"),
            client=_opt_str(data, "client"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "author": {"id": self.author.id, "handle": self.author.handle},
            "text": self.text,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }
        if self.author.followers is not None:
            out["author"]["followers"] = self.author.followers
        for name in ("brand", "url", "lang", "client"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _str(data: Mapping[str, Any], key: str, *, prefix: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PostError(f"{prefix}{key}: required, must be a non-empty string")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PostError(f"{key}: must be a string")
    return value


@dataclass(frozen=True, slots=True)
class Signal:
    """What a detector reports: something unusual (or its end) for one brand.

    ``key`` distinguishes independent occurrences of the same rule and brand
    (e.g. the id of an outbound post); ``details`` is the explanation shown to
    people (observed vs expected, top terms, top posts...), JSON-serialisable; its
    ``headline`` (plain words, see :attr:`Alert.headline`) comes first in every
    notification. ``update`` numbers the updates of an episode that is still firing
    (a digest that grew: notified as "Updated: ..."); 0 is the firing that opens it.
    """

    rule: str
    kind: str
    brand: str
    at: datetime
    state: Literal["firing", "resolved"]
    summary: str
    key: str = ""
    severity: Severity | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    update: int = 0

    @property
    def dedup_key(self) -> str:
        return f"{self.rule}|{self.brand}|{self.key}"


@dataclass(frozen=True, slots=True)
class Alert:
    """A notification decided by the router, stored before it is sent."""

    id: str
    dedup_key: str
    rule: str
    kind: str
    brand: str
    severity: Severity
    state: Literal["firing", "resolved"]
    title: str
    summary: str
    created_at: datetime
    channels: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """What happened, in plain words, first in every notification: the detector's
        ``details["headline"]``, else the summary without its ``"<brand>: "`` prefix."""
        try:
            found = self.details.get("headline") if isinstance(self.details, Mapping) else None
        except Exception:  # details decoded from a broken row: the summary still reads
            found = None
        if not isinstance(found, str) or not found.strip():
            found = " ".join(str(self.summary).split()).removeprefix(f"{self.brand}: ")
        text = " ".join(found.split()) or self.title
        return text[:1].upper() + text[1:]  # "@handle" and "#tag" stay as they are

    def to_json(self) -> dict[str, Any]:
        """The alert as JSON (webhooks, ``jsonl://``, the API): fields are only ever added,
        never removed or renamed (receivers rely on them)."""
        return {
            "id": self.id,
            "dedup_key": self.dedup_key,
            "rule": self.rule,
            "kind": self.kind,
            "brand": self.brand,
            "severity": self.severity,
            "state": self.state,
            "title": self.title,
            "summary": self.summary,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "channels": list(self.channels),
            "details": dict(self.details),
            "headline": self.headline,
        }


SILENCE_MATCHERS = ("rule", "brand", "kind", "severity")


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    starts_at: datetime
    ends_at: datetime
    matchers: Mapping[str, str] = field(default_factory=dict)
    created_by: str = ""
    comment: str = ""
    created_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(fnmatch.fnmatchcase(labels.get(k, "").casefold(), pattern.casefold())
                   for k, pattern in self.matchers.items())

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, **dict(self.matchers),
            "starts_at": _iso(self.starts_at), "ends_at": _iso(self.ends_at),
            "created_by": self.created_by, "comment": self.comment,
        }
        if now is not None:
            out["active"] = self.active(now)
        return out

    @classmethod
    def from_json(cls, data: object, now: datetime) -> Silence:
        """``{"rule"|"brand"|"kind"|"severity": pattern (at least one), "for": "2h" or
        "ends_at": ISO, "starts_at"?: ISO, "created_by"?, "comment"?}``."""
        from monitor.config.strict import parse_duration

        if not isinstance(data, Mapping):
            raise ValueError("a silence must be a JSON object")
        allowed = {*SILENCE_MATCHERS, "for", "starts_at", "ends_at", "created_by", "comment"}
        unknown = sorted(str(k) for k in set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        matchers: dict[str, str] = {}
        for key in SILENCE_MATCHERS:
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key}: must be a non-empty string")
            matchers[key] = value
        if not matchers:
            raise ValueError(f"give at least one matcher: {', '.join(SILENCE_MATCHERS)}")
        starts = _time(data, "starts_at") or now
        if ("for" in data) == ("ends_at" in data):
            raise ValueError("give exactly one of 'for' (a duration such as 2h) or 'ends_at'")
        if "for" in data:
            duration = parse_duration(data["for"])
            ends = starts + duration
        else:
            ends = _time(data, "ends_at") or now
        if ends <= starts:
            raise ValueError("the silence must end after it starts")
        texts = {k: data.get(k, "") for k in ("created_by", "comment")}
        for key, value in texts.items():
            if not isinstance(value, str):
                raise ValueError(f"{key}: must be a string")
        return cls(id=secrets.token_hex(8), starts_at=starts, ends_at=ends, matchers=matchers,
                   created_by=str(texts["created_by"]), comment=str(texts["comment"]),
                   created_at=now)


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be an ISO-8601 time")
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{key}: not an ISO-8601 time: {value!r}") from None
