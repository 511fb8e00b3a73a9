"""Alerts, their notification state, lifecycle (episodes, groups) and silences."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from monitor.model import Alert, Silence
from monitor.store.records import AckEntry, AlertGroup, Episode
from monitor.store.sqlbase import SqlCore, dt, opt_dt, ts

ALERT_COLUMNS = ("id, dedup_key, rule, kind, brand, severity, state, title, summary, "
                 "created_at, channels, details")
_EPISODE_COLUMNS = ("dedup_key, rule, alert_id, started_at, acked_by, acked_at, ack_comment, "
                    "escalated_at")


def alert_from_row(row: Sequence[Any]) -> Alert:
    return Alert(
        id=row[0], dedup_key=row[1], rule=row[2], kind=row[3], brand=row[4], severity=row[5],
        state=row[6], title=row[7], summary=row[8], created_at=dt(row[9]),
        channels=tuple(orjson.loads(row[10])), details=orjson.loads(row[11]))


_ACK_COLUMNS = 'dedup_key, episode_started, alert_id, action, "by", at, comment, seq'


def _ack(row: Sequence[Any]) -> AckEntry:
    return AckEntry(row[0], dt(row[1]), row[2], row[3], row[4], dt(row[5]), row[6])


def glob_to_like(pattern: str) -> str:
    """A shell glob (``*``, ``?``) as a LIKE pattern with ``!`` as the escape."""
    out = []
    for char in pattern:
        if char in "!%_":
            out.append("!" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def _episode(row: Sequence[Any]) -> Episode:
    return Episode(row[0], row[1], row[2], dt(row[3]), row[4], opt_dt(row[5]), row[6],
                   opt_dt(row[7]))


class SqlAlerts(SqlCore):
    # alerts and their notification state ------------------------------------
    def add_alert(self, alert: Alert,
                  not_before: Mapping[str, datetime] | None = None) -> bool:
        """Store an alert and queue one outbox item per channel; False (and nothing
        queued) when an alert with its id was stored before. ``not_before`` defers a
        channel's item (quiet hours)."""
        inserted = self._run(
            f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT DO NOTHING",
            (alert.id, alert.dedup_key, alert.rule, alert.kind, alert.brand, alert.severity,
             alert.state, alert.title, alert.summary, ts(alert.created_at),
             orjson.dumps(list(alert.channels)).decode(),
             orjson.dumps(dict(alert.details), default=str,
                          option=orjson.OPT_NON_STR_KEYS).decode())) == 1
        if inserted:
            for channel in alert.channels:
                self.enqueue(alert.id, channel, alert.created_at,
                             (not_before or {}).get(channel))
        return inserted

    def enqueue(self, alert_id: str, channel: str, now: datetime,
                not_before: datetime | None = None) -> bool:
        """Queue an alert on a channel; False when it was queued there before."""
        return self._run(
            "INSERT INTO outbox (alert_id, channel, next_attempt, created_at) VALUES "
            "(?,?,?,?) ON CONFLICT DO NOTHING",
            (alert_id, channel, ts(not_before) if not_before else 0.0, ts(now))) == 1

    def alerts(self, *, since: datetime | None = None, brand: str | None = None,
               limit: int = 100, rule: str | None = None) -> list[Alert]:
        """Stored alerts, newest first; ``brand`` and ``rule`` match case-insensitively
        (``rule`` may be a glob: ``churn*``)."""
        sql = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE created_at>=?"
        params: list[Any] = [ts(since) if since else 0.0]
        if brand is not None:
            sql += " AND lower(brand)=lower(?)"
            params.append(brand)
        if rule is not None:
            sql += " AND lower(rule) LIKE lower(?) ESCAPE '!'"
            params.append(glob_to_like(rule))
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(limit)
        return [alert_from_row(row) for row in self._rows(sql, params)]

    def alert_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        rows = self._rows("SELECT id FROM alerts WHERE substr(id, 1, ?)=? ORDER BY id LIMIT ?",
                          (len(prefix), prefix, limit))
        return [str(r[0]) for r in rows]

    def get_alert(self, alert_id: str) -> Alert | None:
        row = self._one(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id=?", (alert_id,))
        return None if row is None else alert_from_row(row)

    def alert_state(self, dedup_key: str) -> tuple[str, datetime, str] | None:
        row = self._one("SELECT state, last_notified, last_alert FROM alert_state "
                        "WHERE dedup_key=?", (dedup_key,))
        return None if row is None else (row[0], dt(row[1]), row[2])

    def set_alert_state(self, dedup_key: str, state: str, last_notified: datetime,
                        last_alert: str) -> None:
        self._run("INSERT INTO alert_state (dedup_key, state, last_notified, last_alert) "
                  "VALUES (?,?,?,?) ON CONFLICT (dedup_key) DO UPDATE SET "
                  "state=excluded.state, last_notified=excluded.last_notified, "
                  "last_alert=excluded.last_alert",
                  (dedup_key, state, ts(last_notified), last_alert))

    # lifecycle: episodes ---------------------------------------------------------
    def episode(self, dedup_key: str) -> Episode | None:
        row = self._one(f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes WHERE dedup_key=?",
                        (dedup_key,))
        return None if row is None else _episode(row)

    def episodes(self, keys: Iterable[str] | None = None) -> list[Episode]:
        """Open episodes (only those of dedup ``keys`` when given), oldest first."""
        if keys is None:
            rows = self._rows(f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes "
                              "ORDER BY started_at")
        else:
            rows = self._in_chunks(f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes WHERE "
                                   "dedup_key IN ({marks})", sorted(set(keys)))
            rows.sort(key=lambda r: r[3])
        return [_episode(r) for r in rows]

    def start_episode(self, dedup_key: str, rule: str, alert_id: str,
                      started_at: datetime) -> None:
        self._run("INSERT INTO alert_episodes (dedup_key, rule, alert_id, started_at) "
                  "VALUES (?,?,?,?) ON CONFLICT (dedup_key) DO UPDATE SET rule=excluded.rule,"
                  " alert_id=excluded.alert_id, started_at=excluded.started_at, "
                  "acked_by=NULL, acked_at=NULL, ack_comment=NULL, escalated_at=NULL",
                  (dedup_key, rule, alert_id, ts(started_at)))

    def end_episode(self, dedup_key: str) -> None:
        self._run("DELETE FROM alert_episodes WHERE dedup_key=?", (dedup_key,))

    def ack_episode(self, dedup_key: str, by: str, comment: str, at: datetime) -> None:
        self._run("UPDATE alert_episodes SET acked_by=?, acked_at=?, ack_comment=? "
                  "WHERE dedup_key=?", (by, ts(at), comment, dedup_key))

    def unack_episode(self, dedup_key: str) -> None:
        self._run("UPDATE alert_episodes SET acked_by=NULL, acked_at=NULL, ack_comment=NULL "
                  "WHERE dedup_key=?", (dedup_key,))

    # lifecycle: the acknowledgement history ------------------------------------------
    def append_ack(self, entry: AckEntry) -> None:
        self._run('INSERT INTO alert_acks (dedup_key, episode_started, alert_id, action, "by", '
                  "at, comment) VALUES (?,?,?,?,?,?,?)",
                  (entry.dedup_key, ts(entry.episode_started), entry.alert_id, entry.action,
                   entry.by, ts(entry.at), entry.comment))

    def ack_history(self, episodes: Iterable[tuple[str, datetime]]
                    ) -> dict[tuple[str, float], list[AckEntry]]:
        wanted = {(key, ts(started)) for key, started in episodes}
        rows = self._in_chunks(f"SELECT {_ACK_COLUMNS} FROM alert_acks WHERE dedup_key IN "
                               "({marks}) ORDER BY seq", sorted({key for key, _ in wanted}))
        rows.sort(key=lambda r: r[-1])
        found: dict[tuple[str, float], list[AckEntry]] = {}
        for row in rows:
            slot = (row[0], float(row[1]))
            if slot in wanted:
                found.setdefault(slot, []).append(_ack(row))
        return found

    def acks_by_alert(self, alert_ids: Iterable[str]) -> dict[str, list[AckEntry]]:
        rows = self._in_chunks(f"SELECT {_ACK_COLUMNS} FROM alert_acks WHERE alert_id IN "
                               "({marks}) ORDER BY seq", sorted(set(alert_ids)))
        rows.sort(key=lambda r: r[-1])
        found: dict[str, list[AckEntry]] = {}
        for row in rows:
            found.setdefault(row[2], []).append(_ack(row))
        return found

    def mark_escalated(self, dedup_key: str, at: datetime) -> None:
        self._run("UPDATE alert_episodes SET escalated_at=? WHERE dedup_key=?",
                  (ts(at), dedup_key))

    def escalation_candidates(self, rule: str, started_by: datetime) -> list[Episode]:
        """Open, unacknowledged, unescalated episodes of ``rule`` started by then (an
        indexed query)."""
        rows = self._rows(f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes WHERE rule=? AND "
                          "started_at<=? AND acked_at IS NULL AND escalated_at IS NULL "
                          "ORDER BY started_at", (rule, ts(started_by)))
        return [_episode(r) for r in rows]

    # lifecycle: groups -------------------------------------------------------------
    def alert_group(self, brand: str) -> AlertGroup | None:
        row = self._one("SELECT brand, rule, alert_id, started_at, last_update, related "
                        "FROM alert_groups WHERE brand=?", (brand,))
        if row is None:
            return None
        return AlertGroup(row[0], row[1], row[2], dt(row[3]), opt_dt(row[4]),
                          list(json.loads(row[5])))

    def open_group(self, brand: str, rule: str, alert_id: str, at: datetime) -> None:
        self._run("INSERT INTO alert_groups (brand, rule, alert_id, started_at, last_update, "
                  "related) VALUES (?,?,?,?,NULL,'[]') ON CONFLICT (brand) DO UPDATE SET "
                  "rule=excluded.rule, alert_id=excluded.alert_id, "
                  "started_at=excluded.started_at, last_update=NULL, related='[]'",
                  (brand, rule, alert_id, ts(at)))

    def update_group(self, brand: str, related: list[dict[str, Any]],
                     last_update: datetime | None) -> None:
        self._run("UPDATE alert_groups SET related=?, last_update=? WHERE brand=?",
                  (json.dumps(related), None if last_update is None else ts(last_update),
                   brand))

    # silences ------------------------------------------------------------------------
    def add_silence(self, silence: Silence) -> None:
        self._run("INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, "
                  "comment, created_at) VALUES (?,?,?,?,?,?,?)",
                  (silence.id, json.dumps(dict(silence.matchers)), ts(silence.starts_at),
                   ts(silence.ends_at), silence.created_by, silence.comment,
                   ts(silence.created_at or silence.starts_at)))

    def silences(self, ending_after: datetime | None) -> list[Silence]:
        rows = self._rows("SELECT id, matchers, starts_at, ends_at, created_by, comment, "
                          "created_at FROM silences WHERE ends_at>? ORDER BY created_at, id",
                          (float("-inf") if ending_after is None else ts(ending_after),))
        return [Silence(r[0], dt(r[2]), dt(r[3]), json.loads(r[1]), r[4], r[5], dt(r[6]))
                for r in rows]

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        return self._run("UPDATE silences SET ends_at=? WHERE id=? AND ends_at>?",
                         (ts(now), silence_id, ts(now))) == 1

    def prune_silences(self, ended_before: datetime) -> int:
        return self._run("DELETE FROM silences WHERE ends_at<?", (ts(ended_before),))
