"""Mastodon REST: JSON GETs that respect the rate limits, instance info, timeline pages.

Every request waits while an earlier response's X-RateLimit-Remaining/-Reset (or a
429) holds the client back; a 429 is retried after the reset. Bodies are capped at
``MAX_BODY``. Timelines are read with ``min_id`` paging (oldest first, ``PAGE`` a page).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from monitor.sources.mastodon_wire import (
    PAGE,
    ApiError,
    Endpoint,
    WireError,
    dig,
    error_text,
    id_order,
    rate_limit_wait,
    status_id,
)

log = logging.getLogger("monitor.sources.mastodon")
Sleep = Callable[[float], Awaitable[object]]
MAX_BODY = 8 * 1024 * 1024
REST_TIMEOUT = aiohttp.ClientTimeout(total=30)


class RestClient:
    """GETs on one instance with its token, pausing every request for rate limits."""

    def __init__(self, name: str, base: str, auth: Mapping[str, str], *, sleep: Sleep,
                 now: Callable[[], datetime]) -> None:
        self.name, self.base, self._auth = name, base, auth
        self._sleep, self._now = sleep, now
        self._hold_until = 0.0  # loop time before which no request is made (rate limit)

    async def get(self, session: aiohttp.ClientSession, path: str,
                  params: tuple[tuple[str, str], ...]) -> Any:
        """GET a JSON document, pausing for rate limits; 429 retried after the reset."""
        loop = asyncio.get_running_loop()
        for _ in range(4):
            if (hold := self._hold_until - loop.time()) > 0:
                log.info("mastodon %s: rate limited, waiting %.0fs", self.name, hold)
                await self._sleep(hold)
            async with session.get(f"{self.base}{path}", params=params, headers=self._auth,
                                   timeout=REST_TIMEOUT) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise ApiError(resp.status, f"{path}: response larger than {MAX_BODY}")
                wait = rate_limit_wait(resp.status, resp.headers, self._now())
                if wait is not None:
                    self._hold_until = max(self._hold_until, loop.time() + wait)
                if resp.status == 429:
                    continue
                if resp.status >= 400:
                    raise ApiError(resp.status, f"{path}: {error_text(bytes(body))}")
                try:
                    return json.loads(body)
                except ValueError:
                    raise WireError(f"{path}: response is not JSON") from None
        raise ApiError(429, f"{path}: still rate limited")

    async def instance(self, session: aiohttp.ClientSession) -> tuple[str | None, str | None]:
        """(domain, streaming URL) from /api/v2/instance, else the older /api/v1/instance."""
        try:
            info = await self.get(session, "/api/v2/instance", ())
            return dig(info, "domain"), dig(info, "configuration", "urls", "streaming")
        except ApiError as exc:
            if exc.status != 404:
                raise
        info = await self.get(session, "/api/v1/instance", ())
        return dig(info, "uri"), dig(info, "urls", "streaming_api")

    async def timeline_page(self, session: aiohttp.ClientSession, endpoint: Endpoint,
                            cursor: str | None) -> tuple[int, list[tuple[str, Any]]]:
        """One page of ``endpoint`` after ``cursor``: how many items came, and the
        (id, item) pairs of those with an id, oldest first."""
        params = (*endpoint.params, ("limit", str(PAGE)),
                  *((("min_id", cursor),) if cursor else ()))
        items = await self.get(session, endpoint.path, params)
        if not isinstance(items, list):
            raise WireError(f"{endpoint.path}: expected a list")
        ordered = sorted(((sid, item) for item in items
                          if (sid := status_id(item)) is not None),
                         key=lambda pair: id_order(pair[0]))
        return len(items), ordered
