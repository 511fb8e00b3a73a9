"""Plain-text notification text for people: one compact title and a readable body.

``render`` never raises: the explanation in ``alert.details`` comes from
detectors (and from the database), so any surprise in it must cost the reader
some detail, never the notification itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from monitor.model import Alert

log = logging.getLogger(__name__)

TITLE_MAX = 120
BODY_MAX = 4000
_TEXT_MAX = 200
_TOP_POSTS = 3
_TOP_TERMS = 8


def render(alert: Alert) -> tuple[str, str]:
    """Return ``(title, body)`` for ``alert``; a minimal pair if rendering fails."""
    try:
        return _title(alert), _clip(_body(alert), BODY_MAX)
    except Exception:
        log.exception("could not render alert %s; sending a minimal notification",
                      _safe(lambda: alert.id))
        return _fallback(alert)


def state_label(alert: Alert) -> str:
    """FIRING, STILL FIRING (a reminder) or RESOLVED - all clear."""
    if alert.state == "resolved":
        return "RESOLVED - all clear"
    if alert.title.lower().startswith("still firing"):
        return "STILL FIRING"
    return "FIRING"


def _title(alert: Alert) -> str:
    """``STATE [SEVERITY] brand: rule - summary``, clipped for SMS and pager screens."""
    title = f"{state_label(alert)} [{alert.severity.upper()}] {alert.brand}"
    if alert.rule:
        title += f": {alert.rule}"
    summary = " ".join(alert.summary.split())
    summary = summary.removeprefix(f"{alert.brand}: ")
    if summary:
        title += f" - {summary}"
    return _clip(title, TITLE_MAX)


def _body(alert: Alert) -> str:
    lines = [f"{state_label(alert)} | severity {alert.severity} | brand {alert.brand} | "
             f"rule {alert.rule}"]
    if alert.summary:
        lines.append(_oneline(alert.summary, 600))
    details = alert.details
    if isinstance(details, Mapping) and details:
        explanation = _explain(details)
        if explanation:
            lines.append("")
            lines.extend(explanation)
    lines.append("")
    lines.append(f"Alert {alert.id} at {_iso(alert)}")
    return "\n".join(lines)


def _explain(d: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    observed, expected = d.get("observed"), d.get("expected")
    if _is_num(observed):
        line = f"Observed {_num(observed)}"
        if _is_num(expected):
            line += f" vs expected {_num(expected)}"
        stats = [f"{key} {_num(d.get(key))}" for key in ("statistic", "threshold")
                 if _is_num(d.get(key))]
        if stats:
            line += f" ({', '.join(stats)})"
        out.append(line)
    window = d.get("window")
    if isinstance(window, Mapping):
        seconds, start = window.get("seconds"), window.get("start")
        parts = [f"{_duration(seconds)} window" if _is_num(seconds) else "window"]
        if isinstance(start, str):
            parts.append(f"from {start}")
        out.append("Window: " + " ".join(parts))
    elif isinstance(window, str | int | float) and not isinstance(window, bool):
        out.append(f"Window: {window}")
    if _is_num(d.get("distinct_authors")):
        out.append(f"Distinct authors: {_num(d.get('distinct_authors'))}")
    mix = d.get("sentiment_mix")
    if isinstance(mix, Mapping):
        parts = [f"{_num(n)} {label}" for label, n in mix.items() if _is_num(n)]
        if parts:
            out.append("Sentiment: " + ", ".join(parts))
    terms = _terms(d.get("top_terms"))
    if terms:
        out.append("Top terms: " + ", ".join(terms))
    repeated = d.get("repeated_post")
    if isinstance(repeated, Mapping) and isinstance(repeated.get("text"), str):
        copies = repeated.get("copies")
        count = f" ({_num(copies)} copies)" if _is_num(copies) else ""
        out.append(f"Repeated post{count}: \"{_oneline(repeated['text'], _TEXT_MAX)}\"")
    reasons = d.get("reasons")
    if isinstance(reasons, list | tuple) and reasons:
        out.append("Reasons:")
        out.extend(f"  - {_oneline(str(r), _TEXT_MAX)}" for r in reasons[:10])
    post = d.get("post")
    if isinstance(post, Mapping):
        out.append("Post: " + _post_line(post))
    posts = d.get("top_posts")
    if isinstance(posts, list | tuple):
        shown = [_post_line(p) for p in posts if isinstance(p, Mapping)][:_TOP_POSTS]
        if shown and not (isinstance(post, Mapping) and len(posts) == 1):
            out.append("Top posts:")
            out.extend(f"  - {line}" for line in shown)
    return out


def _terms(raw: object) -> list[str]:
    if not isinstance(raw, list | tuple):
        return []
    terms: list[str] = []
    for item in raw[:_TOP_TERMS]:
        if isinstance(item, str):
            terms.append(item)
        elif (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
              and _is_num(item[1])):
            terms.append(f"{item[0]} ({_num(item[1])})")
    return terms


def _post_line(post: Mapping[str, Any]) -> str:
    author = post.get("author")
    who = f"@{str(author).lstrip('@')}" if author else "someone"
    followers = post.get("followers")
    if _is_num(followers):
        who += f" ({_num(followers)} followers)"
    text = post.get("text")
    line = f"{who}: \"{_oneline(text, _TEXT_MAX)}\"" if isinstance(text, str) else who
    url = post.get("url")
    if isinstance(url, str) and url:
        line += f" {url}"
    return line


def _fallback(alert: Alert) -> tuple[str, str]:
    severity = _safe(lambda: str(alert.severity).upper())
    brand = _safe(lambda: str(alert.brand))
    state = _safe(lambda: "RESOLVED - all clear" if alert.state == "resolved" else "FIRING")
    summary = _safe(lambda: str(alert.summary))
    alert_id = _safe(lambda: str(alert.id))
    title = _clip(f"{state} [{severity}] {brand}", TITLE_MAX)
    body = _clip(f"{summary}\n\n(alert {alert_id}; details could not be shown)", BODY_MAX)
    return title, body


def _safe(get: Callable[[], object]) -> str:
    try:
        return str(get())
    except Exception:
        return "?"


def _iso(alert: Alert) -> str:
    return alert.created_at.isoformat().replace("+00:00", "Z")


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def _duration(seconds: Any) -> str:
    total = int(seconds)
    if total % 3600 == 0 and total:
        return f"{total // 3600}h"
    if total % 60 == 0 and total:
        return f"{total // 60}-minute"
    return f"{total}s"


def _oneline(text: object, limit: int) -> str:
    return _clip(" ".join(str(text).split()), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


__all__ = ["BODY_MAX", "TITLE_MAX", "render", "state_label"]
