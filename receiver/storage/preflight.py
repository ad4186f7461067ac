"""Before the service starts: is the database file the one it stored events in, and is it sound?

SQLite opens a missing or empty file as a new, empty database. Left alone, a deleted or truncated
`receiver.db` (even with a committed `-wal` beside it) would be migrated afresh and the service
would report ready with no events, silently. So a marker file is written beside the database
once it exists (`receiver.db.created`), and a data directory that shows it held a database (the
marker, or a non-empty `-wal`) without a usable database file refuses to start. A damaged file
refuses too: its header is checked, then `PRAGMA quick_check` runs within a time budget (a large
database is checked as far as the budget goes: starting must not take minutes).

Each refusal is a `StartupRefused`: one line saying what is wrong and what to do.

The files hold every callback body, so they are private: a new database is created 0600 before
SQLite opens it (SQLite gives its `-wal` and `-shm` the database file's mode), and an existing one
readable by others is made 0600, whatever the umask.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Final

from receiver.errors import StartupRefused
from receiver.times import iso_utc

log = logging.getLogger(__name__)

_HEADER: Final = b"SQLite format 3\x00"
_MAX_PROBLEMS: Final = 3  # quick_check stops after this many: the first ones say enough
_RESTORE: Final = "restore it from a backup (see docs/deploy.md, Backup and restore)"


def marker_path(database: Path) -> Path:
    return database.with_name(database.name + ".created")


def companions(database: Path) -> list[Path]:
    """The files SQLite keeps beside the database in WAL mode."""
    return [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]


def preflight(database: Path, *, check_seconds: float) -> bool:
    """Check the database before anything opens it; True if it is new (created here, 0600).

    Raises `StartupRefused` when the service must not start on it.
    """
    size = _size(database)
    if not size:
        _refuse_if_used(database, "missing" if size is None else "empty")
        _create_private(database)
        return True
    _check_header(database, size)
    _quick_check(database, check_seconds)
    for path in (database, *companions(database)):
        _make_private(path)
    return False


def mark_used(database: Path) -> None:
    """Note beside the database that it exists, so that losing it is noticed at the next start."""
    marker = marker_path(database)
    if marker.exists():
        return
    text = (
        f"receiver keeps its events in {database.name} in this directory (marked "
        f"{iso_utc(time.time())}).\nWhile this file exists, `receiver serve` refuses to start "
        f"if {database.name} is missing or empty, instead of starting with no events: restore "
        "a backup (docs/deploy.md), or delete this file to start with an empty database.\n"
    )
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:  # a full or read-only disk: the next start tries again
        log.warning("could not write %s: %s", marker, exc)
        return
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    except OSError as exc:
        log.warning("could not write %s: %s", marker, exc)
    finally:
        os.close(fd)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _refuse_if_used(database: Path, state: str) -> None:
    marker = marker_path(database)
    wal = companions(database)[0]
    evidence: list[Path] = []
    if marker.exists():
        evidence.append(marker)
    if _size(wal):
        evidence.append(wal)
    if evidence:
        shown = " and ".join(str(path) for path in evidence)
        raise StartupRefused(
            f"the database {database} is {state}, yet this directory held one (found {shown}): "
            f"{_RESTORE}, or delete {shown} to start with an empty database"
        )


def _create_private(database: Path) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(database, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits away; never added any
    finally:
        os.close(fd)


def _make_private(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o600)
            log.warning("%s was readable by others (mode %04o); it is now 0600", path, mode)
    except FileNotFoundError:
        pass
    except OSError as exc:  # e.g. an immutable file: not a reason to refuse to start
        log.warning("could not make %s private (chmod 600): %s", path, exc)


def _check_header(database: Path, size: int) -> None:
    with database.open("rb") as file:
        header = file.read(len(_HEADER))
    if header != _HEADER:
        raise StartupRefused(
            f"{database} is not a SQLite database ({size} bytes without the SQLite header): "
            f"{_RESTORE}"
        )


def _quick_check(database: Path, seconds: float) -> None:
    """`PRAGMA quick_check`, stopped when `seconds` have passed (then the part it read is sound).

    Only damage refuses the start: an I/O problem (a read-only or full disk) is the writer's to
    report, as 503 and readiness `fail` until the disk recovers.
    """
    if seconds <= 0:
        return
    started = time.monotonic()
    deadline = started + seconds
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=rw", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        problems = [row[0] for row in conn.execute(f"PRAGMA quick_check({_MAX_PROBLEMS})")]
    except sqlite3.OperationalError as exc:
        if "interrupt" in str(exc):
            log.info(
                "quick check of %s stopped after %g s: the part read is sound", database, seconds
            )
        else:
            log.warning("could not check %s at start: %s", database, exc)
        return
    except sqlite3.DatabaseError as exc:  # SQLITE_CORRUPT, SQLITE_NOTADB
        raise StartupRefused(f"{database} is damaged ({exc}): {_RESTORE}") from None
    finally:
        conn.close()
    if problems != ["ok"]:
        found = "; ".join(" ".join(problem.split()) for problem in problems)
        raise StartupRefused(f"{database} is damaged (quick_check: {found}): {_RESTORE}")
    log.info("checked %s in %.2f s", database, time.monotonic() - started)
