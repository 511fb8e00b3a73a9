"""Per-channel schedules: quiet hours and on-call rotations.

Quiet hours: a quiet period starts at ``start`` local time (``timezone``, an IANA
name) on each of ``days`` (``mon``..``sun``; empty: every day) and ends at the
next ``end`` (the next day when ``end`` is not after ``start``, e.g. 22:00-07:00).

On-call rotations (:class:`monitor.config.schema.Rotation`): a rotation channel is
virtual; :func:`resolve_channels` replaces it, when an alert is stored, by the
member channel on duty at that time (:func:`on_duty`), so the outbox only ever
holds real channels and keeps its per-channel order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.clock import utc

if TYPE_CHECKING:
    from monitor.config.schema import ChannelConfig, QuietHours, Rotation

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


# -- on-call rotations ----------------------------------------------------------------
def _handoff(text: str) -> tuple[int | None, time]:
    """``"mon 09:00"`` -> (0, 09:00); ``"09:00"`` -> (None, 09:00)."""
    day, _, clock = text.strip().rpartition(" ")
    day = day.strip().lower()
    if day and day not in DAYS:
        raise ValueError(f"expected 'DAY HH:MM' (DAY one of {', '.join(DAYS)}) or 'HH:MM', "
                         f"got {text!r}")
    try:
        at = _clock_time(clock)
    except ValueError:
        raise ValueError(f"expected 'DAY HH:MM' (e.g. 'mon 09:00') or 'HH:MM', got {text!r}"
                         ) from None
    return (DAYS.index(day) if day else None), at


def _local_naive(text: str, zone: ZoneInfo) -> datetime:
    """An ISO time as naive local wall time in ``zone`` (no offset: already local)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(zone)
    return parsed.replace(tzinfo=None)


def rotation_problems(rotation: Rotation) -> list[tuple[str, str]]:
    """Problems within one rotation (member names are checked by the loader)."""
    found: list[tuple[str, str]] = []
    zone: ZoneInfo | None = None
    try:
        zone = ZoneInfo(rotation.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        found.append(("timezone", f"unknown time zone {rotation.timezone!r}"))
    try:
        _handoff(rotation.handoff)
    except ValueError as exc:
        found.append(("handoff", str(exc)))
    if not rotation.members:
        found.append(("members", "name at least one member channel"))
    if len(set(rotation.members)) != len(rotation.members):
        found.append(("members", "a member is listed twice"))
    if rotation.every < timedelta(minutes=1):
        found.append(("every", "a shift must last at least 1m"))
    try:
        date.fromisoformat(rotation.start_date.strip())
    except ValueError:
        found.append(("start_date", f"expected a date as YYYY-MM-DD, got "
                                    f"{rotation.start_date!r}"))
    for index, override in enumerate(rotation.overrides):
        key = f"overrides[{index}]"
        times: list[datetime] = []
        for name in ("start", "end"):
            try:
                times.append(_local_naive(getattr(override, name), zone or ZoneInfo("UTC")))
            except ValueError:
                found.append((f"{key}.{name}", f"not an ISO-8601 time: "
                                               f"{getattr(override, name)!r}"))
        if len(times) == 2 and times[1] <= times[0]:
            found.append((f"{key}.end", "must be after start"))
    return found


def _first_handoff(rotation: Rotation) -> datetime:
    """The naive local wall time of the shift ``members[0]`` begins."""
    weekday, at = _handoff(rotation.handoff)
    day = date.fromisoformat(rotation.start_date.strip())
    if weekday is not None:
        day += timedelta(days=(weekday - day.weekday()) % 7)
    return datetime.combine(day, at)


def on_duty(rotation: Rotation, at: datetime) -> str:
    """The member channel on duty at ``at`` (an override, else the rota's turn)."""
    zone = ZoneInfo(rotation.timezone)
    local = utc(at).astimezone(zone).replace(tzinfo=None)  # wall time: DST-proof handoffs
    for override in reversed(rotation.overrides):
        if _local_naive(override.start, zone) <= local < _local_naive(override.end, zone):
            return override.member
    shifts = (local - _first_handoff(rotation)) // rotation.every
    return rotation.members[shifts % len(rotation.members)]


def resolve_channels(names: Iterable[str], channels: Mapping[str, ChannelConfig],
                     at: datetime) -> tuple[tuple[str, ...], dict[str, str]]:
    """Replace rotation channels by their member on duty at ``at`` (duplicates
    dropped, order kept); returns (channels, {rotation: member})."""
    out: list[str] = []
    picked: dict[str, str] = {}
    for name in names:
        config = channels.get(name)
        if config is not None and config.rotation is not None:
            picked[name] = on_duty(config.rotation, at)
            name = picked[name]
        if name not in out:
            out.append(name)
    return tuple(out), picked
