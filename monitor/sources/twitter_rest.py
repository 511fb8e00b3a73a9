"""X API v2 requests through tweepy: per-endpoint rate limits, errors, feed pages, users.

Every call reads ``x-rate-limit-remaining``/``x-rate-limit-reset``; once an endpoint's
remaining count is 0 its next call waits for the reset (at most ``MAX_RATE_WAIT``).
tweepy's exceptions, network failures and non-JSON bodies become ``ApiError``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from tweepy.errors import HTTPException

from monitor.errors import PostError
from monitor.model import PostKind
from monitor.sources import twitter_wire as wire
from monitor.sources.twitter_wire import ApiError, classify

log = logging.getLogger("monitor.sources.twitter")
Sleep = Callable[[float], Awaitable[None]]
MAX_RATE_WAIT = 900.0  # re-check at least every 15 minutes, whatever the reset says


@dataclass(frozen=True, slots=True)
class Feed:
    """One search query or one own timeline; ``query`` is also its stream rule."""

    key: str
    kind: PostKind
    query: str
    brand: str | None = None
    user_id: str | None = None


async def error_of(response: aiohttp.ClientResponse) -> ApiError:
    try:
        body: object = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        body = None
    return classify(response.status, response.headers, body)


class TwitterApi:
    """The source's tweepy calls, rate limited per endpoint.

    ``malformed`` is told of responses that cannot be read (the source's health).
    """

    def __init__(self, name: str, *, max_results: int, exclude_retweets: bool,
                 now: Callable[[], datetime], sleep: Sleep,
                 malformed: Callable[[str], None]) -> None:
        self.name = name
        self.max_results, self.exclude_retweets = max_results, exclude_retweets
        self._now, self._sleep, self._malformed = now, sleep, malformed
        self.limits: dict[str, tuple[int, float]] = {}

    async def call(self, endpoint: str, method: Callable[..., Awaitable[Any]],
                   *args: Any, **kwargs: Any) -> Any:
        """One tweepy call: waits out an exhausted limit, maps failures to ApiError."""
        remaining, reset = self.limits.get(endpoint, (1, 0.0))
        if remaining <= 0:
            wait = min(reset - self._now().timestamp() + 1, MAX_RATE_WAIT)
            if wait > 0:
                log.info("source %s: %s rate limit used up; waiting %.0fs", self.name,
                         endpoint, wait)
                await self._sleep(wait)
            self.limits.pop(endpoint, None)
        try:
            response = await method(*args, **kwargs)
            body = await response.json(content_type=None)
        except HTTPException as exc:
            raise await error_of(exc.response) from None
        except aiohttp.ClientResponseError as exc:  # an error page that is not JSON
            raise classify(exc.status, exc.headers or {}, None) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError("transient", f"{endpoint}: network error: {exc!r}") from None
        except ValueError as exc:
            self._malformed(f"{endpoint}: response is not JSON ({exc})")
            raise ApiError("transient", f"{endpoint}: response is not JSON") from None
        remaining_now, reset_at = wire.rate_headers(response.headers)
        if remaining_now is not None and reset_at is not None:
            self.limits[endpoint] = (remaining_now, reset_at)
        return body

    def fields(self) -> dict[str, Any]:
        return {"max_results": self.max_results, "tweet_fields": list(wire.TWEET_FIELDS),
                "expansions": list(wire.EXPANSIONS), "user_fields": list(wire.USER_FIELDS)}

    async def user_ids(self, client: Any, usernames: Sequence[str]) -> dict[str, str]:
        """Lower-cased username -> user id, for those of ``usernames`` that exist."""
        ids: dict[str, str] = {}
        for start in range(0, len(usernames), 100):
            body = await self.call("users", client.get_users,
                                   usernames=usernames[start:start + 100])
            users = body.get("data") if isinstance(body, Mapping) else None
            for user in users if isinstance(users, list) else []:
                if isinstance(user, Mapping) and isinstance(user.get("username"), str):
                    ids[user["username"].lower()] = str(user.get("id"))
        return ids

    async def page(self, client: Any, feed: Feed, since_id: str | None,
                   token: str | None) -> wire.Page:
        """One page of ``feed`` (recent search or a user timeline) newer than ``since_id``."""
        params = self.fields()
        if since_id:
            params["since_id"] = since_id
        if feed.user_id is None:
            if token:
                params["next_token"] = token
            body = await self.call("search", client.search_recent_tweets, feed.query,
                                   **params)
        else:
            if token:
                params["pagination_token"] = token
            if self.exclude_retweets:
                params["exclude"] = ["retweets"]
            body = await self.call("timeline", client.get_users_tweets, feed.user_id,
                                   **params)
        try:
            page = wire.parse_page(body, source=self.name, kind=feed.kind, brand=feed.brand)
        except PostError as exc:
            self._malformed(f"{feed.key}: {exc}")
            raise ApiError("transient", f"{feed.key}: unreadable response: {exc}") from None
        for error in page.errors:
            self._malformed(f"{feed.key}: {error}")
        return page
