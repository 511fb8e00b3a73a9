"""Authentication of HTTP requests: bearer tokens and HMAC-signed bodies.

Every comparison is constant-time; errors are :class:`~monitor.http.api.ApiError`
401s that never echo a secret or the expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta

from monitor.http.api import ApiError


def bearer_matches(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (constant-time comparison).

    An empty presented token never matches, so an empty configured token locks
    everyone out rather than letting ``Authorization: Bearer`` through.
    """
    if header is None:
        return False
    scheme, _, presented = header.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return False
    # compare bytes: compare_digest refuses non-ASCII str, and surrogatepass is injective
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                               token.encode("utf-8", "surrogatepass"))


def require_bearer(header: str | None, token: str, what: str) -> None:
    if bearer_matches(header, token):
        return
    message = (f"{what} requires 'Authorization: Bearer <token>'" if header is None
               else f"{what}: invalid bearer token")
    raise ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="brand-monitor"'})


#: Signed /ingest: ``X-BrandMonitor-Signature: sha256=<hex>`` over ``b"<timestamp>." + body``.
SIGNATURE_HEADER = "X-BrandMonitor-Signature"
TIMESTAMP_HEADER = "X-BrandMonitor-Timestamp"
#: GitHub's form: ``X-Hub-Signature-256: sha256=<hex>`` over the body alone (no timestamp).
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
#: How far a signed request's timestamp may be from the server clock (either way).
SIGNATURE_TOLERANCE = timedelta(seconds=300)
_SIG_PREFIX = "sha256="


def has_signature(headers: Mapping[str, str]) -> bool:
    """True when the request carries either signature header (then it is checked)."""
    return SIGNATURE_HEADER in headers or GITHUB_SIGNATURE_HEADER in headers


def _hex_matches(presented: str, key: bytes, message: bytes) -> bool:
    presented = presented.strip()
    if presented[:len(_SIG_PREFIX)].lower() != _SIG_PREFIX:
        return False
    expected = hmac.new(key, message, hashlib.sha256).hexdigest().encode("ascii")
    given = presented[len(_SIG_PREFIX):].strip().lower()
    # bytes with surrogatepass: compare_digest refuses non-ASCII str
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected)


def _signature_error(message: str) -> ApiError:
    return ApiError(401, f"POST /ingest: {message}",
                    headers={"WWW-Authenticate": 'Bearer realm="brand-monitor"'})


def missing_credentials(authorization: str | None, *, bearer: bool) -> ApiError:
    """401 for an /ingest request with neither a valid bearer token nor a signature."""
    wanted = (f"{SIGNATURE_HEADER} with {TIMESTAMP_HEADER} (or {GITHUB_SIGNATURE_HEADER})")
    if bearer:
        wanted = f"'Authorization: Bearer <token>' or {wanted}"
    if bearer and authorization is not None:
        return _signature_error(f"invalid bearer token and no signature: send {wanted}")
    return _signature_error(f"requires {wanted}")


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str,
                     now: datetime) -> None:
    """Check an HMAC-SHA256 signature of the raw ``body``; raise ApiError 401 if wrong.

    Preferred form: ``X-BrandMonitor-Timestamp: <unix seconds>`` and
    ``X-BrandMonitor-Signature: sha256=<hex HMAC(secret, b"<timestamp>." + body)>``,
    with the timestamp within :data:`SIGNATURE_TOLERANCE` of ``now`` (replay guard).
    Otherwise GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>``,
    which carries no timestamp. Comparisons are constant-time; error messages never
    include the secret or the expected signature.
    """
    key = secret.encode("utf-8", "surrogatepass")
    if SIGNATURE_HEADER in headers:
        stamp = headers.get(TIMESTAMP_HEADER)
        if stamp is None:
            raise _signature_error(f"{SIGNATURE_HEADER} needs {TIMESTAMP_HEADER} "
                                   "(unix seconds)")
        stamp = stamp.strip()
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise _signature_error(f"{TIMESTAMP_HEADER}: must be unix seconds (an integer)")
        skew = abs(now.timestamp() - int(stamp))
        if skew > SIGNATURE_TOLERANCE.total_seconds():
            raise _signature_error(
                f"{TIMESTAMP_HEADER} is {int(skew)}s away from the server clock (allowed: "
                f"{int(SIGNATURE_TOLERANCE.total_seconds())}s); sign each request when "
                "sending it")
        if not _hex_matches(headers[SIGNATURE_HEADER], key, stamp.encode("ascii") + b"." + body):
            raise _signature_error(f"invalid {SIGNATURE_HEADER} (expected sha256=<hex "
                                   "HMAC-SHA256 of '<timestamp>.' + body>)")
        return
    presented = headers.get(GITHUB_SIGNATURE_HEADER)
    if presented is None:
        raise missing_credentials(None, bearer=False)
    if not _hex_matches(presented, key, body):
        raise _signature_error(f"invalid {GITHUB_SIGNATURE_HEADER} (expected sha256=<hex "
                               "HMAC-SHA256 of the body>)")
