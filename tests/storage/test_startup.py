"""A data directory that held a database never starts empty, and a damaged one never starts.

Each case runs `receiver serve` as a real process: it must exit 2 with one line on stderr.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.storage.preflight import marker_path, preflight
from testbed.service import ServiceProcess
from tests.storage.support import ENV, screenshot, serve_refused, used_database
from tests.support.helpers import count, post_callback, wait_folded


def test_a_deleted_database_is_refused(tmp_path: Path) -> None:
    database = used_database(tmp_path)
    assert marker_path(database).exists()
    database.unlink()
    line = serve_refused(database, "is missing")
    assert str(marker_path(database)) in line
    assert not database.exists()  # nothing was created in its place


def test_a_truncated_database_with_a_committed_wal_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "data" / "receiver.db"
    wal = database.with_name("receiver.db-wal")
    saved = tmp_path / "saved-wal"
    with ServiceProcess(database, ENV) as service:
        for n in range(3):
            assert post_callback(service.url, screenshot(n)) == 200
        wait_folded(database)  # the fold has committed them to the database's WAL
        shutil.copyfile(wal, saved)  # committed frames, not yet checkpointed
        assert service.stop()[0] == 0
    database.write_bytes(b"")
    shutil.copyfile(saved, wal)
    serve_refused(database, "is empty")
    marker_path(database).unlink()  # the WAL alone is evidence enough
    line = serve_refused(database, "is empty")
    assert str(wal) in line
    assert database.stat().st_size == 0


def _damage_index_root(database: Path) -> None:
    conn = sqlite3.connect(database)
    try:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'events_dedupe'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    finally:
        conn.close()
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)


def _overwrite_header(database: Path) -> None:
    with database.open("r+b") as file:
        file.write(b"this is not a database at all...")


def _truncate_to_half(database: Path) -> None:
    with database.open("r+b") as file:
        file.truncate(database.stat().st_size // 2)


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        (_damage_index_root, "is damaged"),
        (_overwrite_header, "is not a SQLite database"),
        (_truncate_to_half, "is damaged"),
    ],
)
def test_a_damaged_database_is_refused_in_one_line(
    tmp_path: Path, damage: object, phrase: str
) -> None:
    database = used_database(tmp_path, events=200)
    assert callable(damage)
    damage(database)
    line = serve_refused(database, phrase)
    assert "backup" in line


def test_a_fresh_directory_starts_and_is_marked(tmp_path: Path) -> None:
    database = used_database(tmp_path)
    assert count(database) == 3
    # Started again on the same files, it starts and keeps them.
    used_database(tmp_path)
    assert count(database) == 3  # the same three events again: duplicates


def test_the_start_up_check_is_bounded_in_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "big.db"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", ((str(n) * 20,) for n in range(50_000)))
    conn.execute("CREATE INDEX t_x ON t (x)")
    conn.commit()
    conn.close()
    with caplog.at_level(logging.INFO, "receiver.storage.preflight"):
        assert preflight(database, check_seconds=1e-6) is False
    assert "stopped after" in caplog.text


def test_migrate_refuses_a_lost_database_and_one_a_service_is_writing(tmp_path: Path) -> None:
    """`receiver migrate` takes serve's path: it neither brings a lost database back empty
    (after which serve would start with no events) nor migrates under a running service."""
    database = used_database(tmp_path)
    env = ServiceProcess(database, ENV).env

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "receiver", "migrate"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    with ServiceProcess(database, ENV):
        busy = migrate()
    assert busy.returncode == 2, busy.stderr
    assert "Traceback" not in busy.stderr
    assert migrate().returncode == 0  # once the service stopped
    database.unlink()
    lost = migrate()
    assert lost.returncode == 2, lost.stderr
    assert "is missing" in lost.stderr and "Traceback" not in lost.stderr
    assert not database.exists()
