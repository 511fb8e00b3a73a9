"""Runtime state shared by every outbound detector: watchlist, approved-posts ledger, trends.

Admins add current events to the **watchlist** through the HTTP API (``/watchlist``);
the publishing workflow registers what it is about to post in the **ledger**
(``/approved-posts`` or a watched folder). Both are persisted in the daemon's SQLite
store and kept in memory here. The engine owns one :class:`OutboundRuntime`, bound to
its store, and hands it to every detector it builds through their
:class:`~monitor.detect.base.DetectorContext`; the daemon's HTTP API edits the same
object (tests and the ``screen`` command build their own). The engine also feeds
every inbound post to its :class:`~.trending.TrendingContext` (``trending``), which
the outbound screen asks what the live stream says about a post's hashtags and words.

Ledger similarity: both texts are normalised (links, punctuation and emoji dropped,
case folded); the score is the larger of the Jaccard index of their word 1- and
2-gram shingles and difflib's ratio of the normalised strings, so a changed link, an
added emoji or a reworded clause still match while a different post does not.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.clock import parse_time
from monitor.config.strict import parse_duration
from monitor.detect.outbound.context import Watch
from monitor.detect.outbound.text import norm
from monitor.detect.outbound.trending import TrendingContext

if TYPE_CHECKING:
    from monitor.store.api import OutboundStore

DEFAULT_WATCH_LIFE = timedelta(days=14)
KEEP_EXPIRED = timedelta(days=30)  # expired approved posts still tell "auto" the ledger is used
MAX_TERM = 200
MAX_APPROVED_TEXT = 10_000
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def _opt_text(data: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{key}: longer than {limit} characters")
    return value.strip()


def _until(data: Mapping[str, Any], at_key: str, in_key: str, now: datetime,
           default: timedelta | None) -> datetime | None:
    if at_key in data and in_key in data:
        raise ValueError(f"give {at_key} or {in_key}, not both")
    if at_key in data:
        raw = data[at_key]
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise ValueError(f"{at_key}: must be an ISO-8601 time or null")
        try:
            return parse_time(raw)
        except ValueError:
            raise ValueError(f"{at_key}: not an ISO-8601 time: {raw!r}") from None
    if in_key in data:
        try:
            life = parse_duration(data[in_key])
        except ValueError as exc:
            raise ValueError(f"{in_key}: {exc}") from None
        if life <= timedelta(0):
            raise ValueError(f"{in_key}: must be longer than 0s")
        return now + life
    return None if default is None else now + default


def _check_keys(data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(allowed))})")


@dataclass(frozen=True, slots=True)
class WatchEntry:
    id: str
    term: str
    created_at: datetime
    expires_at: datetime | None = None
    brand: str | None = None
    note: str = ""
    weight: float | None = None

    def active(self, now: datetime, brand: str | None = None) -> bool:
        if self.expires_at is not None and now >= self.expires_at:
            return False
        return brand is None or self.brand is None or self.brand == brand

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "term": self.term, "brand": self.brand, "note": self.note,
                "weight": self.weight, "created_at": _iso(self.created_at),
                "expires_at": _iso(self.expires_at)}

    @classmethod
    def from_json(cls, data: object, now: datetime) -> WatchEntry:
        """Validate an API body: ``term`` plus optional ``brand``, ``note``, ``weight``,
        ``expires_at`` (ISO, or null: never) or ``expires_in`` (``"48h"``; default 14d)."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object with a 'term'")
        _check_keys(data, {"term", "brand", "note", "weight", "expires_at", "expires_in"})
        term = _opt_text(data, "term", MAX_TERM)
        if term is None:
            raise ValueError("term: required")
        weight = data.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)
                                   or not 0 <= weight <= 10):
            raise ValueError("weight: must be a number from 0 to 10")
        expires = _until(data, "expires_at", "expires_in", now, DEFAULT_WATCH_LIFE)
        entry_id = "w-" + hashlib.sha256(f"{term}|{now.isoformat()}".encode()).hexdigest()[:12]
        return cls(id=entry_id, term=term, created_at=now, expires_at=expires,
                   brand=_opt_text(data, "brand", 200), note=_opt_text(data, "note", 500) or "",
                   weight=None if weight is None else float(weight))

    @classmethod
    def from_stored(cls, body: Mapping[str, Any]) -> WatchEntry:
        return cls(id=body["id"], term=body["term"], created_at=parse_time(body["created_at"]),
                   expires_at=parse_time(body["expires_at"]) if body.get("expires_at") else None,
                   brand=body.get("brand"), note=body.get("note") or "",
                   weight=body.get("weight"))


