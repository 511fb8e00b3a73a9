"""The daemon's HTTP endpoint: health, metrics, post ingestion and alert queries.

Routes (every error is JSON ``{"error": "..."}``, including 404 and 405):

``GET /healthz``
    ``api.health()`` as JSON; 200 when its status is ``"ok"``, 503 otherwise.
``GET /metrics``
    Prometheus text exposition of ``api.metrics.registry`` (no authentication).
``POST /ingest``
    Needs ``Authorization: Bearer <ingest_token>`` or, when ``ingest_hmac_secret``
    is set, an HMAC-SHA256 signature of the raw body: ``X-BrandMonitor-Timestamp:
    <unix seconds>`` (within 300 s of the server's wall clock) and
    ``X-BrandMonitor-Signature: sha256=<hex HMAC(secret, b"<timestamp>." + body)>``,
    or GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`` (no
    timestamp: a captured request can be replayed, which only re-sends the same
    posts, stored once by id). The body size limit applies before the signature is
    checked; a missing or wrong token/signature is 401. When neither is configured,
    ingestion is disabled (403) - it is never open by default. The body
    is a JSON array of posts, ``{"posts": [...]}`` or one post object, or with
    ``Content-Type: application/x-ndjson`` one post per line. Bodies over
    ``max_body_bytes`` and batches over ``max_batch`` are refused with 413. Every
    post is validated before anything is stored: one invalid post rejects the whole
    request (400, ``errors`` lists each problem by ``index``). On success 202
    ``{"accepted": n, "duplicates": d}``, plus ``unplaced`` (``[{"index", "id",
    "reason": "late"|"too_old"|"future", "created_at", "error"}]``) when some stored
    posts came too late (or too early) for any detector to count them; the daemon
    logs it and counts them in ``brandmon_posts_late_total`` and
    ``brandmon_posts_time_rejected_total``.
``GET /alerts?since=ISO&brand=NAME&rule=GLOB&status=S&limit=N`` and ``GET /alerts/{id}``
    Stored alerts, newest first, each with ``status``: where its episode is now
    (firing, acknowledged, resolved, silenced), beside ``state``, what the alert
    itself announced (firing or resolved); ``ack`` (current) and ``acks`` (the
    episode's history). ``brand`` and ``rule`` match in any case; ``state=`` is the
    same filter as ``status=``. When ``api_token`` is set they need
    ``Authorization: Bearer <api_token>``; when it is ``None`` they are readable
    without a token - acceptable because the server binds to 127.0.0.1 by default;
    set ``api_token`` before binding to any other address.
``POST /watchlist``, ``GET /watchlist?brand=&expired=true``, ``DELETE /watchlist/{id}``
    Sensitive events and hashtags the outbound screen flags (current events added by
    admins, with expiry: ``{"term": "#SomeTag", "brand"?, "note"?, "weight"?,
    "expires_in": "48h" | "expires_at": ISO | null}``, default 14 days).
``POST /approved-posts``, ``GET /approved-posts?brand=&expired=true``
    The approved-posts ledger: ``{"text": ..., "brand"?, "id"?, "valid_for"? |
    "valid_until"?}`` (or a list). An outbound post not close to a valid item is
    flagged as unsanctioned (see the outbound rule's ``ledger`` parameters).
    Writes need ``Authorization: Bearer <api_token>`` and are refused (403) while
    ``api_token`` is not configured; reads follow the alerts API's rule. Both answer
    404 when the daemon does not run the outbound screen.

The alert lifecycle (``/alerts/{id}/ack``, ``/alerts/ack``, ``/silences``...) and the outbox
(``/outbox``, dead letters) have their own route modules: lifecycle_api.py and
outbox_api.py. The dashboard (``/ui``; ``/`` and ``/dashboard`` redirect there) is
monitor/web. Reads accept ``api_token`` or ``read_token``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.clock import Clock, WallClock
from monitor.config.schema import HttpConfig
from monitor.errors import StoreBusy, StoreError
from monitor.http.api import (
    NDJSON_TYPES,
    ApiError,
    parse_alert_query,
    parse_approved_posts,
    parse_outbound_query,
    parse_posts,
    parse_watch_entries,
)
from monitor.http.auth import (
    bearer_matches,
    has_signature,
    missing_credentials,
    require_bearer,
    verify_signature,
)
from monitor.http.guard import ConnectionGuard, GuardedSite
from monitor.http.lifecycle_api import LifecycleRoutes
from monitor.http.outbox_api import OutboxRoutes
from monitor.intake import Backpressure
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.route.lifecycle import Lifecycle
from monitor.store.api import Store
from monitor.web import WebRoutes

if TYPE_CHECKING:
    from monitor.detect.outbound.runtime import OutboundRuntime

log = logging.getLogger(__name__)
access_log = logging.getLogger("monitor.http.access")
_READ_CHUNK = 64 * 1024
_dumps = functools.partial(json.dumps, default=str, ensure_ascii=False)


class DaemonApi(Protocol):
    """What the HTTP server needs from the running daemon."""

    metrics: Metrics
    store: Store

    async def ingest(self, posts: list[Post]) -> tuple[int, int]:
        """Store the whole batch in one transaction; return (accepted, duplicates)."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"|"degraded"|"starting", "sources": {...}, "outbox": {...},
        "rules": n}``."""
        ...


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a JSON body: ours, aiohttp's (404, 405...) and crashes."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.body(), exc.status, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = f"method {request.method} not allowed on {request.path} (allowed: {allowed})"
        elif isinstance(exc, web.HTTPNotFound):
            message = f"not found: {request.path}"
        else:
            message = exc.reason
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        return _json({"error": message}, exc.status, headers)
    except StoreError as exc:
        log.error("http %s %s: %s", request.method, request.path, exc)
        return _json({"error": f"state store unavailable: {exc}"}, 503,
                     {"Retry-After": "1" if isinstance(exc, StoreBusy) else "30"})
    except Exception:
        log.exception("http %s %s: unexpected error", request.method, request.path)
        return _json({"error": "internal server error (see the daemon log)"}, 500)


async def _read_body(request: web.Request, limit: int, within: float = 30.0) -> bytes:
    """Read at most ``limit`` bytes (after any Content-Encoding) within ``within``
    seconds, else 413 (too big) or 408 (too slow)."""
    too_big = ApiError(413, f"request body larger than max_body_bytes ({limit} bytes); "
                            "send smaller batches")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            while chunk := await request.content.read(_READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"request body not received within {within:g}s",
                       headers={"Connection": "close"}) from None
    return b"".join(chunks)


class _Handlers:
    def __init__(self, config: HttpConfig, api: DaemonApi, clock: Clock,
                 max_future: timedelta) -> None:
        self.config = config
        self.api = api
        self.clock = clock  # wall time, for signed-request timestamps
        self.max_future = max_future

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            health = self.api.health()
        except Exception as exc:
            log.exception("health check failed")
            return _json({"status": "error", "error": f"health check failed: {exc}"}, 503)
        status = 200 if health.get("status") == "ok" else 503
        return _json(health, status)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.api.metrics.registry)
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})

    async def ingest(self, request: web.Request) -> web.Response:
        token, secret = self.config.ingest_token, self.config.ingest_hmac_secret
        if not token and not secret:
            raise ApiError(403, "ingestion over HTTP is disabled: set http.ingest_token "
                                "(or http.ingest_hmac_secret) in the configuration to "
                                "enable POST /ingest")
        authorization = request.headers.get(hdrs.AUTHORIZATION)
        by_token = bool(token) and bearer_matches(authorization, token or "")
        if not by_token and not (secret and has_signature(request.headers)):
            if token and not secret:  # the bearer token's own messages
                require_bearer(authorization, token, "POST /ingest")
            raise missing_credentials(authorization, bearer=bool(token))
        # the size limit applies before any signature work; the signature covers the
        # exact bytes read (after any Content-Encoding), before JSON parsing
        body = await _read_body(request, self.config.max_body_bytes,
                                self.config.body_timeout.total_seconds())
        if not by_token:
            verify_signature(request.headers, body, secret or "", self.clock.now())
        ndjson = request.content_type in NDJSON_TYPES
        try:
            posts = parse_posts(body, ndjson=ndjson, max_batch=self.config.max_batch,
                                latest=self._now() + self.max_future)
        except ApiError as exc:
            errors = exc.extra.get("errors")
            if errors:
                self.api.metrics.malformed.labels(source="http").inc(len(errors))
            raise
        if not posts:
            return _json({"accepted": 0, "duplicates": 0}, 202)
        try:
            accepted, duplicates = await self.api.ingest(posts)
        except Backpressure as exc:
            raise ApiError(429, f"the daemon is busy ({exc.depth} posts waiting): retry "
                                f"after {exc.retry_after:.0f}s; nothing of this request "
                                "was stored",
                           headers={"Retry-After": f"{math.ceil(exc.retry_after)}"}) from None
        except TimeoutError:
            raise ApiError(503, "the batch was not stored in time (the store is busy): "
                                "send it again later (posts already stored are "
                                "recognised as duplicates)",
                           headers={"Retry-After": "5"}) from None
        answer: dict[str, Any] = {"accepted": accepted, "duplicates": duplicates}
        queued = getattr(self.api, "queued", None)  # optional part of DaemonApi
        waiting = queued(posts) if queued is not None else 0
        if waiting:  # stored in the journal; the detectors have not seen them yet
            answer["queued"] = waiting
        unplaced = getattr(self.api, "unplaced", None)  # optional part of DaemonApi
        found = unplaced(posts) if unplaced is not None else []
        if found:  # stored, but no detector could place them in time: say so
            answer["unplaced"] = found
        return _json(answer, 202)

    def _check_api_token(self, request: web.Request) -> None:
        """Reads: open while neither ``api_token`` nor ``read_token`` is set (loopback
        by default; "" locks everyone out), else either token."""
        tokens = [t for t in (self.config.api_token, self.config.read_token) if t is not None]
        if not tokens:
            return
        header = request.headers.get(hdrs.AUTHORIZATION)
        if not any(bearer_matches(header, t) for t in tokens[1:]):
            require_bearer(header, tokens[0], "the alerts API")

    async def alerts(self, request: web.Request) -> web.Response:
        """List alerts, each with its lifecycle ``status`` (monitor.route.lifecycle); open
        without a token only when ``api_token`` is ``None``."""
        self._check_api_token(request)
        query = request.query
        repeated = {key for key in query if len(query.getall(key)) > 1}
        q = parse_alert_query(query, repeated)
        return _json(Lifecycle(self.api.store).history(
            since=q.since, brand=q.brand, rule=q.rule, state=q.status, limit=q.limit))

    async def alert(self, request: web.Request) -> web.Response:
        """One alert as the list shows it: ``state`` is what it announced (firing or
        resolved), ``status`` where its episode is now."""
        self._check_api_token(request)
        alert_id = request.match_info["alert_id"]
        found = self.api.store.get_alert(alert_id)
        if found is None:
            raise ApiError(404, f"alert {alert_id!r} not found")
        return _json(Lifecycle(self.api.store).rows([found])[0])

    # outbound screening: watchlist and approved-posts ledger ------------------------
    def _outbound(self) -> OutboundRuntime:
        """The daemon's ``outbound`` runtime (an optional part of DaemonApi)."""
        runtime: OutboundRuntime | None = getattr(self.api, "outbound", None)
        if runtime is None:
            raise ApiError(404, "the outbound screen is not running in this daemon")
        return runtime

    def _now(self) -> datetime:
        clock = getattr(self.api, "clock", None)
        now = clock.now() if clock is not None else None
        return now if isinstance(now, datetime) else datetime.now(UTC)

    def _require_admin(self, request: web.Request, what: str) -> None:
        token = self.config.api_token
        if token is None:
            raise ApiError(403, f"{what} is disabled: set http.api_token in the "
                                "configuration to change it over HTTP")
        require_bearer(request.headers.get(hdrs.AUTHORIZATION), token, what)

    def _outbound_query(self, request: web.Request) -> tuple[str | None, bool]:
        self._check_api_token(request)
        query = request.query
        return parse_outbound_query(query, {k for k in query if len(query.getall(k)) > 1})

    async def add_watch(self, request: web.Request) -> web.Response:
        self._require_admin(request, "POST /watchlist")
        runtime = self._outbound()
        body = await _read_body(request, self.config.max_body_bytes)
        entries, single = parse_watch_entries(body, self._now(), self.config.max_batch)
        added = [runtime.add_watch(e).to_json() for e in entries]
        return _json(added[0] if single else {"entries": added}, 201)

    async def list_watch(self, request: web.Request) -> web.Response:
        brand, expired = self._outbound_query(request)
        found = self._outbound().watchlist(self._now(), brand, expired=expired)
        return _json([e.to_json() for e in found])

    async def delete_watch(self, request: web.Request) -> web.Response:
        entry_id = request.match_info["entry_id"]
        self._require_admin(request, "DELETE /watchlist")
        if not self._outbound().remove_watch(entry_id):
            raise ApiError(404, f"watchlist entry {entry_id!r} not found")
        return _json({"deleted": entry_id})

    async def add_approved(self, request: web.Request) -> web.Response:
        self._require_admin(request, "POST /approved-posts")
        runtime = self._outbound()
        body = await _read_body(request, self.config.max_body_bytes)
        items, single = parse_approved_posts(body, self._now(), runtime.validity,
                                             self.config.max_batch)
        stored = [runtime.approve(item) for item in items]
        rows = [dict(item.to_json(), created=created) for item, created in stored]
        return _json(rows[0] if single else {"posts": rows}, 201)

    async def list_approved(self, request: web.Request) -> web.Response:
        brand, expired = self._outbound_query(request)
        found = self._outbound().approved_posts(self._now(), brand, expired=expired)
        return _json([a.to_json() for a in found])


