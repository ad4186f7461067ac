"""What the storage tests share: a used data directory, and a `receiver serve` that refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from testbed.service import ServiceProcess
from tests.support.helpers import KEY, payload, post_callback, signed

ENV = {"RECEIVER_CALLBACK_KEYS": KEY}


def screenshot(n: int) -> dict[str, Any]:
    return signed({**payload("screenshot_200.json"), "pic_url": f"/s/{n}.jpg"})


def used_database(directory: Path, events: int = 3) -> Path:
    """A data directory in which `receiver serve` stored `events` events and stopped cleanly."""
    database = directory / "data" / "receiver.db"
    with ServiceProcess(database, ENV) as service:
        for n in range(events):
            assert post_callback(service.url, screenshot(n)) == 200
        code, _, err = service.stop()
    assert code == 0, err
    return database


def serve_refused(database: Path, phrase: str) -> str:
    """Run `receiver serve`, which must refuse to start: exit 2, the reason in one line of
    stderr (its last), no traceback. Returns that line. A service that starts instead runs
    until the timeout, which fails the test."""
    env = ServiceProcess(database, ENV).env
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    err = result.stderr
    assert result.returncode == 2, f"exit {result.returncode}: {err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if phrase in line]
    assert len(lines) == 1, err
    assert err.strip().splitlines()[-1] == lines[0], err
    return lines[0]
