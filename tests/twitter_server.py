"""A local HTTPS server speaking the X API v2 JSON format, for the twitter source tests.

tweepy hard-codes ``https://api.twitter.com``; ``FakeX.session()`` returns an aiohttp
session whose resolver maps that host (and api.x.com) to 127.0.0.1 and whose TLS
context trusts the self-signed CA (made with ``trustme``) that signed the server's
certificate, so tweepy's real request code runs against this server unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

HOSTS = ("api.twitter.com", "api.x.com")
_EPOCH_MS = 1288834974657


def snowflake(when: datetime, seq: int = 0) -> str:
    """A tweet id minted at ``when`` (X ids embed their creation time)."""
    return str(((int(when.timestamp() * 1000) - _EPOCH_MS) << 22) + seq)


def tweet(tweet_id: str, text: str, author_id: str, when: datetime | None = None,
          **extra: Any) -> dict[str, Any]:
    created = when or datetime.fromtimestamp(
        ((int(tweet_id) >> 22) + _EPOCH_MS) / 1000, UTC)
    return {"id": tweet_id, "text": text, "author_id": author_id,
            "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "lang": "en", "edit_history_tweet_ids": [tweet_id], **extra}


def user(user_id: str, username: str, followers: int) -> dict[str, Any]:
    return {"id": user_id, "username": username, "name": username.title(),
            "public_metrics": {"followers_count": followers, "following_count": 1,
                               "tweet_count": 10, "listed_count": 0}}


@dataclass
class Scripted:
    """A canned reply for the next request whose path starts with ``path``."""

    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/problem+json"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


class _Resolver(AbstractResolver):
    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in HOSTS:
            raise OSError(f"test resolver refuses {host!r}: only the fake X API is reachable")
        return [{"hostname": host, "host": "127.0.0.1", "port": self.port,
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


class FakeX:
    """Recent search, user lookup, user timelines and the filtered stream (+ rules)."""

    def __init__(self) -> None:
        self.tweets: list[dict[str, Any]] = []  # what search returns (any query)
        self.honour_from = True  # search leaves out authors named by -from:
        self.users: dict[str, dict[str, Any]] = {}
        self.extra_search: list[Any] = []  # raw items appended to search results (malformed)
        self.scripted: list[Scripted] = []
        self.seen: list[Seen] = []
        self.rules: list[dict[str, str]] = []
        self.stream_lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.stream_connected = asyncio.Event()
        self.limits: dict[str, str] = {}  # rate-limit headers sent on every success
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ca = trustme.CA()
        self.sessions: list[aiohttp.ClientSession] = []

    # set-up ------------------------------------------------------------------------
    def add_user(self, user_id: str, username: str, followers: int) -> None:
        self.users[user_id] = user(user_id, username, followers)

    def fail(self, path: str, status: int, body: Any = None, **headers: str) -> None:
        self.scripted.append(Scripted(path, status, body, headers))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/2/tweets/search/recent", self._search)
        app.router.add_get("/2/users/by", self._users_by)
        app.router.add_get("/2/users/{id}/tweets", self._timeline)
        app.router.add_get("/2/tweets/search/stream/rules", self._get_rules)
        app.router.add_post("/2/tweets/search/stream/rules", self._post_rules)
        app.router.add_get("/2/tweets/search/stream", self._stream)
        app.middlewares.append(self._record)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(*HOSTS).configure_cert(server_ctx)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.stream_lines.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()

    def session(self) -> aiohttp.ClientSession:
        """A session for the source under test: the API host is this server."""
        client_ctx = ssl.create_default_context()
        self._ca.configure_trust(client_ctx)
        connector = aiohttp.TCPConnector(resolver=_Resolver(self.port), ssl=client_ctx)
        session = aiohttp.ClientSession(connector=connector)
        self.sessions.append(session)
        return session

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    # handlers ----------------------------------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              dict(request.headers), body))
        for index, canned in enumerate(self.scripted):
            if request.path.startswith(canned.path):
                del self.scripted[index]
                text = canned.body if isinstance(canned.body, str) else json.dumps(canned.body)
                return web.Response(status=canned.status, text=text, headers=canned.headers,
                                    content_type=canned.content_type)
        response: web.StreamResponse = await handler(request)
        return response

    def _json(self, body: Any) -> web.Response:
        return web.json_response(body, headers=self.limits)

    def _page(self, request: web.Request, items: list[dict[str, Any]], token_param: str,
              extra: list[Any] | None = None) -> web.Response:
        since = request.query.get("since_id")
        found = sorted((t for t in items if since is None or int(t["id"]) > int(since)),
                       key=lambda t: int(t["id"]), reverse=True)
        size = int(request.query.get("max_results", "10"))
        start = int(request.query.get(token_param, "0") or 0)
        chunk = found[start:start + size]
        body: dict[str, Any] = {"meta": {"result_count": len(chunk)}}
        if chunk or extra:
            body["data"] = [*chunk, *(extra or ())]
            authors = {t["author_id"] for t in chunk}
            body["includes"] = {"users": [u for i, u in self.users.items() if i in authors]}
            if chunk:
                body["meta"].update(newest_id=chunk[0]["id"], oldest_id=chunk[-1]["id"])
        if start + size < len(found):
            body["meta"]["next_token"] = str(start + size)
        return self._json(body)

    async def _search(self, request: web.Request) -> web.Response:
        found = self.tweets
        if self.honour_from:  # the one operator whose effect the tests rely on
            banned = {n.lower() for n in re.findall(r"-from:(\w+)", request.query["query"])}
            found = [t for t in found if t["author_id"] not in banned and
                     self.users.get(t["author_id"], {}).get("username", "").lower() not in banned]
        return self._page(request, found, "next_token", self.extra_search)

    async def _timeline(self, request: web.Request) -> web.Response:
        own = [t for t in self.tweets if t["author_id"] == request.match_info["id"]]
        return self._page(request, own, "pagination_token")

    async def _users_by(self, request: web.Request) -> web.Response:
        names = request.query.get("usernames", "").split(",")
        by_name = {u["username"].lower(): u for u in self.users.values()}
        found = [by_name[n.lower()] for n in names if n.lower() in by_name]
        body: dict[str, Any] = {"data": found} if found else {}
        missing = [n for n in names if n.lower() not in by_name]
        if missing:
            body["errors"] = [{"value": n, "detail": f"Could not find user with usernames: [{n}].",
                               "title": "Not Found Error", "resource_type": "user",
                               "parameter": "usernames", "resource_id": n,
                               "type": "https://api.twitter.com/2/problems/resource-not-found"}
                              for n in missing]
        return self._json(body)

    async def _get_rules(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"meta": {"sent": "now", "result_count": len(self.rules)}}
        if self.rules:
            body["data"] = self.rules
        return self._json(body)

    async def _post_rules(self, request: web.Request) -> web.Response:
        payload = await request.json()
        if "delete" in payload:
            ids = set(payload["delete"]["ids"])
            self.rules = [r for r in self.rules if r["id"] not in ids]
            return self._json({"meta": {"summary": {"deleted": len(ids)}}})
        added = []
        for n, rule in enumerate(payload.get("add", [])):
            added.append({"id": str(9000 + len(self.rules) + n), **rule})
        self.rules += added
        return self._json({"data": added, "meta": {"summary": {"created": len(added)}}})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        self.stream_connected.set()
        while (line := await self.stream_lines.get()) is not None:
            await response.write(line + b"\r\n")
        return response
