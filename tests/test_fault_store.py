"""Fault tests (issue 7): SQLite locked by another process, and a full disk.

Both must give a clear error (a 503 JSON body over HTTP, a StoreError naming the
database), keep the daemon running, store nothing half-written and leave the
database passing ``PRAGMA integrity_check``; once the fault is gone, ingest works.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import StoreError
from tests.conftest import write_project as write_base_project
from tests.daemon import DaemonProcess, free_port, wait_for
from tests.fault_helpers import write_project
from tests.timeline import T0, Harness, post, steady

TOKEN = "fault-ingest-token-0123456789"


def _integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def _posts(first: int, n: int, text: str = "flying with @acme today") -> list[dict[str, Any]]:
    return [post(first + i, T0 + timedelta(seconds=first + i), text).to_json()
            for i in range(n)]


@pytest.mark.e2e
def test_sqlite_locked_by_another_process_503_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    config = write_project(tmp_path, port, None, {"file": "jsonl://state/alerts.jsonl"},
                           token="BM_FAULT_TOKEN")
    daemon = DaemonProcess(config, port, {"BM_FAULT_TOKEN": TOKEN}).start()
    db = tmp_path / "state" / "brand-monitor.db"
    try:
        status, body = daemon.request("POST", "/ingest", _posts(0, 50), TOKEN)
        # (dated in March 2026: older than the retention, so also listed as "unplaced")
        assert (status, body["accepted"], body["duplicates"]) == (202, 50, 0)
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            status, body = daemon.request("POST", "/ingest", _posts(100, 50), TOKEN)
            assert status == 503, body
            assert time.monotonic() - started < 2.0  # told at once, the loop never waits
            assert body["error"].startswith("state store unavailable")
            assert "database is locked" in body["error"] and str(db) in body["error"]
            status, body = daemon.request("POST", "/ingest", _posts(200, 5), TOKEN)
            assert status == 503  # fails fast while the store is locked
            assert daemon.request("GET", "/healthz")[0] == 200  # and the daemon is healthy
        finally:
            other.execute("ROLLBACK")
            other.close()
        # a 503 took nothing (the journal could not be written): the sender's retry is
        # new, and once stored a second retry is a duplicate
        status, body = wait_for(lambda: (answer := daemon.request(
            "POST", "/ingest", _posts(100, 50), TOKEN))[0] != 503 and answer, 10,
            "the store to take posts again")
        assert (status, body["accepted"], body["duplicates"]) == (202, 50, 0)
        wait_for(lambda: daemon.request("POST", "/ingest", _posts(100, 50), TOKEN) == (
            202, {"accepted": 0, "duplicates": 50}), 10, "the batch to be stored")
        assert daemon.request("GET", "/healthz")[0] == 200
        assert daemon.stop() == 0, daemon.log_text()
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert "Traceback" not in daemon.log_text()
    assert _integrity(db) == "ok"
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 100
    con.close()


def test_database_full_raises_store_error_and_writes_nothing_half(tmp_path: Path) -> None:
    """``max_page_count`` makes the database "full" without touching the disk."""
    h = Harness(write_base_project(tmp_path))
    h.store._db.execute("PRAGMA max_page_count=60")
    posts = steady(T0, 48, 8)
    stored, failed = 0, None
    for i in range(0, len(posts), 200):
        batch = posts[i:i + 200]
        try:
            h.engine.process_batch(batch)
        except StoreError as exc:
            failed = (batch, exc)
            break
        stored += len(batch)
    assert failed is not None, "the database never filled up"
    batch, exc = failed
    assert "database or disk is full" in str(exc) and str(h.db) in str(exc)
    assert h.store.post_count() == stored
    assert not any(h.store.has_post(p.key) for p in batch)
    # the connection is usable again (no transaction left open) once there is room
    h.store._db.execute("PRAGMA max_page_count=1000000")
    h.engine.process_batch(batch)
    assert h.store.post_count() == stored + len(batch)
    h.store.close()
    assert _integrity(h.db) == "ok"


@contextlib.contextmanager
def _tiny_filesystem(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


@pytest.mark.e2e
def test_disk_full_503_nothing_half_written_then_recovers(tmp_path: Path) -> None:
    with _tiny_filesystem(tmp_path / "disk", "1m") as disk:
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * 384 * 1024)
        port = free_port()
        config = write_project(tmp_path, port, None,
                               {"file": f"jsonl://{tmp_path / 'alerts.jsonl'}"},
                               token="BM_FAULT_TOKEN")
        config.write_text(config.read_text().replace("state_dir: state", f"state_dir: {disk}"))
        daemon = DaemonProcess(config, port, {"BM_FAULT_TOKEN": TOKEN}).start()
        db = disk / "brand-monitor.db"
        filler = "@acme " + "lorem ipsum dolor sit amet " * 20
        accepted, full = 0, None
        try:
            for i in range(300):
                status, body = daemon.request("POST", "/ingest",
                                              _posts(i * 10, 10, filler), TOKEN)
                if status != 202:
                    full = (i, status, body)
                    break
                accepted += body["accepted"]
            assert full is not None, "the 1 MB filesystem never filled up"
            i, status, body = full
            assert status == 503, body
            assert "database or disk is full" in body["error"], body
            assert daemon.request("GET", "/healthz")[0] == 200  # still up
            ballast.unlink()  # room again
            # the refused batch stays queued and is stored once there is room, so the
            # sender's retry finds its posts stored (duplicates) or stores them itself
            def resent() -> Any:
                status, body = daemon.request("POST", "/ingest", _posts(i * 10, 10, filler),
                                              TOKEN)
                return body if status == 202 else None  # 503 until the kept batch is in

            body = wait_for(resent, 15, "the store to take posts again")
            assert body["accepted"] + body["duplicates"] == 10, body
            accepted += 10
            assert accepted > 10
            assert daemon.stop() == 0, daemon.log_text()
        finally:
            if daemon.proc and daemon.proc.poll() is None:
                daemon.kill()
        assert _integrity(db) == "ok"
        con = sqlite3.connect(db)
        try:
            assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == accepted
        finally:
            con.close()
