"""The inbox file: an acknowledged callback's place on disk until the fold has stored its event.

It is its own SQLite file beside the database (`<database>-inbox`), not a table of it: SQLite
lets one transaction write per file, and the acknowledgement path (the writer process appends
here) must never wait for a fold transaction (the fold process writes the database). The fold
reads the inbox, stores events and records how far it got (`fold_progress`, migration 0007) in
the database's own transaction, so every row is folded exactly once; the writer deletes rows
the fold has passed (`Trim`), later, when it has nothing else to do.

Three facts tie the two files together, set up here before either process starts:
- The inbox's seq never falls back behind the fold's progress (a new or replaced inbox file
  continues after it), else new callbacks would look folded already.
- Rows parked in the database's own `inbox` table (migration 0005: a database from before the
  inbox file, or a backup copy, which parks the callbacks not yet folded there) are moved into
  the inbox file, once.
- The inbox file and the database know each other (a token in each): an inbox from another
  database is refused, a missing one is reported (what it held unfolded is gone).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Final

from receiver.errors import StartupRefused
from receiver.storage.connect import BUSY_TIMEOUT_MS

log = logging.getLogger(__name__)

# The schema name the inbox file is attached under on the service's read connection.
ATTACHED: Final = "inbox_file"
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS inbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- arrival order: the fold's order
    id           TEXT    NOT NULL,      -- the event id given at acknowledgement (X-Event-Id)
    event_type   INTEGER NOT NULL,
    received_at  REAL    NOT NULL,      -- unix seconds
    path_kind    TEXT,                  -- /callbacks/<path kind>, metadata only
    payload      BLOB    NOT NULL       -- the request body, verbatim (valid UTF-8 JSON)
);
CREATE INDEX IF NOT EXISTS inbox_id ON inbox (id);
CREATE TABLE IF NOT EXISTS inbox_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# The key of the token both files hold (service_state, inbox_state).
INBOX_PAIR: Final = "inbox_pair"
_PROGRESS: Final = "SELECT inbox_seq FROM fold_progress WHERE id = 1"


def inbox_path(database: Path) -> Path:
    return database.with_name(database.name + "-inbox")


def inbox_files(database: Path) -> list[Path]:
    """The inbox file and the files SQLite keeps beside it in WAL mode."""
    path = inbox_path(database)
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))]


def open_inbox(database: Path) -> sqlite3.Connection:
    """A connection to the inbox file in WAL mode with full durability, autocommit."""
    conn = sqlite3.connect(inbox_path(database), isolation_level=None, check_same_thread=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def prepare_inbox(database: Path) -> None:
    """Create or check the inbox file, continue its seq after the fold, move parked rows.

    Runs under the database lock, after the migrations, before any process opens the inbox.
    Raises `StartupRefused` for an inbox file that belongs to another database.
    """
    path = inbox_path(database)
    existed = path.exists()
    if not existed:
        _create_private(path)
    for name in inbox_files(database):
        if name.exists() and name.stat().st_mode & 0o077:
            os.chmod(name, 0o600)
    main = sqlite3.connect(database, isolation_level=None)
    try:
        main.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        box = open_inbox(database)
        try:
            box.executescript(SCHEMA)
            _introduce(main, box, path, existed)
            progress = _progress(main)
            _continue_after(box, progress)
        finally:
            box.close()
        _move_parked(main, path, progress)
    finally:
        main.close()


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _progress(main: sqlite3.Connection) -> int:
    row = main.execute(_PROGRESS).fetchone()
    return int(row[0]) if row is not None else 0


def _introduce(
    main: sqlite3.Connection, box: sqlite3.Connection, path: Path, existed: bool
) -> None:
    """Check that the inbox file and the database belong together; tie a new pair."""
    ours = main.execute("SELECT value FROM service_state WHERE key = ?", (INBOX_PAIR,)).fetchone()
    theirs = box.execute("SELECT value FROM inbox_state WHERE key = ?", (INBOX_PAIR,)).fetchone()
    if ours is not None and theirs is not None and ours[0] != theirs[0]:
        raise StartupRefused(
            f"{path} is the inbox of another database, not of {path.with_name(path.name[:-6])}; "
            "move it away (its callbacks belong to that database)"
        )
    if ours is not None and (not existed or theirs is None):
        log.error(
            "the inbox file %s was missing: a new one is in use; callbacks acknowledged but not "
            "yet folded into history when it went missing (if there were any) are lost",
            path,
        )
    token = theirs[0] if theirs is not None else ours[0] if ours is not None else None
    token = token or secrets.token_hex(16)
    if theirs is None:
        box.execute("INSERT INTO inbox_state (key, value) VALUES (?, ?)", (INBOX_PAIR, token))
    if ours is None or ours[0] != token:
        main.execute(
            "INSERT INTO service_state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (INBOX_PAIR, token),
        )


def _continue_after(box: sqlite3.Connection, progress: int) -> None:
    """Make the next inbox seq greater than `progress` (a fresh inbox starts at 1)."""
    row = box.execute("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").fetchone()
    if row is None:
        box.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('inbox', ?)", (progress,))
    elif int(row[0]) < progress:
        box.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'inbox'", (progress,))


def _move_parked(main: sqlite3.Connection, path: Path, progress: int) -> None:
    """Move rows parked in the database's `inbox` table into the inbox file, in their order.

    Two files commit one at a time: if the process stops between the two commits, the next
    start finds the rows in both, and moves only those the inbox file does not hold yet.
    """
    (parked,) = main.execute("SELECT count(*) FROM inbox").fetchone()
    if not parked:
        return
    main.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (str(path),))
    try:
        main.execute("BEGIN IMMEDIATE")
        try:
            main.execute(
                f"INSERT INTO {ATTACHED}.inbox (id, event_type, received_at, path_kind, payload)"  # noqa: S608
                " SELECT id, event_type, received_at, path_kind, payload FROM main.inbox"
                f" WHERE id NOT IN (SELECT id FROM {ATTACHED}.inbox WHERE seq > ?) ORDER BY seq",
                (progress,),
            )
            main.execute("DELETE FROM main.inbox")
            main.execute("COMMIT")
        except BaseException:
            main.execute("ROLLBACK")
            raise
    finally:
        main.execute(f"DETACH DATABASE {ATTACHED}")
    log.info("moved %d parked callback(s) into the inbox file %s", parked, path)
