"""HTTP routes of the outbox: list deliveries and re-send dead letters.

- ``GET /outbox?status=pending|sent|dead&channel=NAME&limit=N``: outbox items,
  newest first (``limit`` 1..1000, default 100), each with its alert's rule,
  brand and title, attempts, ``last_error`` (secrets masked) and times.
- ``POST /outbox/{id}/retry``: queue dead item ``id`` for delivery now, with a
  fresh retry horizon; 404 unknown, 409 not dead.
- ``POST /outbox/retry`` with ``{"ids": [1, 2]}`` or ``{"all_dead": true}``:
  the same for several items; answers ``{"retried": [ids]}``.

Writes need ``Authorization: Bearer <api_token>`` (403 while ``api_token`` is
unset); reads follow the alerts API's rule. A retry wakes the outbox worker.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from monitor.http.api import ApiError, parse_json_body
from monitor.store.api import Store

STATUSES = ("pending", "sent", "dead")
MAX_LIMIT = 1000
_dumps = functools.partial(json.dumps, default=str, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


class OutboxRoutes:
    def __init__(self, store: Store, check_read: Callable[[web.Request], None],
                 require_admin: Callable[[web.Request, str], None], max_body: int,
                 wake: asyncio.Event | None = None) -> None:
        self.store = store
        self.check_read = check_read
        self.require_admin = require_admin
        self.max_body = max_body
        self.wake = wake

    async def list_items(self, request: web.Request) -> web.Response:
        self.check_read(request)
        query = request.query
        unknown = sorted(set(query) - {"status", "channel", "limit"})
        if unknown:
            raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)} "
                                "(allowed: status, channel, limit)")
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        raw_limit = query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        return _json(self.store.outbox_items(status=status, channel=query.get("channel"),
                                             limit=int(raw_limit)))

    async def retry_one(self, request: web.Request) -> web.Response:
        self.require_admin(request, "POST /outbox/{id}/retry")
        raw = request.match_info["item_id"]
        if not raw.isdigit():
            raise ApiError(400, f"outbox item id must be an integer, got {raw!r}")
        item_id = int(raw)
        retried = self.store.retry_dead([item_id])
        if not retried:
            found = self.store.outbox_item(item_id)
            if found is None:
                raise ApiError(404, f"outbox item {item_id} not found")
            raise ApiError(409, f"outbox item {item_id} is {found['status']}, not dead: only "
                                "dead items are re-sent")
        self._wake()
        return _json({"retried": retried})

    async def retry_many(self, request: web.Request) -> web.Response:
        self.require_admin(request, "POST /outbox/retry")
        body = await request.content.read(self.max_body + 1)
        if len(body) > self.max_body:
            raise ApiError(413, f"request body larger than max_body_bytes ({self.max_body})")
        data = parse_json_body(body) if body.strip() else None
        usage = 'the body must be {"ids": [outbox item ids]} or {"all_dead": true}'
        if not isinstance(data, dict) or len(data) != 1:
            raise ApiError(400, usage)
        if data.get("all_dead") is True:
            ids = None
        elif isinstance(data.get("ids"), list) and data["ids"] and all(
                type(i) is int for i in data["ids"]):
            ids = list(data["ids"])
            missing = [i for i in ids if self.store.outbox_item(i) is None]
            if missing:
                raise ApiError(404, f"outbox item(s) not found: {missing}")
        else:
            raise ApiError(400, usage)
        retried = self.store.retry_dead(ids)
        if retried:
            self._wake()
        return _json({"retried": retried})

    def _wake(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/outbox", self.list_items)
        app.router.add_post("/outbox/retry", self.retry_many)
        app.router.add_post("/outbox/{item_id}/retry", self.retry_one)
