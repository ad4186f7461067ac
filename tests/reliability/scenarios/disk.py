"""Honest ways to make the database unwritable for a process that runs as root.

`chmod` stops nothing here: root bypasses permission checks, and the writer keeps its open file
descriptors anyway. These do stop root, on descriptors already open:

- `FullFilesystem`: the database lives on a size-limited tmpfs; a ballast file fills it (ENOSPC)
  and deleting the ballast frees it. Needs `mount` (CAP_SYS_ADMIN).
- `ReadOnlyFiles`: `chattr +i` on the database and its WAL (EPERM on every write, even through
  an open descriptor, even for root). Needs CAP_LINUX_IMMUTABLE and ext4/xfs/btrfs.
- `FileSizeLimit`: RLIMIT_FSIZE of one byte on the writer process: every write() to a file at
  an offset past it fails (EFBIG), also inside the file's current size (SQLite reuses its WAL
  from the start after a checkpoint, so a limit at the current size would stop nothing). Needs
  nothing; CPython ignores SIGXFSZ, so write() fails instead of the signal killing the writer.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from receiver.storage.inbox_file import inbox_path
from testbed.service import ServiceProcess

_CHUNK = b"\0" * (1 << 16)


class Unavailable(Exception):
    """This machine does not allow the mechanism (no privilege, unsupported filesystem)."""


class DiskTrouble(Protocol):
    name: str

    def break_disk(self, process: ServiceProcess) -> None: ...

    def repair(self) -> None: ...


class FullFilesystem:
    """A small tmpfs for the database directory, filled up by a ballast file."""

    name = "full filesystem (size-limited tmpfs filled by a ballast file: ENOSPC)"

    def __init__(self, mountpoint: Path) -> None:
        self._ballast = mountpoint / "ballast"

    @classmethod
    @contextlib.contextmanager
    def mounted(cls, mountpoint: Path, size: str = "16m") -> Iterator[FullFilesystem]:
        mountpoint.mkdir(parents=True, exist_ok=True)
        try:
            mount = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise Unavailable("mount is not installed") from exc
        if mount.returncode:
            raise Unavailable(f"mount -t tmpfs failed: {mount.stderr.strip() or mount.returncode}")
        try:
            yield cls(mountpoint)
        finally:
            subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)

    def break_disk(self, process: ServiceProcess) -> None:
        with self._ballast.open("ab", buffering=0) as ballast:  # nothing left to flush at close
            try:
                while True:
                    ballast.write(_CHUNK)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise

    def repair(self) -> None:
        self._ballast.unlink(missing_ok=True)


class ReadOnlyFiles:
    """The immutable attribute on the database and inbox files and their write-ahead logs."""

    name = "read-only files (chattr +i on the database, the inbox and their WALs: EPERM)"

    def __init__(self, database: Path) -> None:
        # Not the -shm indexes: they are memory-mapped, and rebuilt from the WAL anyway.
        inbox = inbox_path(database)
        self._files = [
            path.with_name(path.name + suffix)
            for path in (database, inbox)
            for suffix in ("", "-wal")
        ]

    @staticmethod
    def probe(directory: Path) -> None:
        """Raise `Unavailable` unless `chattr +i` works in `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        sample = directory / ".chattr-probe"
        sample.touch()
        try:
            _chattr("+i", [sample])
            _chattr("-i", [sample])
        finally:
            sample.unlink(missing_ok=True)

    def break_disk(self, process: ServiceProcess) -> None:
        _chattr("+i", self._files)

    def repair(self) -> None:
        _chattr("-i", self._files)


class FileSizeLimit:
    """RLIMIT_FSIZE of the running writer process, set to one byte."""

    name = "file size limit (RLIMIT_FSIZE of 1 byte on the writer process: EFBIG)"

    def __init__(self, database: Path) -> None:
        self._pid: int | None = None

    def break_disk(self, process: ServiceProcess) -> None:
        self._pid = process.writer_pid()
        resource.prlimit(self._pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))

    def repair(self) -> None:
        if self._pid is not None:
            limit = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(self._pid, resource.RLIMIT_FSIZE, limit)


def _chattr(flag: str, paths: list[Path]) -> None:
    existing = [str(p) for p in paths if p.exists()]
    try:
        result = subprocess.run(
            ["chattr", flag, *existing], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise Unavailable("chattr is not installed") from exc
    if result.returncode:
        raise Unavailable(f"chattr {flag} failed: {result.stderr.strip()}")
