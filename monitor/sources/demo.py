"""Demo source: a simulated brand, so a new user sees real alerts within a minute.

Traffic follows a daily rhythm (night trough ~15% of the afternoon peak, weekends
~70%, Poisson noise) and, relative to the *live start*, a scripted timeline:

- ``offmessage_after`` (20 min): the brand publishes ONE off-message post
  (profanity and a link to a domain outside ``allowed_domains``);
- ``storm_after`` (40 min): a complaint storm about one systemic fault (app outage
  and double charges) from many distinct authors, ramping up over ~15 minutes to
  ``storm_factor`` times normal volume, then decaying over ``storm_duration``;
  one influencer (250k followers) joins near the peak.

Simulated time runs ``speed`` times faster than the wall clock: ``demo_clock``
builds the ScaledClock the whole engine runs on. At the defaults (speed 120) the
off-message post comes 10 s and the storm 20 s after start (peak ~28 s, over at
~65 s). On a first start, ``history`` (3 days) is backfilled at once so baselines
are warm.

Generation is a pure function of (brand, options, bucket): every 5-minute bucket
has its own seeded RNG and ids are ``demo-<unix seconds>-<n>``, so regenerating
a span after a restart yields the same posts (the engine dedups them). The cursor
``demo:<name>`` holds the simulated time reached, the live start and the one-shot
events already done, so a restart with ``resume: true`` neither backfills again nor
replays the storm.

**Its own state, fresh each start.** A configuration with the demo source keeps its
state database in ``<state_dir>/demo/`` (``monitor.engine.state_path``), so the
simulated clock, hours ahead of real time, never reaches a real state folder; and the
daemon removes that database at each start (:func:`reset_state`) so every run shows
the whole timeline again, unless the source has ``resume: true``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from monitor.clock import Clock, ScaledClock, parse_time, utc
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.model import Author, Post, PostKind
from monitor.sources import demo_text as text
from monitor.sources.base import SOURCES, Emit, Source
from monitor.store.api import CursorStore

log = logging.getLogger(__name__)

BUCKET = timedelta(minutes=5)
_BUCKET_S = 300
STORM, OFFMESSAGE = "storm", "offmessage"
_POOL_SIZE = 8000
_REGULARS = 200
_BRAND_FOLLOWERS = 48_200


@dataclass(frozen=True, slots=True)
class DemoOptions:
    speed: float = field(default=120.0, metadata={"min": 0.001})
    history: timedelta = timedelta(days=3)
    seed: int = 7
    peak_rate: float = field(default=30.0, metadata={"min": 0.0})
    storm_after: timedelta = timedelta(minutes=40)
    storm_duration: timedelta = timedelta(minutes=90)
    storm_factor: float = field(default=6.0, metadata={"min": 1.0})
    outbound_every: timedelta = timedelta(hours=3)  # 0: no ordinary outbound posts
    offmessage_after: timedelta = timedelta(minutes=20)
    loop: bool = True  # False: stop once the scripted timeline is over
    resume: bool = False  # True: continue where the last run stopped (no new storm)


@dataclass(frozen=True, slots=True)
class Timeline:
    """When the one-shot events happen, for a given live start."""

    live_start: datetime
    offmessage_at: datetime
    storm_start: datetime
    storm_peak: datetime
    influencer_at: datetime
    storm_end: datetime

    @property
    def end(self) -> datetime:
        """A bucket boundary after every scripted event (where loop=False stops)."""
        last = max(self.storm_end, self.offmessage_at)
        return _floor(last) + BUCKET


def timeline(options: DemoOptions, live_start: datetime) -> Timeline:
    storm_start = live_start + options.storm_after
    ramp = _ramp(options)
    influencer = ramp + timedelta(minutes=5)
    if influencer >= options.storm_duration:
        influencer = options.storm_duration / 2
    return Timeline(
        live_start=live_start,
        offmessage_at=_whole(live_start + options.offmessage_after),
        storm_start=storm_start,
        storm_peak=storm_start + ramp,
        influencer_at=_whole(storm_start + influencer),
        storm_end=storm_start + options.storm_duration,
    )


def normal_rate(options: DemoOptions, when: datetime) -> float:
    """Expected mentions per 5-minute bucket at ``when`` (UTC), without the storm."""
    when = utc(when)
    hour = when.hour + when.minute / 60 + when.second / 3600
    wave = (1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2  # 0 at 04:00, 1 at 16:00
    daily = 0.15 + 0.85 * math.pow(wave, 1.3)
    weekend = 0.7 if when.weekday() >= 5 else 1.0
    day_level = random.Random(f"{options.seed}/day/{when.date().isoformat()}").uniform(0.9, 1.1)
    return options.peak_rate * daily * weekend * day_level


def storm_envelope(options: DemoOptions, offset: timedelta) -> float:
    """0..1: linear ramp (~15 min), a plateau, then exponential decay to ~5%."""
    duration = options.storm_duration
    if offset < timedelta(0) or offset >= duration:
        return 0.0
    ramp = _ramp(options)
    if offset < ramp:
        return offset / ramp
    plateau_end = ramp + (duration - ramp) / 4
    if offset < plateau_end:
        return 1.0
    return math.exp(-3 * ((offset - plateau_end) / (duration - plateau_end)))


def pick_brand(config: SourceConfig, brands: tuple[BrandConfig, ...]) -> BrandConfig | None:
    """SourceConfig.brand if set, else the first configured brand."""
    if config.brand is not None:
        return next((b for b in brands if b.name == config.brand), None)
    return brands[0] if brands else None


def options_of(config: SourceConfig) -> DemoOptions:
    return config.options if isinstance(config.options, DemoOptions) else DemoOptions()


def voice_of(brand: BrandConfig) -> text.BrandVoice:
    handle = brand.handles[0].strip().lstrip("@") if brand.handles else ""
    handle = handle or "".join(ch for ch in brand.name if ch.isalnum() or ch == "_") or "brand"
    words = tuple(dict.fromkeys(w for w in (brand.name, *brand.keywords) if w.strip()))
    return text.BrandVoice(name=brand.name, handle=handle, words=words or (brand.name,))


def iter_buckets(brand: BrandConfig, options: DemoOptions, start: datetime,
                 end: datetime | None, *, source: str = "demo",
                 live_start: datetime | None = None,
                 skip: frozenset[str] = frozenset()) -> Iterator[tuple[datetime, list[Post]]]:
    """Yield (bucket end, posts in time order) for each 5-minute bucket in [start, end).

    ``end`` None generates forever. ``live_start`` None means no scripted events;
    ``skip`` names one-shot events (``storm``, ``offmessage``) already done.
    """
    start = utc(start)
    end = None if end is None else utc(end)
    voice = voice_of(brand)
    bucket = _floor(start)
    while end is None or bucket < end:
        bucket_end = bucket + BUCKET
        posts = _bucket_posts(brand, voice, options, bucket, source, live_start, skip)
        kept = [p for p in posts if p.created_at >= start and (end is None or p.created_at < end)]
        yield (bucket_end if end is None else min(bucket_end, end)), kept
        bucket = bucket_end


def generate(brand: BrandConfig, options: DemoOptions, start: datetime, end: datetime, *,
             source: str = "demo", live_start: datetime | None = None,
             skip: frozenset[str] = frozenset()) -> list[Post]:
    """Every post of [start, end) in time order: a pure function of its arguments."""
    return [post for _, posts in iter_buckets(brand, options, start, end, source=source,
                                              live_start=live_start, skip=skip)
            for post in posts]


def _bucket_posts(brand: BrandConfig, voice: text.BrandVoice, options: DemoOptions,
                  bucket: datetime, source: str, live_start: datetime | None,
                  skip: frozenset[str]) -> list[Post]:
    index = int(bucket.timestamp()) // _BUCKET_S
    seed = options.seed
    pool = text.author_pool(seed, _POOL_SIZE)
    mid = bucket + BUCKET / 2
    base = normal_rate(options, mid)
    out: list[Post] = []

    rng = random.Random(f"{seed}/mention/{index}")
    for n, offset in enumerate(sorted(rng.randrange(_BUCKET_S)
                                      for _ in range(_poisson(rng, base)))):
        regular = rng.random() < 0.25
        author = pool[rng.randrange(_REGULARS if regular else len(pool))]
        out.append(_post(source, brand, "mention", author, text.mention_text(voice, rng),
                         bucket + timedelta(seconds=offset), str(n)))

    if live_start is not None and STORM not in skip:
        line = timeline(options, live_start)
        level = storm_envelope(options, mid - line.storm_start)
        rng = random.Random(f"{seed}/storm/{index}")
        extra = base * (options.storm_factor - 1) * level
        for n, offset in enumerate(sorted(rng.randrange(_BUCKET_S)
                                          for _ in range(_poisson(rng, extra)))):
            author = pool[rng.randrange(_REGULARS, len(pool))]
            out.append(_post(source, brand, "mention", author, text.storm_text(voice, rng),
                             bucket + timedelta(seconds=offset), f"s{n}"))
        if options.storm_duration and bucket <= line.influencer_at < bucket + BUCKET:
            handle, followers = text.INFLUENCER
            author = Author(id=f"demo-u-{handle}", handle=handle, followers=followers)
            out.append(_post(source, brand, "mention", author,
                             text.influencer_text(voice, random.Random(f"{seed}/influencer")),
                             line.influencer_at, "i"))

    own = Author(id=f"demo-brand-{voice.handle.lower()}", handle=voice.handle,
                 followers=_BRAND_FOLLOWERS)
    every = int(options.outbound_every.total_seconds())
    if every > 0:
        first = int(bucket.timestamp())
        phase = 420 % every  # seven minutes past the slot
        k = -((phase - first) // every)  # ceil((first - phase) / every)
        while (at := k * every + phase) < first + _BUCKET_S:
            domain = brand.allowed_domains[0] if brand.allowed_domains else None
            body = text.outbound_text(voice, random.Random(f"{seed}/outbound/{k}"), domain)
            out.append(_post(source, brand, "outbound", own, body,
                             datetime.fromtimestamp(at, UTC), "b"))
            k += 1
    if live_start is not None and OFFMESSAGE not in skip:
        at_off = timeline(options, live_start).offmessage_at
        if bucket <= at_off < bucket + BUCKET:
            out.append(_post(source, brand, "outbound", own,
                             text.offmessage_text(voice, brand.allowed_domains), at_off, "x"))
    out.sort(key=lambda p: (p.created_at, p.id))
    return out


def _post(source: str, brand: BrandConfig, kind: PostKind, author: Author, body: str,
          when: datetime, suffix: str) -> Post:
    post_id = f"demo-{int(when.timestamp())}-{suffix}"
    return Post(id=post_id, source=source, kind=kind, author=author, text=body,
                created_at=when, brand=brand.name, lang="en",
                url=f"https://demo.invalid/{author.handle}/status/{post_id}")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 200:  # normal approximation, fine at that size
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _ramp(options: DemoOptions) -> timedelta:
    return min(timedelta(minutes=15), options.storm_duration / 3)


def _floor(when: datetime) -> datetime:
    ts = int(utc(when).timestamp() // _BUCKET_S) * _BUCKET_S
    return datetime.fromtimestamp(ts, UTC)


def _whole(when: datetime) -> datetime:
    return datetime.fromtimestamp(int(when.timestamp()), UTC)


# cursor -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DemoState:
    """What the cursor ``demo:<name>`` remembers across restarts."""

    at: datetime  # simulated time reached: every post before it was emitted
    live_start: datetime
    done: frozenset[str] = frozenset()

    def to_json(self) -> str:
        return json.dumps({"at": self.at.isoformat(), "live_start": self.live_start.isoformat(),
                           "done": sorted(self.done)})


def cursor_key(name: str) -> str:
    return f"demo:{name}"


def load_state(store: CursorStore, name: str) -> DemoState | None:
    raw = store.get_cursor(cursor_key(name))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        at = parse_time(data["at"])
        return DemoState(at=at, live_start=parse_time(data.get("live_start", data["at"])),
                         done=frozenset(str(d) for d in data.get("done", ())))
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("demo source %s: ignoring unreadable cursor %r", name, raw[:80])
        return None


def reset_state(db: Path) -> bool:
    """Remove the demo's state database and its WAL files (a fresh demo); True when
    there was one. Only ever called on the demo's own folder (see the module doc)."""
    removed = False
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            path.unlink()
            removed = True
    return removed


