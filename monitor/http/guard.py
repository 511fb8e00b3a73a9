"""Connection limits aiohttp does not enforce by itself.

aiohttp reads request headers and bodies for as long as a client cares to trickle them
(slowloris) and accepts any number of connections. :class:`ConnectionGuard` wraps the
server's protocol factory:

- at most ``max_connections`` open connections; one more gets a plain
  ``503 Service Unavailable`` with ``Retry-After`` and is closed;
- a connection with no request being handled for ``idle_timeout`` is closed: this
  bounds both the time to send a request's headers (a request reaches the handlers only
  once its headers are complete) and an idle keep-alive connection;
- request bodies are read under ``body_timeout`` by the handlers
  (:func:`monitor.http.server._read_body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)
SWEEP_SECONDS = 0.25


class _Refuse(asyncio.Protocol):
    """Answers one connection over the limit with a 503 and closes it."""

    _BODY = json.dumps({"error": "too many connections: retry shortly"}).encode()
    _RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                 b"Content-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self._RESPONSE)
        transport.close()


class ConnectionGuard:
    def __init__(self, *, max_connections: int, idle_timeout: float,
                 on_refused: Callable[[], None] = lambda: None) -> None:
        self._factory: Callable[[], Any] | None = None  # the server's, set by GuardedSite
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._on_refused = on_refused
        # handler -> [requests in flight, loop time of its last activity, seen connected]
        self._live: dict[Any, list[Any]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        return len(self._live)

    def __call__(self) -> asyncio.BaseProtocol:
        """The protocol factory handed to ``loop.create_server``."""
        loop = asyncio.get_running_loop()
        if len(self._live) >= self.max_connections:
            self._sweep(loop.time())  # closed ones may not have been noticed yet
        if len(self._live) >= self.max_connections:
            self._on_refused()
            return _Refuse()
        assert self._factory is not None, "GuardedSite sets the factory when it starts"
        handler = self._factory()
        self._live[handler] = [0, loop.time(), False]
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep_loop(), name="http-guard")
        return handler  # type: ignore[no-any-return]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while a request is being handled."""
        state = self._live.get(request.protocol)
        if state is None:
            return await handler(request)
        state[0] += 1
        try:
            return await handler(request)
        finally:
            state[0] -= 1
            state[1] = asyncio.get_running_loop().time()

    def _sweep(self, now: float) -> None:
        for handler, state in list(self._live.items()):
            transport = handler.transport
            if transport is None:
                if state[2] or now - state[1] > 5.0:  # was connected: now it is gone
                    del self._live[handler]
                continue
            state[2] = True
            if transport.is_closing():
                del self._live[handler]
            elif state[0] == 0 and now - state[1] > self.idle_timeout:
                log.debug("http: closing a connection idle for %.1fs", now - state[1])
                transport.close()
                del self._live[handler]

    async def _sweep_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._live:
            await asyncio.sleep(SWEEP_SECONDS)
            self._sweep(loop.time())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self.guard._factory = server
        self._server = await loop.create_server(self.guard, self._host, self._port,
                                                reuse_address=self._reuse_address)
        self._bound_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.guard.close()
        await super().stop()
