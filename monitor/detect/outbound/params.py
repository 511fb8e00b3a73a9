"""The outbound rule's parameters (``params:`` of a ``signal: outbound`` rule).

Every check can be tuned under ``checks.<name>``: ``enabled``, ``weight`` and, for
word-list checks, ``terms`` (added to the built-in list) and ``allow`` (phrases that
never count for that check, e.g. ``"vice president"`` for ``divisive``). The other
keys configure single checks: see rules/outbound.yaml for the documented defaults.
``groups`` and ``events`` extend the packs (``packs/identity.yaml``,
``packs/events.yaml``); ``categories`` / ``exclude_categories`` route a rule to the
findings of some brand-safety categories only (:mod:`.taxonomy`).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.detect.outbound import saferegex
from monitor.model import Severity

LedgerMode = Literal["off", "auto", "on"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# links to the platforms themselves are not "outside the allow-list"
PLATFORM_DOMAINS = ("x.com", "twitter.com", "t.co", "facebook.com", "fb.me", "instagram.com",
                    "youtube.com", "youtu.be", "linkedin.com", "tiktok.com", "threads.net",
                    "bsky.app", "mastodon.social", "pinterest.com", "wa.me")
CHECK_MODULES = ("monitor.detect.outbound.checks_content", "monitor.detect.outbound.checks_risk",
                 "monitor.detect.outbound.checks_post", "monitor.detect.outbound.checks_identity",
                 "monitor.detect.outbound.checks_events", "monitor.detect.outbound.checks_staff")


@dataclass(frozen=True, slots=True)
class CheckParams:
    enabled: bool = True
    weight: float | None = field(default=None, metadata={"min": 0.0, "max": 10.0})
    terms: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()


_DEFAULT_CHECK = CheckParams()


def parse_hours(text: str) -> tuple[time, time]:
    """``"07:00-22:00"`` -> (07:00, 22:00); the end may be before the start (overnight)."""
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"hours: expected HH:MM-HH:MM, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"hours: not a time range: {text!r}")
    end = time(23, 59, 59) if (h2, m2) == (24, 0) else time(h2 % 24, m2)
    return time(h1 % 24, m1), end


@dataclass(frozen=True, slots=True)
class OutboundParams:
    # content ----------------------------------------------------------------
    profanity: bool = True  # shorthand for checks.profanity.enabled
    check_links: bool = True  # shorthand for the link, shortener and lookalike checks
    blocked_terms: tuple[str, ...] = ()
    blocked_patterns: tuple[str, ...] = ()  # validated: see saferegex
    allowed_domains: tuple[str, ...] = ()  # added to each brand's allowed_domains
    platform_domains: tuple[str, ...] = PLATFORM_DOMAINS
    shorteners: tuple[str, ...] = ()  # added to the built-in list
    brand_terms: tuple[str, ...] = ()  # more names whose lookalike domains are phishing
    competitors: tuple[str, ...] = ()
    own_contacts: tuple[str, ...] = ()  # the brand's own phone numbers / e-mail addresses
    watchlist: tuple[str, ...] = ()  # static sensitive events/hashtags (runtime ones: HTTP)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # + identity pack
    events: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # + events pack
    checks: Mapping[str, CheckParams] = field(default_factory=dict)
    # routing: only findings of these categories (empty: all) and none of the excluded
    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    # trending context: a brand post using what the inbound stream links to tragedy
    trending_min_posts: float = field(default=4.0, metadata={"min": 1.0})
    trending_dark_share: float = field(default=0.4, metadata={"min": 0.0, "max": 1.0})
    # posting context (per brand, in the detector) ---------------------------------
    timezone: str = "UTC"
    hours: str | None = None  # allowed posting hours, e.g. "07:00-22:00"; None: any time
    days: tuple[str, ...] = ()  # allowed days (mon..sun); empty: every day
    known_clients: tuple[str, ...] = ()  # empty: the client is not checked
    burst_limit: int = field(default=0, metadata={"min": 0})  # 0: no burst check
    burst_window: timedelta = timedelta(minutes=10)
    # approved-posts ledger ------------------------------------------------------
    ledger: LedgerMode = "auto"  # auto: on once the brand has any approved post
    ledger_threshold: float = field(default=0.75, metadata={"min": 0.0, "max": 1.0})
    ledger_validity: timedelta = timedelta(days=7)  # default life of an approved post
    ledger_folder: str | None = None  # watched folder of approved posts (JSON or text)
    ledger_poll: timedelta = timedelta(seconds=5)
    # alerting ---------------------------------------------------------------
    min_severity: Severity = "warning"  # signals below this are not raised

    def problems(self) -> list[tuple[str, str]]:
        for index, pattern in enumerate(self.blocked_patterns):
            message = saferegex.problem(pattern)
            if message:  # named by item, so the error points at the pattern's own line
                return [(f"blocked_patterns[{index}]", message)]
        from monitor.detect.outbound.taxonomy import CATEGORIES

        for key in ("categories", "exclude_categories"):
            bad = [c for c in getattr(self, key) if c not in CATEGORIES]
            if bad:
                return [(key, f"unknown categor{'ies' if len(bad) > 1 else 'y'} "
                              f"{', '.join(bad)} (known: {', '.join(CATEGORIES)})")]
        known = check_names()
        unknown = sorted(set(self.checks) - set(known))
        if unknown:
            return [("checks", f"unknown check(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(known))})")]
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return [("timezone", f"unknown time zone {self.timezone!r} (e.g. Europe/London)")]
        if self.hours is not None:
            try:
                parse_hours(self.hours)
            except ValueError as exc:
                return [("hours", str(exc))]
        bad_days = [d for d in self.days if d.lower()[:3] not in DAYS]
        if bad_days:
            return [("days", f"unknown day(s) {', '.join(bad_days)} (use {', '.join(DAYS)})")]
        if self.burst_limit and self.burst_window <= timedelta(0):
            return [("burst_window", "must be longer than 0s")]
        if self.ledger_poll < timedelta(seconds=1):
            return [("ledger_poll", "must be at least 1s")]
        return []

    def tuned(self, name: str) -> CheckParams:
        return self.checks.get(name) or _DEFAULT_CHECK

    def enabled(self, name: str) -> bool:
        if name == "profanity" and not self.profanity:
            return False
        if name in ("link", "shortener", "lookalike_domain") and not self.check_links:
            return False
        return self.tuned(name).enabled

    def weight(self, name: str, default: float) -> float:
        weight = self.tuned(name).weight
        return default if weight is None else weight


def check_names() -> list[str]:
    from monitor.detect.outbound.core import CHECKS

    for module in CHECK_MODULES:
        importlib.import_module(module)
    return sorted(CHECKS)
