"""Secret values are masked wherever text leaves the process: the one mechanism.

The config loader registers the value of every ``${ENV}`` reference it expands
(``register``); a few components register values they derive (the webhook's
``secret=``, source tokens). ``mask`` then hides a registered value in any form
it can take after URLs are parsed and rewritten by us, aiohttp or apprise:

* as written, or percent-encoded in part or whole (``%2F`` or ``%2f``), with
  ``+`` for a space (form encoding), or JSON-escaped (``\\"``, ``\\/``, ``\\u00e9``);
* when the registered value is itself percent-encoded (a password written
  ``p%40ss`` in a URL's userinfo), also decoded;
* when the registered value is a whole URL (``url: ${HOOK_URL}``), also each
  secret-bearing part of it: user, password, path and query values, so that a
  rewritten URL (``webhook://`` sent as ``http://``) or a parser's message that
  quotes only the path does not show them.

On top of that, URL passwords (``scheme://user:PASSWORD@``) and token-like query
parameters (``?token=...``) are masked whatever their origin.

Every log record passes through :class:`MaskingFilter` (installed by
``monitor.logs``); error texts that are stored (the outbox's ``last_error``,
admin alerts) or printed by the CLI go through :func:`mask` first.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

MASK = "***"
MIN_LENGTH = 4  # shorter values are not masked (they would blank out ordinary words)

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@",
                           re.IGNORECASE)
_TOKEN_PARAM = re.compile(r"(?P<k>(?:token|key|secret|pass|password|apikey)=)[^&\s]+",
                          re.IGNORECASE)

_lock = threading.Lock()
_SECRETS: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Remember a secret value (and the parts and forms of it worth hiding)."""
    global _pattern
    forms = {f for f in _forms(value) if len(f) >= MIN_LENGTH}
    with _lock:
        if forms <= _SECRETS:
            return
        _SECRETS.update(forms)
        alternatives = [_any_encoding(s) for s in sorted(_SECRETS, key=len, reverse=True)]
        _pattern = re.compile("|".join(alternatives))


def mask(text: str) -> str:
    """Hide registered secrets (in any encoding), URL passwords and token parameters."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _TOKEN_PARAM.sub(lambda m: f"{m['k']}{MASK}", text)


def _forms(value: str) -> set[str]:
    forms = {value, unquote(value), unquote_plus(value)}
    if "://" in value:
        forms.update(_url_parts(value))
    return forms


def _url_parts(url: str) -> set[str]:
    """The parts of a URL that may carry a credential (not scheme, host or port)."""
    try:
        parts = urlsplit(url.strip())
        username, password = parts.username, parts.password
    except ValueError:
        return set()
    found = {url.split("://", 1)[1]}
    found.update(p for p in (username, password) if p)
    found.update(unquote(p) for p in (username, password) if p)
    if parts.path not in ("", "/"):
        found.update({parts.path, parts.path.strip("/")})
    found.update(v for _, v in parse_qsl(parts.query, keep_blank_values=True))
    if parts.fragment:
        found.add(parts.fragment)
    return found


def _any_encoding(secret: str) -> str:
    """A regex matching ``secret`` with each character as itself, percent-encoded
    (either hex case), form-encoded (space as ``+``) or JSON-escaped."""
    return "".join(_char(ch) for ch in secret)


def _char(ch: str) -> str:
    options = [re.escape(ch)]
    options.append("".join(f"%{_hex_any_case(b)}" for b in ch.encode("utf-8")))
    if ch == " ":
        options.append(r"\+")
    if ch in "\"\\/":
        options.append(re.escape("\\" + ch))
    if not ch.isascii() or not ch.isprintable():
        code = ord(ch)
        if code <= 0xFFFF:
            options.append(r"\\u" + _hex_any_case(code, 4))
    return "(?:" + "|".join(options) + ")"


def _hex_any_case(number: int, width: int = 2) -> str:
    digits = f"{number:0{width}x}"
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message
    (and in the traceback text of a logged exception)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True
