"""One service per database: an exclusive lock on `<database>.lock`, held while it runs.

Two services on one database would each run a writer and an outbox relay: SQLite keeps the rows
consistent, but every event would be published twice, and stopping one would not stop intake.
`flock` on a separate file, not SQLite's own locks: those are POSIX locks, which a process loses
when it closes any descriptor of the file. The kernel releases the lock when the process dies
however it dies, so there is never a stale lock to clean up. The descriptor is not inherited, so
the writer process (a child) neither holds nor waits for it; read-only commands (`receiver
events`, `receiver backup`) never take it and work while the service runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from receiver.errors import StartupRefused

log = logging.getLogger(__name__)


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """The held lock; `release()` (or the process ending) lets the next service start."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> DatabaseLock:
        """Take the lock, or raise `StartupRefused` naming the process that holds it."""
        path = lock_path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inheritable (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StartupRefused(
                f"another receiver{holder} is already serving {database} (it holds {path}); "
                "stop it first: one service per database"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        _write_holder(fd, path)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
        return f" (pid {pid})"
    return ""


def _write_holder(fd: int, path: Path) -> None:
    """Note our pid in the file, for the message of whoever is refused next. Best effort: on a
    full disk the lock still holds, only the note is missing."""
    try:
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError as exc:
        log.warning("could not write the pid into %s: %s", path, exc)
