"""How and when the post was made: hours, bursts, client app, approval (stateful checks).

These need more than the text, so the detector runs them with a :class:`PostContext`
holding the post's time and client, what the detector remembers of the brand's
recent posts, and the ledger's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from monitor.detect.outbound.core import Hit, check
from monitor.detect.outbound.params import DAYS, OutboundParams, parse_hours
from monitor.detect.outbound.runtime import LedgerMatch


@dataclass(frozen=True, slots=True)
class PostContext:
    params: OutboundParams
    at: datetime
    client: str | None = None
    recent: int = 1  # the brand's posts within burst_window, this one included
    ledger: LedgerMatch | None = None  # None: the ledger does not apply to this brand


def within(local: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= local <= end
    return local >= start or local <= end  # overnight, e.g. 22:00-06:00


@check("off_hours", category="spam_harmful", weight=0.4,
       reason="posted outside the allowed hours", scope="post")
def off_hours(ctx: PostContext) -> list[Hit]:
    p = ctx.params
    if p.hours is None and not p.days:
        return []
    local = ctx.at.astimezone(ZoneInfo(p.timezone))
    day = DAYS[local.weekday()]
    allowed_days = {d.lower()[:3] for d in p.days}
    when = f"{local:%a %H:%M} {p.timezone}"
    if allowed_days and day not in allowed_days:
        return [Hit(f"{when}, not an allowed day")]
    if p.hours is not None:
        start, end = parse_hours(p.hours)
        if not within(local.time().replace(tzinfo=None), start, end):
            return [Hit(f"{when}, outside {p.hours}")]
    return []


@check("burst", category="spam_harmful", weight=0.5, reason="burst of posts", scope="post")
def burst(ctx: PostContext) -> list[Hit]:
    p = ctx.params
    if p.burst_limit <= 0 or ctx.recent <= p.burst_limit:
        return []
    minutes = p.burst_window.total_seconds() / 60
    return [Hit(f"{ctx.recent} posts within {minutes:g} min (limit {p.burst_limit})")]


@check("unknown_client", category="spam_harmful", weight=0.6,
       reason="posted from an unknown app", scope="post")
def unknown_client(ctx: PostContext) -> list[Hit]:
    known = {c.casefold().strip() for c in ctx.params.known_clients}
    if not known or ctx.client is None or ctx.client.casefold().strip() in known:
        return []
    return [Hit(repr(ctx.client))]


@check("unsanctioned", category="spam_harmful", weight=0.6,
       reason="not in the approved-posts ledger", scope="post")
def unsanctioned(ctx: PostContext) -> list[Hit]:
    match = ctx.ledger
    if match is None or match.score >= ctx.params.ledger_threshold:
        return []
    if match.best is None:
        return [Hit("no approved post is valid now")]
    return [Hit(f"closest approved post {match.best.id} is only {match.score:.0%} similar")]
