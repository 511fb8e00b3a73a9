"""The dashboard's routes: sign-in, pages (GET) and their live data (JSON).

Pages are server-rendered HTML with a little plain JavaScript (``static/dashboard.js``)
and the vendored uPlot for charts; no build step, no request leaves the daemon. Page
data is read and rendered on worker threads with read-only connections
(:mod:`monitor.web.reader`), so a 30-day page never stalls the event loop. Actions
(POST) live in :mod:`monitor.web.act`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from monitor.config.schema import HttpConfig
from monitor.store.api import Store
from monitor.web import inbox, pulse, whatif
from monitor.web.act import ActionRoutes
from monitor.web.context import Denied, WebContext, html_response, redirect, safe_next
from monitor.web.render import STATIC, render
from monitor.web.session import clear_cookie, cross_site, csrf_ok, set_cookie

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' "
                                "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status,
                        content_type="application/json")


def _guard(handler: Handler, ctx: WebContext, *, data: bool = False) -> Handler:
    """Turn Denied into an HTML page (or JSON for data requests)."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Denied as exc:
            if data:
                return _json({"error": str(exc)}, exc.status)
            return ctx.error_page(request, exc.status, str(exc))
    return wrapped


class WebRoutes:
    """The dashboard under ``/ui`` (``/`` and ``/dashboard`` lead there)."""

    def __init__(self, config: HttpConfig, api: Any, now: Callable[[], datetime]) -> None:
        self.ctx = WebContext(config, api, now)
        self.actions = ActionRoutes(self.ctx)

    # -- sign-in -----------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/ui/pulse")

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        if not ctx.sessions.required:
            raise web.HTTPSeeOther("/ui/pulse")
        return self._login_page(request, safe_next(request.query.get("next")), None, 200)

    def _login_page(self, request: web.Request, target: str, error: str | None,
                    status: int) -> web.Response:
        html = render("login.html", session=None, nav=(), page="login", v=self.ctx.version,
                      path=request.path, brands=[], can_act=False, now=self.ctx.now(),
                      message=None, next=target, error=error)
        return html_response(html, status)

    async def login(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        if cross_site(request):
            return ctx.error_page(request, 403, "refused: the request came from another site")
        form = await request.post()
        target = safe_next(str(form.get("next") or ""))
        client = request.remote or "?"
        if ctx.sessions.throttled(client):
            return self._login_page(request, target, "too many failed sign-ins: wait a "
                                                     "minute", 429)
        role = ctx.sessions.role_for(str(form.get("token") or ""))
        if role is None:
            ctx.sessions.failed(client)
            return self._login_page(request, target, "that token is not valid", 401)
        session = ctx.sessions.create(role, str(form.get("name") or ""))
        response = redirect(target)
        set_cookie(response, request, session)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self.ctx.sessions.get(request)
        if session is not None and not session.open:
            form = await request.post()
            token = form.get("csrf_token")
            if cross_site(request) or not csrf_ok(session, token if isinstance(token, str)
                                                  else None):
                raise Denied(403, "refused: missing or invalid CSRF token")
            self.ctx.sessions.end(session)
        response = redirect("/ui/login" if self.ctx.sessions.required else "/ui/pulse")
        clear_cookie(response)
        return response

    # -- Pulse ---------------------------------------------------------------------------
    def _range(self, request: web.Request) -> str:
        name = request.query.get("range", "24h")
        return name if name in pulse.RANGES else "24h"

    async def pulse_overview(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        range_name = self._range(request)
        first, last = pulse.window(range_name, ctx.now())
        names = ctx.brand_names()

        def build(store: Store) -> dict[str, Any]:
            return {"range": range_name, "ranges": list(pulse.RANGES),
                    "data": pulse.series(store, names, first, last),
                    "voice": pulse.share_of_voice(store, names, first, last)}

        return await ctx.page(request, session, "pulse", "pulse.html", build)

    async def pulse_brand(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        name = request.match_info["brand"]
        brand = ctx.brand(name)
        if brand is None:
            raise Denied(404, f"no brand named {name!r} is configured")
        range_name = self._range(request)
        now = ctx.now()
        first, last = pulse.window(range_name, now)
        names = ctx.brand_names()

        def build(store: Store) -> dict[str, Any]:
            return {"range": range_name, "ranges": list(pulse.RANGES), "brand": name,
                    "data": pulse.series(store, [name], first, last),
                    "negative": pulse.negative_share(store, name, first, last),
                    "voice": pulse.share_of_voice(store, names, first, last),
                    "trending": pulse.trending(store, brand, name, now),
                    "top": pulse.top_posts(store, name, first)}

        return await ctx.page(request, session, "pulse", "brand.html", build)

    async def series_data(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        ctx.data_session(request)
        range_name = self._range(request)
        known = ctx.brand_names()
        wanted = [b for b in request.query.get("brands", "").split(",") if b in known] or known
        since_raw = request.query.get("since", "")
        since = int(since_raw) if since_raw.isdigit() else None
        first, last = pulse.window(range_name, ctx.now())

        def work(store: Store) -> bytes:
            return orjson.dumps(pulse.series(store, wanted, first, last, since))

        body = await ctx.reader.run(work)
        return web.Response(body=body, content_type="application/json")

    # -- Alerts ----------------------------------------------------------------------------
    async def alerts_page(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        filters = inbox.Filters.parse(request.query)

        def build(store: Store) -> dict[str, Any]:
            from monitor.route.lifecycle import Lifecycle

            now = ctx.now()
            return {"filters": filters, "alerts": inbox.inbox(store, filters),
                    "facets": inbox.facets(store),
                    "silences": [s.to_json(now) for s in
                                 Lifecycle(store).silences.entries(now)]}

        return await ctx.page(request, session, "alerts", "alerts.html", build)

    async def alert_page(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        alert_id = request.match_info["alert_id"]
        names = ctx.brand_names()
        now = ctx.now()

        def build(store: Store) -> dict[str, Any]:
            found = inbox.detail(store, alert_id, names)
            if found is None:
                return {"missing": True}
            alert = found["alert"]
            matchers = {"rule": alert["rule"], "brand": alert["brand"]}
            return dict(found, missing=False, matchers=matchers,
                        preview=inbox.silence_preview(store, matchers, now))

        data = await ctx.reader.run(build)
        if data.get("missing"):
            raise Denied(404, f"alert {alert_id!r} not found")
        return await ctx.page(request, session, "alerts", "alert.html", lambda _: data)

    async def silence_preview(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        ctx.data_session(request)
        matchers = inbox.matchers_from(request.query)
        now = ctx.now()
        result = await ctx.reader.run(lambda store: inbox.silence_preview(store, matchers, now))
        return _json(result)

    async def latest_alert(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        ctx.data_session(request)

        def work(store: Store) -> dict[str, Any]:
            line = store.latest_alert()
            return {"id": line.id if line else None,
                    "at": line.created_at.timestamp() if line else None}

        return _json(await ctx.reader.run(work))

    # -- Outbound review -----------------------------------------------------------------
    async def outbound_page(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        show = "all" if request.query.get("show") == "all" else "pending"
        runtime = ctx.outbound()
        now = ctx.now()
        watch = [e.to_json() for e in runtime.watchlist(now)] if runtime else []
        ledger = [a.to_json() for a in runtime.approved_posts(now)][-50:] if runtime else []

        def build(store: Store) -> dict[str, Any]:
            return {"show": show, "queue": inbox.outbound_queue(store, show, now),
                    "watch": watch, "ledger": list(reversed(ledger)),
                    "running": runtime is not None}

        return await ctx.page(request, session, "outbound", "outbound.html", build)

    # -- Health and rules ------------------------------------------------------------------
    async def admin_page(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        health = _health(ctx.api)
        rules = ctx.rules()
        channels = [{"name": c.name, "kind": _channel_kind(c.url, c.rotation is not None),
                     "fallback": c.fallback, "retry_for": str(c.retry_for)}
                    for c in ctx.channels()]
        reload = getattr(ctx.api, "last_reload", None)

        def build(store: Store) -> dict[str, Any]:
            from monitor.web import actions

            return {"health": health, "rules": [_rule_row(r) for r in rules],
                    "channels": channels, "reload": reload,
                    "outbox": store.outbox_items(limit=50),
                    "dead": store.outbox_items(status="dead", limit=50),
                    "counts": store.outbox_counts(),
                    "volume_rules": [r.name for r in whatif.volume_rules(rules)],
                    "days": whatif.DAYS, "recent": [a.to_json() for a in
                                                    actions.recent(store, 20)]}

        return await ctx.page(request, session, "admin", "admin.html", build)

    async def whatif_page(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        session = ctx.session(request)
        rules = whatif.volume_rules(ctx.rules())
        query = request.query
        rule = next((r for r in rules if r.name == query.get("rule")), rules[0] if rules
                    else None)
        brands = [b for b in ctx.brand_names() if rule is None or rule.applies_to(b)]
        brand = query.get("brand") if query.get("brand") in brands else (brands[0] if brands
                                                                          else None)
        days_raw = query.get("days", "30")
        days = int(days_raw) if days_raw.isdigit() else 30
        raw = query.get("sensitivity", "")
        now = ctx.now()
        error = None
        sensitivity: str | float | None = None
        if raw:
            try:
                sensitivity = whatif.parse_sensitivity(raw)
            except whatif.WhatIfError as exc:
                error = str(exc)

        def build(store: Store) -> dict[str, Any]:
            result = None
            problem = error
            if rule is not None and brand is not None and sensitivity is not None:
                try:
                    result = whatif.run(store, rule, brand, sensitivity, days, now)
                except whatif.WhatIfError as exc:
                    problem = str(exc)
            return {"rules": [r.name for r in rules], "rule": rule.name if rule else None,
                    "current": rule.params.sensitivity if rule else None,
                    "choices": brands, "brand": brand, "days": days, "all_days": whatif.DAYS,
                    "sensitivity": raw, "result": result, "error": problem,
                    "per_day": whatif.per_day}

        return await ctx.page(request, session, "admin", "whatif.html", build)

    # -- registration --------------------------------------------------------------------
    def add_to(self, app: web.Application) -> None:
        ctx = self.ctx
        get, post = app.router.add_get, app.router.add_post
        for path in ("/", "/dashboard", "/ui", "/ui/"):
            get(path, self.home)
        get("/ui/login", _guard(self.login_form, ctx))
        post("/ui/login", _guard(self.login, ctx))
        post("/ui/logout", _guard(self.logout, ctx))
        get("/ui/pulse", _guard(self.pulse_overview, ctx))
        get("/ui/pulse/{brand}", _guard(self.pulse_brand, ctx))
        get("/ui/alerts", _guard(self.alerts_page, ctx))
        get("/ui/alerts/{alert_id}", _guard(self.alert_page, ctx))
        get("/ui/outbound", _guard(self.outbound_page, ctx))
        get("/ui/admin", _guard(self.admin_page, ctx))
        get("/ui/whatif", _guard(self.whatif_page, ctx))
        get("/ui/data/series", _guard(self.series_data, ctx, data=True))
        get("/ui/data/silence-preview", _guard(self.silence_preview, ctx, data=True))
        get("/ui/data/latest-alert", _guard(self.latest_alert, ctx, data=True))
        for path, handler in self.actions.routes():
            post(path, _guard(handler, ctx))
        app.router.add_static("/ui/static", STATIC, append_version=False)
        app.on_response_prepare.append(_headers)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        self.ctx.reader.close()


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if not request.path.startswith("/ui"):
        return
    if request.path.startswith("/ui/static/"):
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)


def _health(api: Any) -> dict[str, Any]:
    try:
        return dict(api.health())
    except Exception as exc:  # the page shows the problem instead of failing
        return {"status": "error", "error": str(exc), "sources": {}}


def _channel_kind(url: str, rotation: bool) -> str:
    """The channel's scheme only: URLs carry secrets and are never shown."""
    if rotation:
        return "on-call rotation"
    return url.split("://", 1)[0].lower() + "://" if "://" in url else "?"


def _rule_row(rule: Any) -> dict[str, Any]:
    params = rule.params
    shown: dict[str, Any] = {}
    if params is not None and hasattr(params, "__dataclass_fields__"):
        for key in params.__dataclass_fields__:
            value = getattr(params, key)
            if isinstance(value, int | float | str | bool) or value is None:
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                shown[key] = value
            elif hasattr(value, "total_seconds"):
                shown[key] = str(value)
    return {"name": rule.name, "signal": rule.signal, "severity": rule.severity,
            "brands": list(rule.brands) or ["all"], "channels": list(rule.channels),
            "enabled": rule.enabled, "file": rule.file.rsplit("/", 1)[-1],
            "description": rule.description, "params": shown}
