"""The dashboard's actions (POST, admin session, CSRF token): acknowledge, silence,
expire a silence, bulk actions, outbound review (approve as sanctioned, dismiss with a
reason), watchlist entries and outbox re-sends.

Each goes through the same objects as the HTTP API (``Lifecycle``, ``Silences``, the
outbound runtime, the store's outbox) on the daemon's own store, is recorded in
``web_actions`` (who, when, what) and answers with a redirect back to the page
(post/redirect/get) or a page that says what was refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from aiohttp import web
from yarl import URL

from monitor.detect.outbound.runtime import ApprovedPost, WatchEntry
from monitor.route.lifecycle import AckError, Lifecycle
from monitor.route.silences import Silence
from monitor.web import actions
from monitor.web.context import Denied, WebContext, redirect
from monitor.web.inbox import matchers_from

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]
MAX_BULK = 200


def _text(form: Any, key: str, limit: int = 500) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _back(form: Any, default: str, done: str) -> web.Response:
    """Redirect to the page the form came from (a local /ui path only)."""
    target = _text(form, "back", 1000)
    if not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        target = default
    url = URL(target.split("#", 1)[0])
    return redirect(str(url.with_query({**url.query, "done": done})))


class ActionRoutes:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[tuple[str, Handler]]:
        return [("/ui/alerts/bulk", self.bulk),
                ("/ui/alerts/{alert_id}/ack", self.ack),
                ("/ui/silences", self.silence),
                ("/ui/silences/{silence_id}/expire", self.expire),
                ("/ui/outbound/{alert_id}/approve", self.approve),
                ("/ui/outbound/{alert_id}/dismiss", self.dismiss),
                ("/ui/watchlist", self.watch),
                ("/ui/watchlist/{entry_id}/delete", self.unwatch),
                ("/ui/outbox/{item_id}/retry", self.retry)]

    def _now(self) -> datetime:
        return self.ctx.now()

    # -- alerts ----------------------------------------------------------------------
    def _ack(self, alert_id: str, by: str, comment: str) -> None:
        store = self.ctx.store
        try:
            Lifecycle(store).ack(alert_id, by, comment, self._now())
        except AckError as exc:
            raise Denied(exc.status, str(exc)) from None
        actions.record(store, self._now(), by, "ack", alert_id, comment=comment)

    async def ack(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        alert_id = request.match_info["alert_id"]
        self._ack(alert_id, session.name, _text(form, "comment"))
        return _back(form, f"/ui/alerts/{alert_id}", "ack")

    def _silence(self, matchers: dict[str, str], duration: str, by: str, comment: str,
                 alert_id: str | None) -> Silence:
        now = self._now()
        try:
            silence = Silence.from_json({**matchers, "for": duration or "1h",
                                         "created_by": by, "comment": comment}, now)
        except ValueError as exc:
            raise Denied(400, f"silence not created: {exc}") from None
        Lifecycle(self.ctx.store).silences.add(silence)
        actions.record(self.ctx.store, now, by, "silence", alert_id, silence=silence.id,
                       matchers=matchers, ends_at=silence.to_json()["ends_at"],
                       comment=comment)
        return silence

    async def silence(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        alert_id = _text(form, "alert_id", 200) or None
        self._silence(matchers_from(form), _text(form, "for", 20), session.name,
                      _text(form, "comment"), alert_id)
        return _back(form, "/ui/alerts", "silence")

    async def expire(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        silence_id = request.match_info["silence_id"]
        silences = Lifecycle(self.ctx.store).silences
        if silences.get(silence_id) is None:
            raise Denied(404, f"silence {silence_id!r} not found")
        if not silences.expire(silence_id, self._now()):
            raise Denied(409, f"silence {silence_id!r} has already ended")
        actions.record(self.ctx.store, self._now(), session.name, "expire-silence",
                       silence=silence_id)
        return _back(form, "/ui/alerts", "expire")

    async def bulk(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        ids = [i for i in form.getall("ids", []) if isinstance(i, str)][:MAX_BULK]
        if not ids:
            raise Denied(400, "select at least one alert")
        what = _text(form, "action", 20)
        store = self.ctx.store
        if what == "ack":
            comment = _text(form, "comment")
            refused = []
            for alert_id in ids:
                try:
                    self._ack(alert_id, session.name, comment)
                except Denied as exc:
                    refused.append(f"{alert_id}: {exc}")
            if refused and len(refused) == len(ids):
                raise Denied(409, "nothing acknowledged: " + "; ".join(refused[:5]))
            return _back(form, "/ui/alerts", "bulk-ack")
        if what == "silence":
            pairs: dict[tuple[str, str], str] = {}
            for alert_id in ids:
                alert = store.get_alert(alert_id)
                if alert is not None:
                    pairs.setdefault((alert.rule, alert.brand), alert.id)
            if not pairs:
                raise Denied(404, "none of the selected alerts exists")
            for (rule, brand), alert_id in pairs.items():
                self._silence({"rule": rule, "brand": brand}, _text(form, "for", 20),
                              session.name, _text(form, "comment"), alert_id)
            return _back(form, "/ui/alerts", "bulk-silence")
        raise Denied(400, "unknown bulk action (ack or silence)")

    # -- outbound review ---------------------------------------------------------------
    def _outbound_alert(self, alert_id: str) -> Any:
        alert = self.ctx.store.get_alert(alert_id)
        if alert is None or alert.kind != "outbound":
            raise Denied(404, f"flagged outbound post {alert_id!r} not found")
        return alert

    def _reviewed(self, alert: Any, by: str, comment: str) -> None:
        """A review also acknowledges the alert's open episode (no reminders)."""
        with contextlib.suppress(AckError):  # nothing open: the review is recorded anyway
            Lifecycle(self.ctx.store).ack(alert.id, by, comment, self._now())

    def _post_text(self, alert: Any) -> str:
        """The flagged post's full text (stored post; else the alert's excerpt)."""
        key = alert.dedup_key.split("|", 2)[-1]
        source, _, post_id = key.partition(":")
        text = self.ctx.store.post_text(source, post_id)
        if text is not None:
            return text
        post = alert.details.get("post") if isinstance(alert.details, dict) else None
        return str(post.get("text", "")) if isinstance(post, dict) else ""

    async def approve(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        runtime = self.ctx.outbound()
        if runtime is None:
            raise Denied(404, "the outbound screen is not running in this daemon")
        alert = self._outbound_alert(request.match_info["alert_id"])
        text = self._post_text(alert)
        if not text.strip():
            raise Denied(409, "the flagged post's text is no longer stored")
        now = self._now()
        try:
            item = ApprovedPost.from_json({"text": text, "brand": alert.brand}, now,
                                          runtime.validity, source="dashboard")
        except ValueError as exc:
            raise Denied(400, f"not approved: {exc}") from None
        runtime.approve(item)
        note = _text(form, "comment")
        actions.record(self.ctx.store, now, session.name, "approve", alert.id,
                       ledger=item.id, comment=note)
        self._reviewed(alert, session.name, f"approved as sanctioned{': ' + note if note else ''}")
        return _back(form, "/ui/outbound", "approve")

    async def dismiss(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        alert = self._outbound_alert(request.match_info["alert_id"])
        reason = _text(form, "reason")
        if not reason:
            raise Denied(400, "give a reason to dismiss a flagged post")
        actions.record(self.ctx.store, self._now(), session.name, "dismiss", alert.id,
                       reason=reason)
        self._reviewed(alert, session.name, f"dismissed: {reason}")
        return _back(form, "/ui/outbound", "dismiss")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        runtime = self.ctx.outbound()
        if runtime is None:
            raise Denied(404, "the outbound screen is not running in this daemon")
        body: dict[str, Any] = {"term": _text(form, "term", 200)}
        for key in ("brand", "note"):
            if _text(form, key):
                body[key] = _text(form, key)
        body["expires_in"] = _text(form, "expires_in", 20) or "14d"
        try:
            entry = WatchEntry.from_json(body, self._now())
        except ValueError as exc:
            raise Denied(400, f"not added: {exc}") from None
        runtime.add_watch(entry)
        actions.record(self.ctx.store, self._now(), session.name, "watch", None,
                       entry=entry.id, term=entry.term)
        return _back(form, "/ui/outbound", "watch")

    async def unwatch(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        runtime = self.ctx.outbound()
        entry_id = request.match_info["entry_id"]
        if runtime is None or not runtime.remove_watch(entry_id):
            raise Denied(404, f"watchlist entry {entry_id!r} not found")
        actions.record(self.ctx.store, self._now(), session.name, "unwatch", None,
                       entry=entry_id)
        return _back(form, "/ui/outbound", "unwatch")

    # -- outbox ------------------------------------------------------------------------
    async def retry(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.ctx.acting(request)
        raw = request.match_info["item_id"]
        if not raw.isdigit():
            raise Denied(400, f"outbox item id must be an integer, got {raw!r}")
        store = self.ctx.store
        if not store.retry_dead([int(raw)]):
            found = store.outbox_item(int(raw))
            if found is None:
                raise Denied(404, f"outbox item {raw} not found")
            raise Denied(409, f"outbox item {raw} is {found['status']}, not dead: only dead "
                              "items are re-sent")
        actions.record(store, self._now(), session.name, "retry", None, item=int(raw))
        self.ctx.wake_outbox()
        return _back(form, "/ui/admin", "retry")