def run_id(config: SourceConfig, store: CursorStore) -> str:
    """This demo run's id, kept in the state (a resumed run keeps it): alert ids of a
    fresh run differ from the last run's, though the timeline is the same."""
    key = f"demo-run:{config.name}"
    found = store.get_cursor(key)
    if found is None:
        found = secrets.token_hex(8)
        store.set_cursor(key, found)
    return found


def demo_clock(config: SourceConfig, store: CursorStore) -> ScaledClock:
    """The engine-wide clock: resumes at the cursor's simulated time, else wall time now."""
    state = load_state(store, config.name)
    start = state.at if state is not None else datetime.now(UTC)
    return ScaledClock(start, options_of(config).speed)


@runtime_checkable
class _Paced(Protocol):
    def wall_seconds(self, simulated: timedelta) -> float: ...


@SOURCES.register("demo")
class DemoSource(Source):
    """Backfills history once, then plays live traffic and the scripted timeline."""

    Options = DemoOptions

    async def run(self, emit: Emit) -> None:
        options = options_of(self.config)
        brand = pick_brand(self.config, self.ctx.brands)
        if brand is None:
            self.failed(f"no brand {self.config.brand!r} configured" if self.config.brand
                        else "no brand configured")
            return
        state = load_state(self.ctx.store, self.name)
        self.ok()
        if state is None:
            state = await self._backfill(emit, brand, options)
        else:
            log.info("demo source %s: resuming at %s (simulated time)", self.name,
                     state.at.isoformat())
        line = timeline(options, state.live_start)
        end = None if options.loop else line.end
        for bucket_end, posts in iter_buckets(brand, options, state.at, end, source=self.name,
                                              live_start=state.live_start, skip=state.done):
            for post in posts:
                await self._wait_until(post.created_at)
                await self._emit(emit, post)
            await self._wait_until(bucket_end)
            done = set(state.done)
            if bucket_end >= line.storm_end:
                done.add(STORM)
            if bucket_end > line.offmessage_at:
                done.add(OFFMESSAGE)
            state = DemoState(at=bucket_end, live_start=state.live_start, done=frozenset(done))
            self.ctx.store.set_cursor(cursor_key(self.name), state.to_json())
            self.ok()
        self.health.state = "finished"

    async def _backfill(self, emit: Emit, brand: BrandConfig, options: DemoOptions) -> DemoState:
        live_start = self.ctx.clock.now()
        count = 0
        self.catching_up = True
        for _, posts in iter_buckets(brand, options, live_start - options.history, live_start,
                                     source=self.name):
            for post in posts:
                await self._emit(emit, post)
                count += 1
                if count % 250 == 0:
                    await asyncio.sleep(0)
        self.catching_up = False
        state = DemoState(at=live_start, live_start=live_start)
        self.ctx.store.set_cursor(cursor_key(self.name), state.to_json())
        log.info("demo source %s: backfilled %d posts over %.0f hours; live from %s "
                 "(simulated time, %g\u00d7 real time; the storm starts %s later)", self.name,
                 count, options.history.total_seconds() / 3600, live_start.isoformat(),
                 options.speed, options.storm_after)
        return state

    async def _emit(self, emit: Emit, post: Post) -> None:
        await emit(post)
        self.health.posts += 1
        self.health.last_post_at = post.created_at

    async def _wait_until(self, when: datetime) -> None:
        clock: Clock = self.ctx.clock
        ahead = when - clock.now()
        if ahead > timedelta(0):
            wait = (clock.wall_seconds(ahead) if isinstance(clock, _Paced)
                    else ahead.total_seconds())
            await asyncio.sleep(wait)
