"""What an alert tells people, in the order a PR lead reads it.

Every channel says the same things in the same order (issue 15), only the markup
differs (:mod:`monitor.notify.templates`):

1. the **headline**: what happened, how big, how fast, in plain words
   (``alert.headline``: the detector's ``details["headline"]``);
2. **why**: the terms and hashtags over-represented against the usual posts, the
   phrases that matched, the screen's reasons (``details["why"]``, else what the
   details hold);
3. the **top posts** by reach, with links;
4. the **sentiment** mix;
5. the **statistic**, for those who want it;
6. what to **do** (acknowledge, silence) and which alert this is, when (simulated
   time is marked as such).

:func:`present` never raises on odd details (they come from detectors and from the
database): a value of the wrong type costs its line, not the notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from monitor.model import Alert

TOP_POSTS = 3
WHY_ITEMS = 8
TEXT_MAX = 200
SILENCE_FOR = "2h"


@dataclass(frozen=True, slots=True)
class PostLine:
    author: str
    text: str
    followers: int | None = None
    url: str | None = None
    sentiment: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    status: str  # FIRING, UPDATED, STILL FIRING, ESCALATED, RESOLVED, SILENCED
    severity: str
    brand: str
    rule: str
    headline: str
    why_title: str = ""
    why: tuple[str, ...] = ()
    posts_title: str = ""
    posts: tuple[PostLine, ...] = ()
    sentiment: tuple[tuple[str, int], ...] = ()
    statistic: str = ""
    notes: tuple[str, ...] = ()
    actions: tuple[tuple[str, str], ...] = ()  # (what, command)
    alert_id: str = ""
    time: str = ""

    @property
    def title(self) -> str:
        """``FIRING [WARNING] <headline>`` (the brand first when the headline lacks it)."""
        headline = self.headline
        if self.brand and self.brand != "-" and self.brand not in headline:
            headline = f"{self.brand}: {headline}"
        return f"{self.status} [{self.severity.upper()}] {headline}"

    @property
    def meta(self) -> str:
        """``FIRING · warning · Acme Air · rule volume-spike``."""
        parts = [self.status, self.severity]
        if self.brand and self.brand != "-":
            parts.append(self.brand)
        if self.rule:
            parts.append(f"rule {self.rule}")
        return " \u00b7 ".join(parts)

    @property
    def sentiment_line(self) -> str:
        total = sum(n for _, n in self.sentiment)
        if not total:
            return ""
        parts = []
        for label, n in self.sentiment:
            share = f" ({n / total:.0%})" if n and label == "negative" else ""
            parts.append(f"{n:,} {label}{share}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["posts"] = [asdict(p) for p in self.posts]
        out["sentiment"] = dict(self.sentiment)
        out["actions"] = [{"what": what, "command": cmd} for what, cmd in self.actions]
        out["title"] = self.title
        return out


def status_of(alert: Alert) -> str:
    """FIRING, UPDATED, STILL FIRING, ESCALATED or RESOLVED (from state and title)."""
    if alert.state == "resolved":
        return "RESOLVED"
    title = str(alert.title).lower()
    for prefix, label in (("still firing", "STILL FIRING"), ("updated", "UPDATED"),
                          ("escalated", "ESCALATED"), ("silenced", "SILENCED")):
        if title.startswith(prefix):
            return label
    return "FIRING"


def present(alert: Alert) -> Message:
    d: Mapping[str, Any] = alert.details if isinstance(alert.details, Mapping) else {}
    why_title, why = _why(d)
    posts_title, posts = _posts(d)
    status = status_of(alert)
    return Message(
        status=status, severity=str(alert.severity), brand=str(alert.brand),
        rule=str(alert.rule), headline=_oneline(alert.headline, 400),
        why_title=why_title, why=why, posts_title=posts_title, posts=posts,
        sentiment=_mix(d.get("sentiment_mix")), statistic=_statistic(d),
        notes=_notes(d), actions=_actions(alert, status), alert_id=str(alert.id),
        time=_time(alert, d))


def _why(d: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    title = d.get("why_title") if isinstance(d.get("why_title"), str) else ""
    raw = d.get("why")
    if isinstance(raw, list | tuple) and raw:
        items = tuple(_oneline(w, TEXT_MAX) for w in raw[:WHY_ITEMS] if isinstance(w, str))
        if items:
            return str(title or "Why"), items
    reasons = d.get("reasons")
    if isinstance(reasons, list | tuple) and reasons:
        return "Why it was flagged", tuple(_oneline(str(r), TEXT_MAX) for r in reasons[:10])
    terms = []
    for item in d.get("top_terms") or () if isinstance(d.get("top_terms"), list | tuple) else ():
        if isinstance(item, str):
            terms.append(f"\u201c{item}\u201d")
        elif (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
              and _is_num(item[1])):
            terms.append(f"\u201c{item[0]}\u201d in {_num(item[1])} posts")
    if terms:
        return "Most common words and hashtags", tuple(terms[:WHY_ITEMS])
    return "", ()


def _posts(d: Mapping[str, Any]) -> tuple[str, tuple[PostLine, ...]]:
    raw = d.get("top_posts")
    lines: list[PostLine] = []
    if isinstance(raw, list | tuple):
        lines = [p for p in (_post(x) for x in raw[:TOP_POSTS]) if p is not None]
    if len(lines) > 1:
        return "Top posts by reach", tuple(lines)
    single = _post(d.get("post")) if isinstance(d.get("post"), Mapping) else None
    if single is not None:
        return "The post", (single,)
    return ("The post", tuple(lines)) if lines else ("", ())


def _post(raw: object) -> PostLine | None:
    if not isinstance(raw, Mapping):
        return None
    author = raw.get("author")
    text = raw.get("text")
    followers = raw.get("followers")
    url = raw.get("url")
    sentiment = raw.get("sentiment")
    return PostLine(
        author=f"@{str(author).lstrip('@')}" if author else "someone",
        text=_oneline(text, TEXT_MAX) if isinstance(text, str) else "",
        followers=int(followers) if isinstance(followers, int | float)
        and not isinstance(followers, bool) else None,
        url=url if isinstance(url, str) and url else None,
        sentiment=sentiment if isinstance(sentiment, str) else None)


def _mix(raw: object) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple((str(label), int(n)) for label, n in raw.items() if _is_num(n))


def _statistic(d: Mapping[str, Any]) -> str:
    """``observed 30 vs expected 6.46 in a 5-minute window; statistic 2.311 (alerts at
    2.301); 30 distinct authors``."""
    parts: list[str] = []
    observed, expected = d.get("observed"), d.get("expected")
    if _is_num(observed):
        line = f"observed {_num(observed)}"
        if _is_num(expected):
            line += f" vs expected {_num(expected)}"
        window = d.get("window")
        if isinstance(window, Mapping) and _is_num(window.get("seconds")) and window["seconds"]:
            line += f" in a {_duration(window['seconds'])} window"
        parts.append(line)
    statistic, threshold = d.get("statistic"), d.get("threshold")
    if _is_num(statistic):
        parts.append(f"statistic {_num(statistic)}" + (f" (alerts at {_num(threshold)})"
                                                       if _is_num(threshold) else ""))
    elif _is_num(threshold) and parts:
        parts.append(f"threshold {_num(threshold)}")
    if _is_num(d.get("score")):
        parts.append(f"score {_num(d.get('score'))}")
    if _is_num(d.get("posts")) and not _is_num(observed):
        parts.append(f"{_num(d.get('posts'))} posts")
    if _is_num(d.get("distinct_authors")):
        parts.append(f"{_num(d.get('distinct_authors'))} distinct authors")
    return "; ".join(p for p in parts if p)


def _notes(d: Mapping[str, Any]) -> tuple[str, ...]:
    notes: list[str] = []
    repeated = d.get("repeated_post")
    if isinstance(repeated, Mapping) and isinstance(repeated.get("text"), str):
        copies = repeated.get("copies")
        count = f"{_num(copies)} copies of one post" if _is_num(copies) else "Copies of one post"
        notes.append(f"{count}: \"{_oneline(repeated['text'], TEXT_MAX)}\"")
    related = d.get("related")
    if isinstance(related, list | tuple) and related:
        names = sorted({str(r.get("rule")) for r in related if isinstance(r, Mapping)})
        notes.append(f"Grouped with {len(related)} related alert(s): {', '.join(names)}")
    if isinstance(d.get("escalated_after"), str):
        notes.append(f"Escalated: not acknowledged within {d['escalated_after']}")
    rotation = d.get("rotation")
    if isinstance(rotation, Mapping) and rotation:
        notes.append("On call: " + ", ".join(f"{k} \u2192 {v}" for k, v in rotation.items()))
    if isinstance(d.get("silenced"), str):
        notes.append(f"Silenced by {d['silenced']}: stored, not notified")
    return tuple(notes)


def _actions(alert: Alert, status: str) -> tuple[tuple[str, str], ...]:
    if status == "RESOLVED" or alert.kind in ("admin", "test") or not alert.rule:
        return ()
    short = str(alert.id)[:12]
    return (("Acknowledge", f"brand-monitor ack {short}"),
            ("Silence for 2 h", f"brand-monitor silence add {short} --for {SILENCE_FOR}"))


def _time(alert: Alert, d: Mapping[str, Any]) -> str:
    try:
        text = alert.created_at.strftime("%Y-%m-%d %H:%M UTC")
    except (AttributeError, ValueError):
        return ""
    if d.get("clock") == "simulated":
        text += " (simulated demo time)"
    return text


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
        return f"{total // 3600}-hour"
    if total % 60 == 0 and total:
        return f"{total // 60}-minute"
    return f"{total}-second"


def _oneline(text: object, limit: int) -> str:
    return clip(" ".join(str(text).split()), limit)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


__all__ = ["Message", "PostLine", "clip", "present", "status_of"]
