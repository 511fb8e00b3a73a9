"""Digests: one running alert per brand and rule for signals about single posts.

A per-post detector (intent, influencer) raises one signal per post. A rule with
``mode: digest`` wraps it: its posts are gathered into an **episode** per brand and
rule, and people get one alert for the episode instead of one per post:

- it **opens** once ``min_posts`` signalled posts arrived within ``window``: one firing
  alert ("12 customers said they are leaving Acme Air in the last 14 min"), with the
  top posts by reach and their links, the phrases that matched, the sentiment mix;
- while it runs, new posts join it. An **update** ("Updated: ...") goes out once the
  number of distinct authors has grown to ``update_growth`` times (default 1.5) the
  number last notified, but never sooner than ``update_every`` (default 10 min) after
  the last notice: a growing storm is reported every ten minutes, a trickle (or one
  author posting again and again) stays quiet. ``update_every: 0s`` turns updates off;
- it **resolves** (an "all clear" when the rule has ``notify_resolved``) once no
  signalled post arrived for ``window``.

Times are event times: a post's ``created_at`` places it, and the engine's ``now``
(the newest time seen) ends episodes, so a backfill or a replay forms the same
episodes as live traffic. A signalled post dated ``window`` or more behind ``now``
cannot join anything and counts as late (``brandmon_posts_late_total``).

**Restarts.** The whole digest (the open episode with its counts, a bounded set of
authors, the top posts, the phrase counts and what was notified, and the posts
waiting for ``min_posts``) is in ``to_state``; nothing needs observing again. Every
signal's time is a post's time, or a time computed from posts (the end: the last
post + ``window``; an update that was held back: the last notice + ``update_every``),
and ticks only emit what the next post would emit at the same time. So replaying the
posts stored after a checkpoint raises the same signals, hence the same alert ids.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.detect.base import MODES, Detector, EnrichedPost, Mode
from monitor.detect.explain import post_summary
from monitor.model import Signal

MAX_AUTHORS = 10_000  # distinct authors remembered per episode ("10,000+ people")
MAX_PHRASES = 100  # distinct matched phrases counted per episode
LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class DigestParams:
    """A rule's ``digest:`` mapping (see the module doc)."""

    window: timedelta = timedelta(minutes=30)
    min_posts: int = field(default=1, metadata={"min": 1, "max": 1000})
    update_every: timedelta = timedelta(minutes=10)
    update_growth: float = field(default=1.5, metadata={"min": 1.0, "max": 100.0})
    top_posts: int = field(default=5, metadata={"min": 1, "max": 20})

    def problems(self) -> list[tuple[str, str]]:
        if self.window < timedelta(minutes=1):
            return [("window", "must be at least 1m")]
        if self.window > timedelta(days=7):
            return [("window", "must be at most 7d")]
        return []


