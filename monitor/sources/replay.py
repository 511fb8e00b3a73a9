"""Replay source: Post JSONL from a file (see DESIGN.md for the format)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from monitor.errors import PostError
from monitor.model import Post
from monitor.sources.base import SOURCES, Emit, Source


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    path: str
    #: posts per second (0: as fast as the engine takes them), e.g. to show a replay
    #: unfold, or to keep a failover drill inside the storm it replays
    rate: float = field(default=0.0, metadata={"min": 0.0})


def read_posts(path: Path) -> Iterator[Post | PostError]:
    """Yield each line of a Post JSONL file as a Post, or a PostError naming the line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield Post.from_json(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                yield PostError(f"{path}:{number}: invalid JSON: {exc}")
            except PostError as exc:
                yield PostError(f"{path}:{number}: {exc}")


@SOURCES.register("replay")
class ReplaySource(Source):
    """Emits every post of a JSONL file once, then reports itself finished."""

    Options = ReplayOptions

    async def run(self, emit: Emit) -> None:
        path = Path(self.options.path)
        rate = self.options.rate
        started = time.monotonic()
        self.ok()
        # history: the daemon's wall-clock ticks wait until it is all in (closing the
        # buckets at "now" in between would make the rest of it late)
        self.catching_up = True
        for index, item in enumerate(read_posts(path)):
            if isinstance(item, PostError):
                self.malformed(str(item))
                continue
            await emit(item)
            self.health.posts += 1
            self.health.last_post_at = item.created_at
            if rate:
                ahead = started + (index + 1) / rate - time.monotonic()
                if ahead > 0.01:
                    await asyncio.sleep(ahead)
            elif index % 500 == 0:
                await asyncio.sleep(0)
        self.catching_up = False
        self.health.state = "finished"
