"""The numbers behind the Alerts and Outbound review pages (read on a worker thread):
the filtered inbox, one alert's explanation and timeline, the silence preview and the
outbound review queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.route.lifecycle import STATES, Lifecycle
from monitor.route.silences import MATCHERS, Silence
from monitor.store.api import Store
from monitor.web import actions
from monitor.web.pulse import STEP, markers, series

INBOX_LIMIT = 200
PREVIEW = timedelta(hours=24)
CHART_BEFORE = timedelta(hours=6)
CHART_AFTER = timedelta(hours=2)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Filters:
    brand: str | None = None
    rule: str | None = None
    severity: str | None = None
    state: str | None = None
    kind: str | None = None

    @classmethod
    def parse(cls, query: Any) -> Filters:
        def pick(key: str, allowed: tuple[str, ...] | None = None) -> str | None:
            value = (query.get(key) or "").strip()
            if not value or (allowed is not None and value not in allowed):
                return None
            return str(value)[:200]

        return cls(pick("brand"), pick("rule"), pick("severity", ("info", "warning",
                                                                   "critical")),
                   pick("state", STATES), pick("kind"))


def inbox(store: Store, filters: Filters, limit: int = INBOX_LIMIT) -> list[dict[str, Any]]:
    """Stored alerts, newest first, with their lifecycle status, filtered."""
    lifecycle = Lifecycle(store)
    rows = lifecycle.history(brand=filters.brand, state=filters.state,
                             limit=limit if not (filters.rule or filters.severity
                                                 or filters.kind) else 10_000)
    out = [r for r in rows
           if (filters.rule is None or r["rule"] == filters.rule)
           and (filters.severity is None or r["severity"] == filters.severity)
           and (filters.kind is None or r["kind"] == filters.kind)]
    return out[:limit]


def facets(store: Store) -> dict[str, list[str]]:
    """The brands, rules and kinds that alerts were stored for (filter choices)."""
    return store.alert_facets()


def detail(store: Store, alert_id: str, brands: list[str]) -> dict[str, Any] | None:
    """One alert, its status, timeline, deliveries and the chart around it."""
    alert = store.get_alert(alert_id)
    if alert is None:
        return None
    lifecycle = Lifecycle(store)
    episode = lifecycle.episode(alert.dedup_key)
    status = lifecycle.status(alert, {alert.dedup_key: episode} if episode else {})
    related = [r for r in _same_key(store, alert.dedup_key)]
    done = actions.for_alerts(store, [a["id"] for a in related] + [alert.id])
    events = _timeline(alert.id, related, episode, done)
    deliveries = [{"channel": d.channel, "status": d.status, "attempts": d.attempts,
                   "sent_at": _iso(d.sent_at) if d.sent_at else None,
                   "last_error": d.last_error}
                  for d in store.deliveries(alert.id)]
    chart = None
    if alert.brand in brands:
        at = alert.created_at
        first = int((at - CHART_BEFORE).timestamp()) // STEP * STEP
        last = int((at + CHART_AFTER).timestamp()) // STEP * STEP
        chart = series(store, [alert.brand], first, last)
    review = actions.reviews(store, [alert.id]).get(alert.id)
    return {"alert": dict(alert.to_json(), status=status), "events": events,
            "deliveries": deliveries, "chart": chart,
            "episode": episode.to_json() if episode else None,
            "review": review.to_json() if review else None}


def _same_key(store: Store, dedup_key: str) -> list[dict[str, Any]]:
    return [{"id": a.id, "title": a.title, "state": a.state, "at": a.created_at,
             "silenced": a.silenced} for a in store.alerts_with_key(dedup_key, 500)]


def _timeline(alert_id: str, related: list[dict[str, Any]], episode: Any,
              done: list[actions.Action]) -> list[dict[str, Any]]:
    """Fired, reminders, escalated, acknowledged (with comment), silenced, resolved."""
    events: list[tuple[datetime, str, str, str | None]] = []
    for r in related:
        title = r["title"]
        if r["state"] == "resolved":
            what = "resolved"
        elif title.startswith("Still firing:"):
            what = "reminder"
        elif title.startswith("Escalated:"):
            what = "escalated"
        elif title.startswith("Silenced:") or r["silenced"]:
            what = "silenced"
        elif title.startswith("Updated:"):
            what = "updated"
        else:
            what = "fired"
        events.append((r["at"], what, title, r["id"]))
    acked_here = False
    for a in done:
        text = a.detail.get("comment") or a.detail.get("reason") or ""
        label = {"ack": "acknowledged", "silence": "silence created",
                 "approve": "approved as sanctioned", "dismiss": "dismissed"}.get(a.action,
                                                                                 a.action)
        events.append((a.at, label, f"by {a.actor}" + (f": {text}" if text else ""),
                       a.alert_id))
        acked_here = acked_here or a.action == "ack"
    if episode is not None and episode.acked_at is not None and not acked_here:
        comment = f": {episode.ack_comment}" if episode.ack_comment else ""
        events.append((episode.acked_at, "acknowledged", f"by {episode.acked_by}{comment}",
                       None))
    events.sort(key=lambda e: e[0])
    return [{"at": _iso(at), "what": what, "text": text, "alert_id": ref,
             "current": ref == alert_id} for at, what, text, ref in events]


def silence_preview(store: Store, matchers: dict[str, str], now: datetime,
                    within: timedelta = PREVIEW) -> dict[str, Any]:
    """How many firing alerts of the last 24 h a silence with ``matchers`` would
    have silenced (and a few of them)."""
    if not matchers:
        return {"count": 0, "examples": [], "hours": within.total_seconds() / 3600}
    probe = Silence("preview", now - within, now, matchers)
    found = [a for a in store.alerts(since=now - within, limit=10_000)
             if a.state == "firing" and "silenced" not in a.details and a.kind != "admin"
             and probe.matches({"rule": a.rule, "brand": a.brand, "kind": a.kind,
                                "severity": a.severity})]
    return {"count": len(found), "hours": within.total_seconds() / 3600,
            "examples": [{"id": a.id, "title": a.title, "at": _iso(a.created_at)}
                         for a in found[:5]]}


def matchers_from(form: Any) -> dict[str, str]:
    """The silence matchers of a form or query (empty values dropped)."""
    return {k: str(form.get(k)).strip()[:200] for k in MATCHERS
            if form.get(k) and str(form.get(k)).strip()}


def outbound_queue(store: Store, show: str, now: datetime,
                   days: int = 30) -> list[dict[str, Any]]:
    """Flagged outbound posts of the last ``days`` (``show``: pending | all), newest
    first, each with its reasons, checks and review."""
    since = now - timedelta(days=days)
    lines = store.firing_alerts(since=since, kind="outbound", limit=500)
    found = [a for a in (store.get_alert(r.id) for r in lines) if a is not None]
    reviewed = actions.reviews(store, [a.id for a in found])
    out = []
    for alert in found:
        review = reviewed.get(alert.id)
        if show == "pending" and review is not None:
            continue
        details = dict(alert.details)
        post = details.get("post") if isinstance(details.get("post"), dict) else {}
        out.append({"alert": alert.to_json(), "post": post,
                    "reasons": [str(r) for r in details.get("reasons") or []],
                    "checks": _checks(details.get("checks")),
                    "link": _link(details.get("link")),
                    "review": review.to_json() if review else None})
    return out


def _checks(raw: Any) -> list[str]:
    if isinstance(raw, dict):
        return [str(k) for k in raw]
    if isinstance(raw, list):
        return [str(c.get("check") or c.get("name") or c) if isinstance(c, dict) else str(c)
                for c in raw]
    return []


def _link(url: Any) -> str | None:
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return url
    return None


__all__ = ["Filters", "detail", "facets", "inbox", "markers", "matchers_from",
           "outbound_queue", "silence_preview"]
