"""One service per database, whose files only their owner can read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.service import ServiceProcess
from tests.storage.support import ENV, screenshot, serve_refused
from tests.support.helpers import post_callback


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 000 for the processes started meanwhile: file modes must not depend on it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_a_second_service_on_the_same_database_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "data" / "receiver.db"
    with ServiceProcess(database, ENV) as first:
        assert post_callback(first.url, screenshot(1)) == 200
        line = serve_refused(database, "already serving")
        assert f"pid {first.pid}" in line
        # Read-only commands do not need the lock: they work while the service runs.
        listing = subprocess.run(
            [sys.executable, "-m", "receiver", "events", "--database", str(database), "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert "/s/1.jpg" in listing.stdout
        assert post_callback(first.url, screenshot(2)) == 200  # the first one was not disturbed
        files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
        for path in [*files, database.with_name("receiver.db.lock")]:
            assert _mode(path) == 0o600, f"{path.name}: {_mode(path):04o}"
        assert first.stop()[0] == 0
    # Once the first has stopped, the lock is free.
    with ServiceProcess(database, ENV) as second:
        assert post_callback(second.url, screenshot(3)) == 200
        assert second.stop()[0] == 0


def test_an_existing_database_readable_by_others_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "data" / "receiver.db"
    with ServiceProcess(database, ENV) as service:
        assert service.stop()[0] == 0
    database.chmod(0o644)
    with ServiceProcess(database, ENV) as service:
        assert _mode(database) == 0o600
        code, _, err = service.stop()
    assert code == 0
    assert "readable by others" in err