@dataclass(frozen=True, slots=True)
class ApprovedPost:
    id: str
    text: str
    created_at: datetime
    valid_until: datetime
    brand: str | None = None
    source: str = "api"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "brand": self.brand, "text": self.text, "source": self.source,
                "created_at": _iso(self.created_at), "valid_until": _iso(self.valid_until)}

    @classmethod
    def from_json(cls, data: object, now: datetime, validity: timedelta,
                  source: str = "api") -> ApprovedPost:
        """Validate ``{"text", "brand"?, "id"?, "valid_until"? | "valid_for"?}``."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object with a 'text'")
        _check_keys(data, {"id", "text", "brand", "valid_until", "valid_for"})
        text = _opt_text(data, "text", MAX_APPROVED_TEXT)
        if text is None:
            raise ValueError("text: required")
        brand = _opt_text(data, "brand", 200)
        until = _until(data, "valid_until", "valid_for", now, validity) or now + validity
        item_id = _opt_text(data, "id", 200) or "a-" + hashlib.sha256(
            f"{brand}|{text}".encode()).hexdigest()[:16]
        return cls(id=item_id, text=text, created_at=now, valid_until=until, brand=brand,
                   source=source)

    @classmethod
    def from_stored(cls, body: Mapping[str, Any]) -> ApprovedPost:
        return cls(id=body["id"], text=body["text"], created_at=parse_time(body["created_at"]),
                   valid_until=parse_time(body["valid_until"]), brand=body.get("brand"),
                   source=body.get("source") or "api")


def ledger_form(text: str) -> str:
    return norm(_URL.sub(" ", text))


def _shingles(form: str) -> frozenset[str]:
    words = [w for w in form.split() if w.isalnum()]
    return frozenset(words) | frozenset(f"{a} {b}" for a, b in itertools.pairwise(words))


def similarity(a: str, b: str) -> float:
    """How close two posts are, 0..1 (see the module docstring)."""
    fa, fb = ledger_form(a), ledger_form(b)
    if not fa or not fb:
        return 1.0 if fa == fb else 0.0
    sa, sb = _shingles(fa), _shingles(fb)
    jaccard = len(sa & sb) / len(sa | sb) if sa | sb else 0.0
    matcher = difflib.SequenceMatcher(None, fa, fb, autojunk=False)
    ratio = matcher.ratio() if matcher.real_quick_ratio() > jaccard else 0.0
    return max(jaccard, ratio)


@dataclass(frozen=True, slots=True)
class LedgerMatch:
    best: ApprovedPost | None
    score: float


class OutboundRuntime:
    """Watchlist and ledger in memory, written through to the store when bound."""

    def __init__(self, validity: timedelta = timedelta(days=7)) -> None:
        self.validity = validity  # life of an approved post that does not give its own
        self.store: OutboundStore | None = None
        self.watch: dict[str, WatchEntry] = {}
        self.approved: dict[str, ApprovedPost] = {}
        self._matchers: dict[str, Watch] = {}
        self.trending = TrendingContext()  # fed by the engine with every inbound post

    def reset(self) -> None:
        self.store = None
        self.watch.clear()
        self.approved.clear()
        self._matchers.clear()
        self.trending.clear()

    def bind(self, store: OutboundStore) -> None:
        """Use ``store`` from now on and load what it holds."""
        self.reset()
        self.store = store
        for body in store.outbound_watch_entries():
            entry = WatchEntry.from_stored(body)
            self.watch[entry.id] = entry
        for body in store.approved_posts():
            item = ApprovedPost.from_stored(body)
            self.approved[item.id] = item

    # watchlist -------------------------------------------------------------------
    def add_watch(self, entry: WatchEntry) -> WatchEntry:
        if self.store is not None:
            self.store.add_outbound_watch(entry.id, entry.to_json(), entry.expires_at)
        self.watch[entry.id] = entry
        return entry

    def remove_watch(self, entry_id: str) -> bool:
        found = self.watch.pop(entry_id, None) is not None
        self._matchers.pop(entry_id, None)
        if self.store is not None:
            found = self.store.delete_outbound_watch(entry_id) or found
        return found

    def watchlist(self, now: datetime, brand: str | None = None, *,
                  expired: bool = False) -> list[WatchEntry]:
        entries = [e for e in self.watch.values()
                   if (brand is None or e.brand in (None, brand)) and (expired or e.active(now))]
        return sorted(entries, key=lambda e: e.created_at)

    def watches(self, brand: str, now: datetime) -> list[Watch]:
        """The active entries for ``brand`` as matchers (built once per entry)."""
        found = []
        for entry in self.watch.values():
            if not entry.active(now, brand):
                continue
            matcher = self._matchers.get(entry.id)
            if matcher is None:
                matcher = self._matchers[entry.id] = Watch.of(entry.term, entry.weight,
                                                              entry.note, entry.id)
            found.append(matcher)
        return found

    # ledger ----------------------------------------------------------------------
    def approve(self, item: ApprovedPost) -> tuple[ApprovedPost, bool]:
        """Register an approved post; (item, False) when the same id was known (updated)."""
        known = self.approved.get(item.id)
        if known is not None and known.text == item.text and known.brand == item.brand:
            item = replace(item, created_at=known.created_at)
        if self.store is not None:
            self.store.add_approved_post(item.id, item.brand, item.to_json(), item.valid_until)
        self.approved[item.id] = item
        return item, known is None

    def approved_posts(self, now: datetime, brand: str | None = None, *,
                       expired: bool = False) -> list[ApprovedPost]:
        items = [a for a in self.approved.values()
                 if (brand is None or a.brand in (None, brand))
                 and (expired or a.valid_until > now)]
        return sorted(items, key=lambda a: a.created_at)

    def ledger_used(self, brand: str) -> bool:
        return any(a.brand in (None, brand) for a in self.approved.values())

    def match(self, brand: str, text: str, at: datetime) -> LedgerMatch:
        best: ApprovedPost | None = None
        score = 0.0
        for item in self.approved.values():
            if item.brand not in (None, brand) or at >= item.valid_until:
                continue
            value = similarity(text, item.text)
            if value > score:
                best, score = item, value
        return LedgerMatch(best, round(score, 3))

    def prune(self, now: datetime) -> int:
        """Forget approved posts expired over 30 days ago and expired watch entries."""
        old = [k for k, a in self.approved.items() if a.valid_until < now - KEEP_EXPIRED]
        for key in old:
            del self.approved[key]
        gone = [k for k, e in self.watch.items() if e.expires_at and e.expires_at < now]
        for key in gone:
            self.remove_watch(key)
        if self.store is not None:
            self.store.prune_approved_posts(now - KEEP_EXPIRED)
        return len(old) + len(gone)

