"""Start servers as separate processes, wait for them, and read their CPU time and memory.

`receiver serve` is several processes: the HTTP process (the one started), the inbox writer, the
fold process (which folds the inbox into events) and, if one runs apart, the outbox relay. All
are measured, since they compete with each other and with the load generator for the same cores.
A process is named by its role, read from the module on its command line
(`-m receiver.storage.writer_process` is the writer, `...fold_process` the fold, any module with
"relay" in its name the relay): the pids change when a child restarts,
and the order in which children start is nobody's promise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HTTP, WRITER, FOLD, RELAY_PROCESS = "http", "writer", "fold", "relay"


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds (user + system) so far and resident memory of one process."""

    cpu_seconds: float
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class Proc:
    """One process of a server at one moment."""

    pid: int
    role: str
    usage: Usage


def usage(pid: int) -> Usage:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    return Usage(cpu, rss)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
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


def descendants(pid: int) -> list[int]:
    """Children, grandchildren and so on (a relay may be the writer's child, or the reverse)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return sorted(found)


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def role(argv: list[str]) -> str:
    """A child's role from its program: the module after `-m` (and its subcommand, if one
    follows), else the executable's name.

    Only the program is looked at, never its options: a database path may contain any word.
    """
    if "-m" in argv[:-1]:
        at = argv.index("-m") + 1
        program = " ".join(w for w in argv[at : at + 2] if not w.startswith("-"))
    else:
        program = Path(argv[0]).name if argv else ""
    if "relay" in program:
        return RELAY_PROCESS
    if "writer" in program:
        return WRITER
    if "fold" in program:
        return FOLD
    return program or "?"


def cpu_by_role(before: Iterable[Proc], after: Iterable[Proc]) -> dict[str, float]:
    """CPU seconds each role spent between two snapshots (a process born since counts from 0;
    one that died in between is lost, which only a restart causes)."""
    start = {p.pid: p.usage.cpu_seconds for p in before}
    spent: dict[str, float] = {}
    for p in after:
        spent[p.role] = spent.get(p.role, 0.0) + p.usage.cpu_seconds - start.get(p.pid, 0.0)
    return spent


def rss_by_role(procs: Iterable[Proc]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in procs:
        out[p.role] = out.get(p.role, 0) + p.usage.rss_bytes
    return out


class Server:
    """A server process on loopback; `snapshot()` reads it and its descendants from /proc."""

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

    def snapshot(self) -> list[Proc]:
        """The HTTP process (the one started) and every descendant, each with its role."""
        procs = [Proc(self.proc.pid, HTTP, usage(self.proc.pid))]
        for pid in descendants(self.proc.pid):
            try:
                procs.append(Proc(pid, role(command_line(pid)), usage(pid)))
            except OSError:  # exited meanwhile
                continue
        return procs

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
