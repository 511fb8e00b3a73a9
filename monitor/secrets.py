"""Secret values (from ``${ENV}`` references) are masked wherever text is logged."""

from __future__ import annotations

import logging
import re

_SECRETS: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@",
                           re.IGNORECASE)
_TOKEN_PARAM = re.compile(r"(?P<k>(?:token|key|secret|pass|password|apikey)=)[^&\s]+",
                          re.IGNORECASE)
MASK = "***"


def register(value: str) -> None:
    """Remember a secret value; values shorter than 4 characters are not masked."""
    if len(value) >= 4:
        _SECRETS.add(value)


def mask(text: str) -> str:
    """Hide registered secrets, URL passwords and token-like query parameters."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _TOKEN_PARAM.sub(lambda m: f"{m['k']}{MASK}", text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
