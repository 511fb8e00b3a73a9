"""Dashboard sign-in: tokens exchanged once for a session cookie; CSRF on every action.

- No token configured (``api_token`` and ``read_token`` unset; the server then binds
  to loopback only): pages are open, without sign-in, and read-only, as the API's
  writes are disabled without ``api_token``.
- Otherwise the sign-in form asks for a token once: ``api_token`` opens an *admin*
  session (pages and actions), ``read_token`` a *read* session (pages only). The
  session id travels in an ``HttpOnly; SameSite=Strict`` cookie (``Secure`` over
  HTTPS); sessions live in memory for :data:`SESSION_LIFE` (a restart signs
  everyone out).
- Every action is a POST carrying the session's CSRF token (form field
  ``csrf_token`` or header ``X-CSRF-Token``), compared in constant time; a request
  a browser marks as cross-site (``Origin`` of another host, ``Sec-Fetch-Site:
  cross-site``) is refused before that.
- Failed sign-ins are limited per client address (:data:`MAX_FAILURES` a minute).

Tokens are never logged or echoed; the session id and CSRF token are random 256-bit
values.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

from monitor.config.schema import HttpConfig

COOKIE = "bm_session"
SESSION_LIFE = 12 * 3600.0  # seconds
MAX_SESSIONS = 1000
MAX_FAILURES = 10  # failed sign-ins per client address and minute
Role = Literal["admin", "read"]


@dataclass(slots=True)
class Session:
    id: str
    role: Role
    csrf: str
    name: str
    expires: float
    open: bool = False  # no tokens configured: nobody signed in

    @property
    def can_act(self) -> bool:
        return self.role == "admin"


class Sessions:
    def __init__(self, config: HttpConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._by_id: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}

    def _now(self) -> float:
        return self.clock()

    @property
    def required(self) -> bool:
        """True when a sign-in is needed (a token is configured)."""
        return self.config.api_token is not None or self.config.read_token is not None

    def role_for(self, presented: str) -> Role | None:
        """The role a presented token opens (constant-time comparisons), or None."""
        given = presented.strip().encode("utf-8", "surrogatepass")
        if not given:
            return None
        found: Role | None = None
        for role, token in (("admin", self.config.api_token), ("read", self.config.read_token)):
            if token and hmac.compare_digest(given, token.encode("utf-8", "surrogatepass")):
                found = found or role  # type: ignore[assignment]
        return found

    def throttled(self, client: str) -> bool:
        window = self._failures.get(client)
        now = self._now()
        while window and window[0] < now - 60:
            window.popleft()
        return bool(window) and len(window or ()) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures.setdefault(client, deque()).append(self._now())

    def create(self, role: Role, name: str) -> Session:
        now = self._now()
        if len(self._by_id) >= MAX_SESSIONS:
            for key in sorted(self._by_id, key=lambda k: self._by_id[k].expires)[:100]:
                del self._by_id[key]
        session = Session(secrets.token_urlsafe(32), role, secrets.token_urlsafe(32),
                          name.strip()[:80] or "dashboard", now + SESSION_LIFE)
        self._by_id[session.id] = session
        return session

    def get(self, request: web.Request) -> Session | None:
        """The request's session: the open one when no token is configured."""
        if not self.required:
            return Session("", "read", "", "dashboard", float("inf"), open=True)
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        if session.expires <= self._now():
            del self._by_id[sid]
            return None
        return session

    def end(self, session: Session) -> None:
        self._by_id.pop(session.id, None)


def set_cookie(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=int(SESSION_LIFE))


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def cross_site(request: web.Request) -> bool:
    """True when the browser says the request comes from another site."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != request.host.lower()


def csrf_ok(session: Session, presented: str | None) -> bool:
    if not presented or not session.csrf:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                               session.csrf.encode("utf-8"))
