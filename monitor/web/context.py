"""What every dashboard handler shares: the daemon's parts, sessions, the reader, and
the page/auth plumbing (sign-in redirects, CSRF checks, rendering off the loop)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from monitor.config.schema import BrandConfig, ChannelConfig, HttpConfig, Rule
from monitor.store.api import Store
from monitor.web.reader import Reader
from monitor.web.render import render, static_version
from monitor.web.session import Session, Sessions, cross_site, csrf_ok

if TYPE_CHECKING:
    from monitor.detect.outbound.runtime import OutboundRuntime

NAV = (("pulse", "/ui/pulse", "Pulse"), ("alerts", "/ui/alerts", "Alerts"),
       ("outbound", "/ui/outbound", "Outbound review"), ("admin", "/ui/admin",
                                                          "Health & rules"))


class Denied(Exception):
    """An action refused before anything changed (status and a message for people)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebContext:
    def __init__(self, config: HttpConfig, api: Any, now: Callable[[], datetime]) -> None:
        self.config = config
        self.api = api
        self.now = now
        self.store: Store = api.store
        self.sessions = Sessions(config)
        self.reader = Reader(self.store)
        self.version = static_version()

    # -- the daemon's parts (optional beyond the store: tests run a bare API) ---------
    def brands(self) -> list[BrandConfig]:
        config = getattr(self.api, "config", None)
        if config is not None:
            return list(config.brands)
        return [BrandConfig(name=b, keywords=(b,)) for b in self.store.aggregate_brands()]

    def brand_names(self) -> list[str]:
        return [b.name for b in self.brands()]

    def brand(self, name: str) -> BrandConfig | None:
        return next((b for b in self.brands() if b.name == name), None)

    def rules(self) -> list[Rule]:
        engine = getattr(self.api, "engine", None)
        return list(engine.rules.rules) if engine is not None else []

    def channels(self) -> list[ChannelConfig]:
        config = getattr(self.api, "config", None)
        return list(config.channels) if config is not None else []

    def outbound(self) -> OutboundRuntime | None:
        return getattr(self.api, "outbound", None)

    def wake_outbox(self) -> None:
        wake = getattr(self.api, "outbox_wake", None)
        if wake is not None:
            wake.set()

    # -- sessions ------------------------------------------------------------------
    def session(self, request: web.Request) -> Session:
        """The signed-in session of a page request, else a redirect to sign in."""
        session = self.sessions.get(request)
        if session is None:
            raise web.HTTPSeeOther(f"/ui/login?next={_quote(request.path_qs)}")
        return session

    def data_session(self, request: web.Request) -> Session:
        """The session of a data (JSON) request, else 401."""
        session = self.sessions.get(request)
        if session is None:
            raise Denied(401, "sign in first")
        return session

    async def acting(self, request: web.Request) -> tuple[Session, Any]:
        """The session and form of an action (POST): same site, valid CSRF token and a
        session that may act; otherwise :class:`Denied` (nothing is changed)."""
        if cross_site(request):
            raise Denied(403, "refused: the request came from another site")
        session = self.sessions.get(request)
        if session is None:
            raise Denied(401, "your session has ended: sign in again")
        if session.open:
            raise Denied(403, "actions are disabled: set http.api_token in the configuration "
                              "to act from the dashboard")
        form = await request.post()
        presented = request.headers.get("X-CSRF-Token") or form.get("csrf_token")
        if not csrf_ok(session, presented if isinstance(presented, str) else None):
            raise Denied(403, "refused: missing or invalid CSRF token (reload the page "
                              "and try again)")
        if not session.can_act:
            raise Denied(403, "this session is read-only (signed in with the read token)")
        return session, form

    # -- pages -----------------------------------------------------------------------
    def base(self, request: web.Request, session: Session, page: str) -> dict[str, Any]:
        return {"session": session, "nav": NAV, "page": page, "v": self.version,
                "path": request.path_qs, "brands": self.brand_names(),
                "can_act": session.can_act, "now": self.now(),
                "message": _MESSAGES.get(request.query.get("done", ""))}

    async def page(self, request: web.Request, session: Session, page: str, template: str,
                   build: Callable[[Store], dict[str, Any]] | None = None,
                   status: int = 200) -> web.Response:
        """Build the page's data and render it on a worker thread (never on the loop)."""
        base = self.base(request, session, page)

        def work(store: Store) -> str:
            data = build(store) if build is not None else {}
            return render(template, **base, **data)

        html = await self.reader.run(work)
        return html_response(html, status)

    def error_page(self, request: web.Request, status: int, message: str) -> web.Response:
        session = self.sessions.get(request)
        base = self.base(request, session, "") if session is not None else {
            "session": None, "nav": (), "page": "", "v": self.version, "path": request.path,
            "brands": [], "can_act": False, "now": self.now(), "message": None}
        return html_response(render("error.html", status=status, error=message, **base),
                             status)


def redirect(location: str) -> web.Response:
    """303 See Other (after a form POST: the browser GETs ``location``)."""
    return web.Response(status=303, headers={"Location": location})


def html_response(html: str, status: int = 200) -> web.Response:
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


@functools.cache
def _quote_table() -> dict[int, str]:
    safe = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/")
    return {i: chr(i) if i in safe else f"%{i:02X}" for i in range(256)}


def _quote(text: str) -> str:
    table = _quote_table()
    return "".join(table[b] for b in text.encode("utf-8"))


def safe_next(raw: str | None) -> str:
    """A local path to return to after sign-in (never another site)."""
    if not raw or not raw.startswith("/ui") or raw.startswith("//") or "\\" in raw:
        return "/ui/pulse"
    return raw


_MESSAGES = {
    "ack": "Acknowledged.", "silence": "Silence created.", "expire": "Silence ended.",
    "approve": "Approved as sanctioned: the post is in the approved-posts ledger.",
    "dismiss": "Dismissed.", "watch": "Added to the watchlist.",
    "unwatch": "Removed from the watchlist.", "retry": "Queued for delivery again.",
    "bulk-ack": "Selected alerts acknowledged.", "bulk-silence": "Silences created.",
}
