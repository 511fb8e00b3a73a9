"""HTTP routes of the alert lifecycle: acknowledge alerts, manage silences.

- ``POST /alerts/{id}/ack`` and ``POST /alerts/{id}/unack`` (body optional:
  ``{"by"?, "comment"?}``): acknowledge, or withdraw the acknowledgement of, the open
  episode of that alert (or dedup key); 404 unknown, 409 resolved (or, for unack,
  not acknowledged). The answer is the episode with its ``acks`` history.
- ``POST /alerts/ack`` and ``POST /alerts/unack`` (``{"ids"?: [alert id, unique id
  prefix, dedup key or glob...], "rule"?: name or glob, "brand"?: name or glob,
  "by"?, "comment"?, "dry_run"?}``): the same for every open episode chosen (see
  :mod:`monitor.route.select`); 200 ``{"episodes": [...], "unmatched": [{"ref",
  "error"}]}``, 404 when nothing matched.
- ``GET /silences[?expired=true]``; ``POST /silences`` (see
  :meth:`monitor.route.silences.Silence.from_json`; or ``{"alert_ids": [...], "for",
  ...}``: one silence per rule and brand among those alerts). Matchers are checked
  against the daemon's rules and brands: one that matches nothing is refused (400,
  with the closest name) unless ``"force": true``; 201 with the silence (or
  ``{"silences": [...]}``) and ``warnings``. ``DELETE /silences/{id}`` expires it now.

Writes need ``Authorization: Bearer <api_token>`` (403 while ``api_token`` is
unset); reads follow the alerts API's rule.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from monitor.http.api import ApiError, parse_json_body
from monitor.route.lifecycle import AckError, Lifecycle
from monitor.route.select import SelectError, check_matchers, select_open
from monitor.route.silences import MATCHERS, Silence
from monitor.store.api import Store

_dumps = functools.partial(json.dumps, default=str, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


class LifecycleRoutes:
    def __init__(self, store: Store, now: Callable[[], datetime],
                 check_read: Callable[[web.Request], None],
                 require_admin: Callable[[web.Request, str], None], max_body: int,
                 known: Callable[[], Mapping[str, Sequence[str]]] | None = None) -> None:
        self.store = store
        self.now = now
        self.check_read = check_read
        self.require_admin = require_admin
        self.max_body = max_body
        self.known = known  # rule, brand and kind names (None: matchers are not checked)

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.store)

    async def _body(self, request: web.Request) -> Any:
        body = await request.content.read(self.max_body + 1)
        if len(body) > self.max_body:
            raise ApiError(413, f"request body larger than max_body_bytes ({self.max_body})")
        return parse_json_body(body) if body.strip() else {}

    async def _who(self, request: web.Request, extra: frozenset[str] = frozenset()
                   ) -> tuple[dict[str, Any], str, str]:
        data = await self._body(request)
        allowed = {"by", "comment", *extra}
        if not isinstance(data, dict) or set(data) - allowed:
            shape = ", ".join(f'"{k}"?' for k in sorted(allowed))
            raise ApiError(400, f"the body must be {{{shape}}} or empty")
        by, comment = data.get("by", "api"), data.get("comment", "")
        if not isinstance(by, str) or not isinstance(comment, str):
            raise ApiError(400, "by and comment must be strings")
        return data, by, comment

    async def ack(self, request: web.Request) -> web.Response:
        return await self._one(request, "ack")

    async def unack(self, request: web.Request) -> web.Response:
        return await self._one(request, "unack")

    async def _one(self, request: web.Request, action: str) -> web.Response:
        self.require_admin(request, f"POST /alerts/{{id}}/{action}")
        _, by, comment = await self._who(request)
        lifecycle = self.lifecycle()
        act = lifecycle.ack if action == "ack" else lifecycle.unack
        try:
            episode = act(request.match_info["alert_id"], by, comment, self.now())
        except AckError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return _json(episode.to_json())

    async def ack_many(self, request: web.Request) -> web.Response:
        return await self._many(request, "ack")

    async def unack_many(self, request: web.Request) -> web.Response:
        return await self._many(request, "unack")

    async def _many(self, request: web.Request, action: str) -> web.Response:
        self.require_admin(request, f"POST /alerts/{action}")
        data, by, comment = await self._who(request, frozenset({"ids", "rule", "brand",
                                                                 "dry_run"}))
        ids = data.get("ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise ApiError(400, "ids: must be a list of alert ids, dedup keys or globs")
        rule, brand = data.get("rule"), data.get("brand")
        for key, value in (("rule", rule), ("brand", brand)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ApiError(400, f"{key}: must be a non-empty string")
        lifecycle = self.lifecycle()
        try:
            chosen = select_open(lifecycle, ids, rule=rule, brand=brand)
        except SelectError as exc:
            raise ApiError(400, str(exc)) from None
        unmatched = [{"ref": ref, "error": why} for ref, why in chosen.unmatched]
        episodes = chosen.episodes
        if action == "unack":
            unmatched += [{"ref": e.dedup_key, "error": "is not acknowledged"}
                          for e in episodes if e.acked_at is None]
            episodes = [e for e in episodes if e.acked_at is not None]
        if not episodes:
            raise ApiError(404, "no firing alert matches", {"unmatched": unmatched})
        done = []
        if data.get("dry_run") is True:
            done = lifecycle.with_history(episodes)
        else:
            act = lifecycle.ack if action == "ack" else lifecycle.unack
            now = self.now()
            for episode in episodes:
                try:
                    done.append(act(episode.dedup_key, by, comment, now))
                except AckError as exc:
                    unmatched.append({"ref": episode.dedup_key, "error": str(exc)})
        return _json({"episodes": [e.to_json() for e in done], "unmatched": unmatched,
                      "dry_run": data.get("dry_run") is True})

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
        data = await self._body(request)
        if not isinstance(data, dict):
            raise ApiError(400, "a silence must be a JSON object")
        force = data.pop("force", False)
        if not isinstance(force, bool):
            raise ApiError(400, "force: must be true or false")
        alert_ids = data.pop("alert_ids", None)
        bodies = [data] if alert_ids is None else self._of_alerts(alert_ids, data)
        warnings: list[str] = []
        silences = []
        for body in bodies:
            if self.known is not None:
                matchers = {k: v for k, v in body.items() if k in MATCHERS and isinstance(v, str)}
                check = check_matchers(matchers, self.known())
                if check.problems and not force:
                    raise ApiError(400, f"{check.problems[0]}; nothing was silenced (send "
                                        "\"force\": true to add it anyway)",
                                   {"problems": check.problems})
                warnings += check.notes + check.problems
                body = {**body, **check.matchers}
            try:
                silences.append(Silence.from_json(body, now))
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
        lifecycle = self.lifecycle()
        for silence in silences:
            lifecycle.silences.add(silence)
        if alert_ids is None:
            return _json({**silences[0].to_json(now), "warnings": warnings}, 201)
        return _json({"silences": [s.to_json(now) for s in silences], "warnings": warnings},
                     201)

    def _of_alerts(self, alert_ids: object, rest: dict[str, Any]) -> list[dict[str, Any]]:
        """One silence body per distinct rule and brand among the alerts named."""
        if not isinstance(alert_ids, list) or not alert_ids or \
                not all(isinstance(i, str) and i for i in alert_ids):
            raise ApiError(400, "alert_ids: must be a non-empty list of alert ids")
        if any(k in rest for k in MATCHERS):
            raise ApiError(400, "give alert_ids or matchers, not both")
        bodies: list[dict[str, Any]] = []
        for alert_id in alert_ids:
            alert = self.store.get_alert(alert_id)
            if alert is None:
                found = self.store.alert_ids_with_prefix(alert_id) if len(alert_id) >= 6 else []
                alert = self.store.get_alert(found[0]) if len(found) == 1 else None
            if alert is None:
                raise ApiError(404, f"alert {alert_id!r} not found")
            body = {**rest, "rule": alert.rule, "brand": alert.brand}
            if body not in bodies:
                bodies.append(body)
        return bodies

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
        app.router.add_post("/alerts/ack", self.ack_many)
        app.router.add_post("/alerts/unack", self.unack_many)
        app.router.add_post("/alerts/{alert_id}/ack", self.ack)
        app.router.add_post("/alerts/{alert_id}/unack", self.unack)
        app.router.add_get("/silences", self.list_silences)
        app.router.add_post("/silences", self.add_silence)
        app.router.add_delete("/silences/{silence_id}", self.expire_silence)
