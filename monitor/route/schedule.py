"""Quiet hours per channel: when a non-critical alert should wait until.

A quiet period starts at ``start`` local time (``timezone``, an IANA name) on
each of ``days`` (``mon``..``sun``; empty: every day) and ends at the next
``end`` (the next day when ``end`` is not after ``start``, e.g. 22:00-07:00).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from monitor.config.schema import QuietHours

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock_time(text: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"expected a time of day as HH:MM, got {text!r}")
    return time(int(hours), int(minutes))


def quiet_hours_problems(quiet: QuietHours) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for key in ("start", "end"):
        try:
            _clock_time(getattr(quiet, key))
        except ValueError as exc:
            found.append((key, str(exc)))
    try:
        ZoneInfo(quiet.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        found.append(("timezone", f"unknown time zone {quiet.timezone!r}"))
    for day in quiet.days:
        if day.lower() not in DAYS:
            found.append(("days", f"unknown day {day!r} (use {', '.join(DAYS)})"))
    return found


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """The end (UTC) of the quiet period ``now`` falls in, or None outside one."""
    zone = ZoneInfo(quiet.timezone)
    start, end = _clock_time(quiet.start), _clock_time(quiet.end)
    local = now.astimezone(zone)
    days = {d.lower() for d in quiet.days}
    for offset in (-1, 0):
        day: date = local.date() + timedelta(days=offset)
        if days and DAYS[day.weekday()] not in days:
            continue
        begins = datetime.combine(day, start, tzinfo=zone)
        end_day = day if end > start else day + timedelta(days=1)
        ends = datetime.combine(end_day, end, tzinfo=zone)
        if begins <= local < ends:
            return ends.astimezone(UTC)
    return None
