"""Native webhook channel: ``webhook://host[:port]/path`` (HTTP) or ``webhooks://...`` (HTTPS).

Each alert is POSTed as ``alert.to_json()`` (``Content-Type: application/json``) plus
``message``, what people are told in the order they read it (headline, why, top
posts, sentiment, statistic, actions: :mod:`monitor.notify.present`), and ``text``,
that message rendered by the channel's template (default ``text``), with these
headers:

``Idempotency-Key: <alert id>``
    The alert's id: the same on every retry and after a restart (see
    draft-ietf-httpapi-idempotency-key-header; the bare id is sent, as Stripe
    and most receivers expect). The outbox delivers at least once: a crash
    between the POST and the outbox's "sent" mark re-sends the alert. A
    receiver that remembers the keys it has processed (for longer than the
    outbox can retry, a day is plenty) acts on each alert exactly once.

``X-BrandMonitor-Timestamp: <unix seconds>`` and ``X-BrandMonitor-Signature: sha256=<hex>``
    Only when the URL has ``secret=${ENV_VAR}``. The signature is
    ``HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_body)`` in lowercase
    hex (Stripe/GitHub style). The ``secret`` parameter is removed from the URL
    actually requested; other query parameters are passed through. A receiver
    verifies it like this::

        import hashlib, hmac, time

        def verify(secret: bytes, headers, body: bytes, tolerance: int = 300) -> bool:
            stamp = headers.get("X-BrandMonitor-Timestamp", "")
            sig = headers.get("X-BrandMonitor-Signature", "")
            if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
                return False  # missing, or older/newer than 5 minutes: a replay?
            mac = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256)
            return hmac.compare_digest(sig, "sha256=" + mac.hexdigest())

    Each attempt is signed afresh (new timestamp), so a retry hours later is
    still within the tolerance. Sign/verify the raw body bytes, not re-encoded
    JSON.

Outcome: any 2xx is delivered. 408, 425, 429, 5xx, connection errors and
timeouts raise ``DeliveryError(retryable=True)`` (the outbox backs off); any
other status (other 4xx, and 3xx: redirects are not followed) raises
``DeliveryError(retryable=False)`` naming the status. Messages never carry the
secret: it is registered with ``monitor.secrets``, whose ``mask`` every
``DeliveryError`` message goes through.

One short-lived ``aiohttp.ClientSession`` is used per send: alerts are rare, and
the notifier then holds nothing that needs closing at shutdown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl as ssl_module
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from monitor import secrets
from monitor.errors import DeliveryError
from monitor.model import Alert
from monitor.notify.present import present
from monitor.notify.templates import TEMPLATES, Template, render_with

log = logging.getLogger(__name__)

WEBHOOK_SCHEMES = {"webhook": "http", "webhooks": "https"}
SECRET_PARAM = "secret"
KEY_HEADER = "Idempotency-Key"
TIMESTAMP_HEADER = "X-BrandMonitor-Timestamp"
SIGNATURE_HEADER = "X-BrandMonitor-Signature"
USER_AGENT = "brand-monitor-webhook/1"
DEFAULT_TIMEOUT = 30.0  # seconds; below the outbox's own send timeout (60 s)
RETRYABLE_STATUS = frozenset({408, 425, 429})
_DETAIL_MAX = 200


def is_webhook_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in WEBHOOK_SCHEMES if "://" in url else False


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-BrandMonitor-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookNotifier:
    """POST each alert as JSON with an Idempotency-Key (and an HMAC signature)."""

    def __init__(self, name: str, url: str, *, secret: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT,
                 ssl: ssl_module.SSLContext | bool = True,
                 now: Callable[[], float] = time.time,
                 template: Template | None = None) -> None:
        self.name = name
        self.template = template or TEMPLATES.get("text")
        self.url = url          # http(s)://..., without the secret
        self._secret = secret.encode("utf-8") if secret else None
        if secret:
            secrets.register(secret)  # masked in every message (monitor.secrets)
        self.timeout = timeout
        self._ssl = ssl
        self._now = now
        parts = urlsplit(url)
        # for messages: scheme, host, port and path only (no credentials, no query)
        self.shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                                 "", ""))

    @property
    def signed(self) -> bool:
        return self._secret is not None

    @classmethod
    def from_url(cls, name: str, url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 ssl: ssl_module.SSLContext | bool = True,
                 template: Template | None = None) -> WebhookNotifier:
        """Parse ``webhook[s]://host[:port]/path[?query]``; DeliveryError(False) if invalid."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in WEBHOOK_SCHEMES:
            raise DeliveryError(f"channel {name!r}: not a webhook URL ({scheme or 'no'} scheme)",
                                retryable=False)
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise DeliveryError(f"channel {name!r}: invalid {scheme}:// URL (bad host or port; "
                                "the full URL is not shown because it may contain secrets)",
                                retryable=False) from None
        if not parts.hostname:
            raise DeliveryError(f"channel {name!r}: {scheme}:// needs a host, e.g. "
                                f"{scheme}://hooks.example.com/brand-monitor", retryable=False)
        query = parse_qsl(parts.query, keep_blank_values=True)
        found = [value for key, value in query if key == SECRET_PARAM]
        if len(found) > 1:
            raise DeliveryError(f"channel {name!r}: {scheme}:// URL has more than one "
                                f"{SECRET_PARAM}= parameter", retryable=False)
        secret = found[0] if found else None
        if secret is not None and not secret:
            raise DeliveryError(f"channel {name!r}: {scheme}:// URL has an empty "
                                f"{SECRET_PARAM}= (write {SECRET_PARAM}=${{ENV_VAR}})",
                                retryable=False)
        rest = urlencode([(k, v) for k, v in query if k != SECRET_PARAM])
        target = urlunsplit((WEBHOOK_SCHEMES[scheme], parts.netloc, parts.path or "/", rest, ""))
        return cls(name, target, secret=secret, timeout=timeout, ssl=ssl, template=template)

    def body(self, alert: Alert) -> bytes:
        payload = alert.to_json()
        try:
            payload["message"] = present(alert).to_json()
        except Exception:  # the alert's own fields still go out
            log.exception("could not present alert %s", alert.id)
        payload["text"] = render_with(alert, self.template).body
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode("utf-8")

    def headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", KEY_HEADER: alert.id,
                   "User-Agent": USER_AGENT}
        if self._secret is not None:
            stamp = int(self._now())
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(self._secret, stamp, body)
        return headers

    async def send(self, alert: Alert) -> None:
        body = self.body(alert)
        headers = self.headers(alert, body)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                    self.url, data=body, headers=headers,
                    allow_redirects=False, ssl=self._ssl) as response:
                status = response.status
                if 200 <= status < 300:
                    await response.read()
                    log.debug("channel %r: %s answered %d for alert %s", self.name, self.shown,
                              status, alert.id)
                    return
                detail = await _detail(response)
        except TimeoutError as exc:
            raise self._error(f"no answer within {self.timeout:g}s", True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._error(f"{type(exc).__name__}: {exc}", True) from exc
        retryable = status in RETRYABLE_STATUS or status >= 500
        what = f"HTTP {status}" + (f" {response.reason}" if response.reason else "")
        if 300 <= status < 400:
            what += " (redirects are not followed: configure the final URL)"
        raise self._error(what + (f": {detail}" if detail else ""), retryable)

    def _error(self, what: str, retryable: bool) -> DeliveryError:
        # DeliveryError masks its message: the URL's secrets and the signing secret
        return DeliveryError(f"channel {self.name!r}: webhook {self.shown} failed: {what}",
                             retryable=retryable)


async def _detail(response: aiohttp.ClientResponse) -> str:
    """The start of an error response's body, on one line (masked by the caller)."""
    try:
        raw = await response.content.read(4 * _DETAIL_MAX)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())[:_DETAIL_MAX]


__all__ = ["WebhookNotifier", "is_webhook_url", "sign"]
