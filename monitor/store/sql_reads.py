"""The dashboard's reads and records (web actions), and the outbound screen's lists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from monitor.store.api import MentionRow
from monitor.store.records import Action, AlertLine, StoredPost
from monitor.store.sqlbase import POST_COLUMNS, SqlCore, dt, marks, stored_post, ts

_LINE = "id, brand, rule, severity, state, title, created_at, details"


def _line(r: Sequence[Any]) -> AlertLine:
    return AlertLine(r[0], r[1], r[2], r[3], r[4], r[5], dt(r[6]), '"silenced"' in r[7])


def _action(r: Sequence[Any]) -> Action:
    return Action(dt(r[0]), r[1], r[2], r[3], json.loads(r[4]))


class SqlReads(SqlCore):
    # web actions ---------------------------------------------------------------------
    def record_action(self, at: datetime, actor: str, action: str, alert_id: str | None,
                      detail: Mapping[str, Any]) -> None:
        self._run("INSERT INTO web_actions (at, actor, action, alert_id, detail) "
                  "VALUES (?,?,?,?,?)", (ts(at), actor, action, alert_id,
                                         json.dumps(dict(detail), ensure_ascii=False,
                                                    default=str)))

    def actions_for(self, alert_ids: Iterable[str]) -> list[Action]:
        """Actions on these alerts, oldest first."""
        rows = self._in_chunks("SELECT at, actor, action, alert_id, detail FROM web_actions "
                               "WHERE alert_id IN ({marks})", sorted(set(alert_ids)))
        rows.sort(key=lambda r: r[0])
        return [_action(r) for r in rows]

    def recent_actions(self, limit: int = 50) -> list[Action]:
        rows = self._rows("SELECT at, actor, action, alert_id, detail FROM web_actions "
                          "ORDER BY id DESC LIMIT ?", (limit,))
        return [_action(r) for r in rows]

    # alerts as the pages list them -----------------------------------------------------
    def alert_facets(self) -> dict[str, list[str]]:
        """The brands, rules and kinds that alerts were stored for (filter choices)."""
        return {column: [str(r[0]) for r in self._rows(
            f"SELECT DISTINCT {column} FROM alerts ORDER BY {column} LIMIT 200")]
            for column in ("brand", "rule", "kind")}

    def alerts_with_key(self, dedup_key: str, limit: int = 500) -> list[AlertLine]:
        rows = self._rows(f"SELECT {_LINE} FROM alerts WHERE dedup_key=? "
                          "ORDER BY created_at, rowid LIMIT ?", (dedup_key, limit))
        return [_line(r) for r in rows]

    def firing_alerts(self, *, since: datetime, kind: str | None = None,
                      rule: str | None = None, brand: str | None = None,
                      limit: int = 500, newest_first: bool = True) -> list[AlertLine]:
        sql = f"SELECT {_LINE} FROM alerts WHERE state='firing' AND created_at>=?"
        params: list[Any] = [ts(since)]
        for column, value in (("kind", kind), ("rule", rule), ("brand", brand)):
            if value is not None:
                sql += f" AND {column}=?"
                params.append(value)
        order = "DESC" if newest_first else "ASC"
        rows = self._rows(sql + f" ORDER BY created_at {order} LIMIT ?", (*params, limit))
        return [_line(r) for r in rows]

    def latest_alert(self) -> AlertLine | None:
        row = self._one(f"SELECT {_LINE} FROM alerts ORDER BY created_at DESC, rowid DESC "
                        "LIMIT 1")
        return None if row is None else _line(row)

    def alert_markers(self, brands: Sequence[str], start: float, end: float,
                      limit: int) -> list[AlertLine]:
        """Firing alerts of ``brands`` in [start, end), not silenced ones, newest first."""
        if not brands:
            return []
        rows = self._rows(
            f"SELECT {_LINE} FROM alerts WHERE created_at>=? AND created_at<? AND "
            f"state='firing' AND brand IN ({marks(len(brands))}) AND title NOT LIKE "
            "'Silenced:%' ORDER BY created_at DESC LIMIT ?", (start, end, *brands, limit))
        return [_line(r) for r in rows]

    # aggregates and posts as the pages chart them --------------------------------------
    def aggregate_rows(self, brand: str, first: float,
                       last: float) -> list[tuple[float, int, int, float | None]]:
        return [(float(r[0]), int(r[1]), int(r[2]), r[3]) for r in self._rows(
            "SELECT start, posts, negatives, expected FROM aggregates WHERE brand=? AND "
            "start>=? AND start<=?", (brand, float(first), float(last)))]

    def mentions_by_brand(self, first: float, last: float) -> dict[str, int]:
        rows = self._rows("SELECT brand, sum(posts) FROM aggregates WHERE start>=? AND "
                          "start<=? GROUP BY brand", (float(first), float(last)))
        return {str(r[0]): int(r[1] or 0) for r in rows}

    def aggregate_brands(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT DISTINCT brand FROM aggregates "
                                              "ORDER BY brand")]

    def top_posts(self, brand: str, since: float, limit: int) -> list[StoredPost]:
        """The brand's mentions with the widest reach (author followers) since then."""
        rows = self._rows(f"SELECT seq, {POST_COLUMNS} FROM posts WHERE brand=? AND "
                          "created_at>=? AND kind='mention' ORDER BY followers DESC, "
                          "created_at DESC LIMIT ?", (brand, float(since), limit))
        return [stored_post(r) for r in rows]

    def recent_mentions(self, brand: str, start: float, end: float, limit: int, *,
                        include_end: bool) -> list[MentionRow]:
        """A brand's mentions created in [start, end] (or [start, end)), newest first."""
        rows = self._rows(
            "SELECT text, author_handle, followers, url, created_at FROM posts WHERE brand=? "
            f"AND created_at>=? AND created_at{'<=' if include_end else '<'}? AND "
            "kind='mention' ORDER BY created_at DESC LIMIT ?", (brand, start, end, limit))
        return [(str(r[0]), str(r[1]), r[2], r[3], float(r[4])) for r in rows]

    # outbound watchlist and approved-posts ledger ----------------------------------------
    def add_outbound_watch(self, entry_id: str, body: dict[str, Any],
                           expires_at: datetime | None) -> None:
        with self.transaction():  # replaced entries go to the end of the list
            self._run("DELETE FROM outbound_watchlist WHERE id=?", (entry_id,))
            self._run("INSERT INTO outbound_watchlist (id, body, expires_at) VALUES (?,?,?)",
                      (entry_id, json.dumps(body, ensure_ascii=False),
                       None if expires_at is None else ts(expires_at)))

    def delete_outbound_watch(self, entry_id: str) -> bool:
        return self._run("DELETE FROM outbound_watchlist WHERE id=?", (entry_id,)) == 1

    def outbound_watch_entries(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT body FROM outbound_watchlist ORDER BY rowid")
        return [dict(json.loads(r[0])) for r in rows]

    def add_approved_post(self, item_id: str, brand: str | None, body: dict[str, Any],
                          valid_until: datetime) -> None:
        with self.transaction():
            self._run("DELETE FROM outbound_approved WHERE id=?", (item_id,))
            self._run("INSERT INTO outbound_approved (id, brand, body, valid_until) "
                      "VALUES (?,?,?,?)", (item_id, brand, json.dumps(body, ensure_ascii=False),
                                           ts(valid_until)))

    def approved_posts(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT body FROM outbound_approved ORDER BY rowid")
        return [dict(json.loads(r[0])) for r in rows]

    def prune_approved_posts(self, expired_before: datetime) -> int:
        return self._run("DELETE FROM outbound_approved WHERE valid_until<?",
                         (ts(expired_before),))
