"""Start servers as separate processes, wait for them, and read their CPU time and memory.

`receiver serve` is two processes (HTTP and the SQLite writer, its child): both are measured,
since the writer's CPU competes with the HTTP process and the load generator for the same cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds (user + system) so far and resident memory of one process."""

    cpu_seconds: float
    rss_bytes: int


def usage(pid: int) -> Usage:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    return Usage(cpu, rss)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the writer process of `receiver serve`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


class Server:
    """A server process on loopback; `usage()` reads it and its children from /proc."""

    def __init__(
        self, argv: list[str], port: int, env: dict[str, str] | None = None, *, log: Path
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                argv,
                env={**inherited, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.05)  # polling a port under a deadline
        raise TimeoutError(f"server on port {self.port} did not become healthy")

    def usage(self) -> list[Usage]:
        """This process first, then its children (for `receiver serve`: the writer)."""
        return [usage(pid) for pid in [self.proc.pid, *children(self.proc.pid)]]

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