@dataclass(slots=True)
class _Post:
    """What a digest keeps of one signalled post."""

    at: datetime
    author: str
    reach: int
    label: str
    post: dict[str, Any]
    phrases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def to_state(self) -> dict[str, Any]:
        return {"at": self.at.timestamp(), "author": self.author, "reach": self.reach,
                "label": self.label, "post": self.post, "phrases": list(self.phrases),
                "tags": list(self.tags)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> _Post:
        return cls(_dt(data["at"]), str(data["author"]), int(data["reach"]),
                   str(data["label"]), dict(data["post"]),
                   tuple(str(p) for p in data.get("phrases", ())),
                   tuple(str(t) for t in data.get("tags", ())))


@dataclass(slots=True)
class _Episode:
    started: datetime
    last: datetime
    notified_at: datetime
    count: int = 0
    notified_people: int = 0
    updates: int = 0
    grown_at: datetime | None = None  # when the count reached the growth for an update
    authors: set[str] = field(default_factory=set)
    capped: bool = False
    top: list[_Post] = field(default_factory=list)
    phrases: Counter[str] = field(default_factory=Counter)
    tags: set[str] = field(default_factory=set)
    mix: Counter[str] = field(default_factory=Counter)

    def add(self, item: _Post, keep: int) -> None:
        self.count += 1
        self.started = min(self.started, item.at)
        self.last = max(self.last, item.at)
        if item.author not in self.authors:
            if len(self.authors) < MAX_AUTHORS:
                self.authors.add(item.author)
            else:
                self.capped = True
        for phrase in item.phrases:
            if phrase in self.phrases or len(self.phrases) < MAX_PHRASES:
                self.phrases[phrase] += 1
        self.tags.update(item.tags)
        self.mix[item.label] += 1
        self.top.append(item)  # the highest reach first; on a tie the earlier post
        self.top.sort(key=lambda p: (-p.reach, p.at.timestamp(), p.author))
        del self.top[keep:]

    def to_state(self) -> dict[str, Any]:
        return {"started": self.started.timestamp(), "last": self.last.timestamp(),
                "notified_at": self.notified_at.timestamp(), "count": self.count,
                "notified_people": self.notified_people, "updates": self.updates,
                "grown_at": None if self.grown_at is None else self.grown_at.timestamp(),
                "authors": sorted(self.authors), "capped": self.capped,
                "top": [p.to_state() for p in self.top], "phrases": dict(self.phrases),
                "tags": sorted(self.tags), "mix": dict(self.mix)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> _Episode:
        grown = data.get("grown_at")
        return cls(started=_dt(data["started"]), last=_dt(data["last"]),
                   notified_at=_dt(data["notified_at"]), count=int(data["count"]),
                   notified_people=int(data["notified_people"]), updates=int(data["updates"]),
                   grown_at=None if grown is None else _dt(grown),
                   authors={str(a) for a in data.get("authors", ())},
                   capped=bool(data.get("capped", False)),
                   top=[_Post.from_state(p) for p in data.get("top", ())],
                   phrases=Counter({str(k): int(v) for k, v in data.get("phrases", {}).items()}),
                   tags={str(t) for t in data.get("tags", ())},
                   mix=Counter({str(k): int(v) for k, v in data.get("mix", {}).items()}))


class DigestDetector(Detector):
    """Wraps a per-post detector (``inner``): the same rule and brand, digested."""

    kinds = ("mention", "outbound")  # those of ``inner`` are passed on (see observe)

    def __init__(self, inner: Detector, params: DigestParams) -> None:
        super().__init__(inner.rule, inner.brand, inner.ctx)
        self.inner = inner
        self.digest = params
        self.episode: _Episode | None = None
        self.pending: list[_Post] = []  # signalled posts waiting for min_posts
        self.watermark: datetime | None = None
        self._dirty = False

    # -- posts and time -----------------------------------------------------------
    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        inner = self.inner
        if item.post.kind not in inner.kinds:
            return []
        before = inner.late
        signalled = inner.observe(item, now)
        self.late += inner.late - before
        if not signalled and self.episode is None:
            return []  # the usual post: it joins nothing and nothing is due
        found = [s for s in signalled if s.state == "firing"]
        at = item.post.created_at
        now = max(now, at)
        signals = self._catch_up(now)
        if not found:
            return signals
        window = self.digest.window
        if at <= now - window:
            self.late += 1  # nothing it could still join (the engine reports it)
            return signals
        self._dirty = True
        self.watermark = now if self.watermark is None else max(self.watermark, now)
        entry = self._entry(item, found)
        episode = self.episode
        if episode is not None:
            episode.add(entry, self.digest.top_posts)
            self._note_growth(episode, at)
            return signals + self._catch_up(now)
        newest = max([at, *(p.at for p in self.pending)])
        self.pending = [p for p in self.pending if p.at > newest - window]
        self.pending.append(entry)
        if len(self.pending) < self.digest.min_posts:
            return signals
        episode = _Episode(started=at, last=at, notified_at=at)
        for waiting in sorted(self.pending, key=lambda p: p.at.timestamp()):
            episode.add(waiting, self.digest.top_posts)
        self.pending = []
        episode.notified_people = len(episode.authors)
        self.episode = episode
        return [*signals, self._firing(episode, at)]

    def tick(self, now: datetime) -> list[Signal]:
        return self._catch_up(now)

    def next_tick(self) -> datetime | None:
        """The end of the open episode or its held-back update, whichever comes first
        (nothing to do as time passes while no episode is open)."""
        episode = self.episode
        if episode is None:
            return None
        end = episode.last + self.digest.window
        due = self._update_due(episode)
        return end if due is None else min(end, due)

    def _catch_up(self, now: datetime) -> list[Signal]:
        """Updates held back and the end of the episode that are due by ``now``, at the
        times they fell due (the same whether a tick or a post finds them)."""
        episode = self.episode
        if episode is None:
            return []
        signals: list[Signal] = []
        end = episode.last + self.digest.window
        due = self._update_due(episode)
        if due is not None and due <= now and due < end:
            signals.append(self._update(episode, due))
        if end <= now:
            self.episode = None
            self._dirty = True
            signals.append(self._resolved(episode, end))
        return signals

    def _note_growth(self, episode: _Episode, at: datetime) -> None:
        if episode.grown_at is None and self._grown(episode):
            episode.grown_at = at

    def _grown(self, episode: _Episode) -> bool:
        people = len(episode.authors)
        return (people > episode.notified_people
                and people >= episode.notified_people * self.digest.update_growth)

    def _update_due(self, episode: _Episode) -> datetime | None:
        if not self.digest.update_every or episode.grown_at is None:
            return None
        return max(episode.grown_at, episode.notified_at + self.digest.update_every)

    def _entry(self, item: EnrichedPost, found: list[Signal]) -> _Post:
        phrases: list[str] = []
        tags: list[str] = []
        summary: dict[str, Any] | None = None
        for signal in found:
            details = signal.details
            post = details.get("post")
            if summary is None and isinstance(post, dict):
                summary = dict(post)
            for match in details.get("matches", ()) or ():
                phrase = match.get("phrase") if isinstance(match, dict) else None
                if isinstance(phrase, str) and phrase.strip():
                    phrases.append(" ".join(phrase.lower().split()))
            for reason in details.get("reasons", ()) or ():
                phrases.append(str(reason))
            tags += [str(t) for t in details.get("tags", ()) or ()]
        return _Post(item.post.created_at, item.post.author.id, item.reach, item.label,
                     summary or post_summary(item), tuple(dict.fromkeys(phrases)),
                     tuple(dict.fromkeys(tags)))

    # -- signals ------------------------------------------------------------------
    def _phrase(self, episode: _Episode) -> str:
        people = len(episode.authors)
        phrase = self.inner.digest_phrase(people)
        return phrase.replace(f"{people:,} ", f"{people:,}+ ", 1) if episode.capped else phrase

    def _details(self, episode: _Episode, headline: str, at: datetime) -> dict[str, Any]:
        people = len(episode.authors)
        ranked = sorted(episode.phrases.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "headline": headline,
            "digest": {"posts": episode.count, "people": people,
                       "people_capped": episode.capped,
                       "first_post": episode.started.isoformat(),
                       "last_post": episode.last.isoformat(),
                       "window_seconds": self.digest.window.total_seconds(),
                       "update": episode.updates, "notified_people": episode.notified_people},
            "posts": episode.count,
            "distinct_authors": people,
            "why_title": "What they said",
            "why": [f"\u201c{phrase}\u201d ({count:,})" for phrase, count in ranked[:8]],
            "phrases": [[phrase, count] for phrase, count in ranked[:8]],
            "top_posts": [dict(p.post) for p in episode.top],
            "sentiment_mix": {label: episode.mix.get(label, 0) for label in LABELS},
            "tags": sorted(episode.tags),
        }

    def _firing(self, episode: _Episode, at: datetime) -> Signal:
        phrase = self._phrase(episode)
        headline = f"{phrase} in the last {_span(at - episode.started)}{_posts(episode)}"
        return self.signal(at, "firing", f"{self.brand.name}: {headline}",
                           details=self._details(episode, headline, at))

    def _update(self, episode: _Episode, at: datetime) -> Signal:
        previous = episode.notified_people
        episode.updates += 1
        episode.notified_people = len(episode.authors)
        episode.notified_at = at
        episode.grown_at = None
        self._note_growth(episode, at)
        self._dirty = True
        phrase = self._phrase(episode)
        headline = (f"Now {phrase} in the last {_span(at - episode.started)}"
                    f"{_posts(episode)}, up from {previous:,}")
        return self.signal(at, "firing", f"{self.brand.name}: {headline}",
                           details=self._details(episode, headline, at),
                           update=episode.updates)

    def _resolved(self, episode: _Episode, at: datetime) -> Signal:
        phrase = self._phrase(episode)
        span = (f"between {episode.started:%H:%M} and {episode.last:%H:%M} UTC"
                if episode.last - episode.started >= timedelta(minutes=1)
                else f"at {episode.last:%H:%M} UTC")
        headline = (f"Quiet again: {phrase} {span}{_posts(episode)}; none since, for "
                    f"{_span(self.digest.window)}")
        return self.signal(at, "resolved", f"{self.brand.name}: {headline}",
                           details=self._details(episode, headline, at))

    # -- persistence ----------------------------------------------------------------
    def dirty(self) -> bool:
        inner = self.inner.dirty()
        dirty, self._dirty = self._dirty, False
        return dirty or inner

    def to_state(self) -> dict[str, Any]:
        return {"inner": self.inner.to_state(),
                "episode": None if self.episode is None else self.episode.to_state(),
                "pending": [p.to_state() for p in self.pending],
                "watermark": None if self.watermark is None else self.watermark.timestamp()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.inner.load_state(dict(state.get("inner") or {}))
        episode = state.get("episode")
        self.episode = None if episode is None else _Episode.from_state(episode)
        self.pending = [_Post.from_state(p) for p in state.get("pending", ())]
        mark = state.get("watermark")
        self.watermark = None if mark is None else _dt(mark)

    def state_time(self) -> datetime | None:
        times = [t for t in (self.watermark, self.inner.state_time()) if t is not None]
        return max(times) if times else None

    def resumed(self, now: datetime) -> None:
        self.inner.resumed(now)

    def resume_from(self) -> datetime | None:
        return self.inner.resume_from()


def _dt(value: object) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _posts(episode: _Episode) -> str:
    """`` (14 posts)`` when people posted more than once."""
    if episode.count == len(episode.authors) and not episode.capped:
        return ""
    return f" ({episode.count:,} post{_s(episode.count)})"


def _span(span: timedelta) -> str:
    """A duration for people: ``1 min``, ``14 min``, ``2 h``, ``2 h 5 min``, ``3 days``."""
    minutes = max(1, math.ceil(span.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours >= 48:
        return f"{round(minutes / 1440)} days"
    return f"{hours} h" if not rest else f"{hours} h {rest} min"


MODES.register("digest")(Mode(lambda detector, params: DigestDetector(detector, params),
                              DigestParams))

__all__ = ["DigestDetector", "DigestParams"]
