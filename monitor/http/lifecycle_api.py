"""HTTP routes of the alert lifecycle: acknowledge alerts, manage silences.

- ``POST /alerts/{id}/ack`` (body optional: ``{"by"?, "comment"?}``): acknowledge
  the open episode of that alert (or dedup key); 404 unknown, 409 resolved.
- ``GET /silences[?expired=true]``; ``POST /silences`` (see
  :meth:`monitor.route.silences.Silence.from_json`); ``DELETE /silences/{id}``
  expires it now.

Writes need ``Authorization: Bearer <api_token>`` (403 while ``api_token`` is
unset); reads follow the alerts API's rule.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from monitor.http.api import ApiError, parse_json_body
from monitor.route.lifecycle import AckError, Lifecycle
from monitor.route.silences import Silence
from monitor.store.api import Store

_dumps = functools.partial(json.dumps, default=str, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


class LifecycleRoutes:
    def __init__(self, store: Store, now: Callable[[], datetime],
                 check_read: Callable[[web.Request], None],
                 require_admin: Callable[[web.Request, str], None], max_body: int) -> None:
        self.store = store
        self.now = now
        self.check_read = check_read
        self.require_admin = require_admin
        self.max_body = max_body

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.store)

    async def _body(self, request: web.Request) -> Any:
        body = await request.content.read(self.max_body + 1)
        if len(body) > self.max_body:
            raise ApiError(413, f"request body larger than max_body_bytes ({self.max_body})")
        return parse_json_body(body) if body.strip() else {}

    async def ack(self, request: web.Request) -> web.Response:
        self.require_admin(request, "POST /alerts/{id}/ack")
        data = await self._body(request)
        if not isinstance(data, dict) or set(data) - {"by", "comment"}:
            raise ApiError(400, 'the body must be {"by"?: str, "comment"?: str} or empty')
        by, comment = data.get("by", "api"), data.get("comment", "")
        if not isinstance(by, str) or not isinstance(comment, str):
            raise ApiError(400, "by and comment must be strings")
        try:
            episode = self.lifecycle().ack(request.match_info["alert_id"], by, comment,
                                           self.now())
        except AckError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return _json(episode.to_json())

    async def list_silences(self, request: web.Request) -> web.Response:
        self.check_read(request)
        unknown = sorted(set(request.query) - {"expired"})
        if unknown:
            raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)} "
                                "(allowed: expired)")
        expired = request.query.get("expired", "false").lower() in ("true", "1")
        now = self.now()
        found = self.lifecycle().silences.entries(now, expired=expired)
        return _json([s.to_json(now) for s in found])

    async def add_silence(self, request: web.Request) -> web.Response:
        self.require_admin(request, "POST /silences")
        now = self.now()
        try:
            silence = Silence.from_json(await self._body(request), now)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        self.lifecycle().silences.add(silence)
        return _json(silence.to_json(now), 201)

    async def expire_silence(self, request: web.Request) -> web.Response:
        silence_id = request.match_info["silence_id"]
        self.require_admin(request, "DELETE /silences")
        now = self.now()
        silences = self.lifecycle().silences
        if silences.get(silence_id) is None:
            raise ApiError(404, f"silence {silence_id!r} not found")
        if not silences.expire(silence_id, now):
            raise ApiError(409, f"silence {silence_id!r} has already ended")
        return _json({"expired": silence_id})

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/alerts/{alert_id}/ack", self.ack)
        app.router.add_get("/silences", self.list_silences)
        app.router.add_post("/silences", self.add_silence)
        app.router.add_delete("/silences/{silence_id}", self.expire_silence)