def create_app(config: HttpConfig, api: DaemonApi, *, clock: Clock | None = None,
               max_future: timedelta = timedelta(minutes=5),
               guard: ConnectionGuard | None = None) -> web.Application:
    """Build the aiohttp application (not started: see :func:`start_http`).

    ``clock`` (default: the wall clock) judges signed requests' timestamps. It is
    not the daemon's clock, which may be simulated (demo source): senders sign
    with real time.
    """
    middlewares = [guard.middleware] if guard is not None else []
    app = web.Application(middlewares=[*middlewares, _json_errors],
                          client_max_size=config.max_body_bytes)
    h = _Handlers(config, api, clock or WallClock(), max_future)
    app.router.add_get("/healthz", h.healthz)
    app.router.add_get("/metrics", h.metrics)
    app.router.add_post("/ingest", h.ingest)
    app.router.add_get("/alerts", h.alerts)
    app.router.add_get("/alerts/{alert_id}", h.alert)
    app.router.add_post("/watchlist", h.add_watch)
    app.router.add_get("/watchlist", h.list_watch)
    app.router.add_delete("/watchlist/{entry_id}", h.delete_watch)
    app.router.add_post("/approved-posts", h.add_approved)
    app.router.add_get("/approved-posts", h.list_approved)
    LifecycleRoutes(api.store, h._now, h._check_api_token, h._require_admin,
                    config.max_body_bytes, getattr(api, "labels", None)).add_to(app)
    OutboxRoutes(api.store, h._check_api_token, h._require_admin,
                 config.max_body_bytes, getattr(api, "outbox_wake", None)).add_to(app)
    WebRoutes(config, api, h._now).add_to(app)  # the dashboard, /ui (monitor/web)
    return app


async def start_http(config: HttpConfig, api: DaemonApi, *,
                     max_future: timedelta = timedelta(minutes=5)) -> web.AppRunner:
    """Serve on ``config.host:config.port`` (port 0: any free port, see :func:`bound_port`)
    behind a :class:`ConnectionGuard` (connection cap, idle and header timeout).

    Returns the runner; stop with ``await runner.cleanup()``. Raises OSError when
    the address cannot be bound (the runner is cleaned up first).
    """
    metrics = getattr(api, "metrics", None)
    guard = ConnectionGuard(
        max_connections=config.max_connections,
        idle_timeout=config.idle_timeout.total_seconds(),
        on_refused=metrics.http_refused.inc if metrics is not None else lambda: None)
    app = create_app(config, api, max_future=max_future, guard=guard)
    runner = web.AppRunner(app, access_log=access_log,
                           keepalive_timeout=config.idle_timeout.total_seconds())
    await runner.setup()
    try:
        await GuardedSite(runner, config.host, config.port, guard).start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("http: listening on %s:%d", config.host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner actually listens on (useful with port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("http server is not listening on a TCP port")
