"""A consistent copy of the database, also while the service runs: `receiver backup`.

`cp receiver.db` while the service runs copies a file SQLite is writing, without what is still
only in its `-wal`: such a copy missed acknowledged events. SQLite's online backup API copies
the pages of one read transaction instead: a snapshot holding every commit made before it
began. The snapshot is held across all the steps of the copy (WAL: the writer keeps committing
meanwhile and never waits for it), so a large file is copied step by step, with progress, and
the commits made during the copy never restart it.

Callbacks acknowledged but not yet folded live in the inbox file beside the database; the copy
parks them in its own `inbox` table (they are moved into a new inbox file when a service starts
on the copy). The inbox is read from a snapshot taken before the database's, so a row the fold
stores (and the writer deletes) while the copy is made is in one of the two.

The copy is written beside its destination as `<name>.partial`, made a standalone file
(rollback journal: no `-wal` needed beside it), checked with `PRAGMA quick_check`, fsynced, and
only then renamed into place: the destination never holds half a backup. It is created 0600,
like the database: it holds every callback body.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from receiver.storage.connect import BUSY_TIMEOUT_MS
from receiver.storage.inbox_file import INBOX_PAIR, inbox_path

STEP_PAGES: Final = 1024
Progress = Callable[[int, int], None]  # (pages copied, pages in all)


class BackupError(Exception):
    """The backup could not be made; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    size: int  # bytes
    last_seq: int | None  # the newest event in the copy (None: no events)
    seconds: float


def backup(
    database: Path,
    destination: Path,
    *,
    step_pages: int = STEP_PAGES,
    progress: Progress | None = None,
) -> Backup:
    """Copy `database` to `destination` (a new file, or a directory to put a dated file in)."""
    started = time.monotonic()
    if not database.is_file():
        raise BackupError(f"no database at {database} (set RECEIVER_DATABASE or use --database)")
    if destination.is_dir():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        destination = destination / f"{database.stem}-{stamp}{database.suffix}"
    if destination.exists():
        raise BackupError(f"{destination} exists: back up to a new file")
    partial = destination.with_name(destination.name + ".partial")
    try:
        _create_private(partial)
        last_seq = _copy(database, partial, step_pages, progress)
        sync_path(partial)
        os.replace(partial, destination)
        sync_path(destination.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return Backup(destination, destination.stat().st_size, last_seq, time.monotonic() - started)


def _create_private(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _copy(database: Path, target: Path, step_pages: int, progress: Progress | None) -> int | None:
    """Copy from one read transaction; returns the newest event's `seq` in the copy."""
    box = _inbox_snapshot(database)
    source = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    source.isolation_level = None
    try:
        source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        source.execute("BEGIN")
        # The first read starts the snapshot that every step of the copy reads.
        last_seq: int | None = source.execute("SELECT max(seq) FROM events").fetchone()[0]
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(copy, pages=step_pages, progress=_steps(progress))
            copy.execute("PRAGMA journal_mode = DELETE")
            if box is not None:
                _park_unfolded(box, copy)
            problems = [row[0] for row in copy.execute("PRAGMA quick_check(3)")]
        finally:
            copy.close()
        source.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {database}: {exc}") from None
    finally:
        source.close()
        if box is not None:
            box.close()
    if problems != ["ok"]:
        raise BackupError(f"the copy of {database} is damaged ({'; '.join(problems)}): not kept")
    return last_seq


def _inbox_snapshot(database: Path) -> sqlite3.Connection | None:
    """A read transaction on the inbox file, begun now (None: the database has none yet)."""
    path = inbox_path(database)
    if not path.exists():
        return None
    try:
        box = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        box.isolation_level = None
        box.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        box.execute("BEGIN")
        box.execute("SELECT count(*) FROM inbox").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the inbox file {path}: {exc}") from None
    return box


def _park_unfolded(box: sqlite3.Connection, copy: sqlite3.Connection) -> None:
    """Put the inbox rows the copy's fold has not reached into the copy's `inbox` table; the
    copy is no longer paired with this inbox file (a service on it starts a new one)."""
    (through,) = copy.execute("SELECT inbox_seq FROM fold_progress").fetchone()
    rows = box.execute(
        "SELECT id, event_type, received_at, path_kind, payload FROM inbox WHERE seq > ?"
        " ORDER BY seq",
        (through,),
    ).fetchall()
    copy.execute("BEGIN")
    copy.executemany(
        "INSERT INTO inbox (id, event_type, received_at, path_kind, payload)"
        " VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    copy.execute(f"DELETE FROM service_state WHERE key = '{INBOX_PAIR}'")  # noqa: S608
    copy.execute("COMMIT")


def _steps(progress: Progress | None) -> Callable[[int, int, int], object] | None:
    """sqlite3's progress callback (status, pages left, pages in all) as (copied, in all)."""
    if progress is None:
        return None
    return lambda _, left, total: progress(total - left, total)


def sync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: the names in it are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
