"""A private PostgreSQL cluster for one test session or benchmark run: free port, always stopped.

Why not the system server: CI has no systemd, other engineers run their suites on the same machine
at the same time, and the outage tests must stop and start *their* server without disturbing
anyone. So each test session makes its own cluster with `initdb` in a temporary directory and runs
`postgres` in the foreground in a new session, listening on a free loopback port only (no Unix
socket), with the durability settings production needs (`fsync`, `synchronous_commit=on`).

PostgreSQL refuses to run as root, and CI runs as root: then the cluster's directory belongs to
the `postgres` user (Debian's package creates it) and the server runs as that user.

If `RECEIVER_TEST_NODES_DIR` is set (scripts/test sets it), the running server leaves a small file
there naming its process group, so the script's exit trap can kill a server that a crashed pytest
left behind (the same notes as the RabbitMQ nodes', without an epmd port). That kills the
postmaster; its backends (each in a session of its own) exit when they see it gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from testbed.service import free_port

SUPERUSER = "postgres"
_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def bin_dir() -> Path:
    """The newest installed server's programs (Debian keeps them out of PATH)."""
    found = sorted(glob.glob(_BIN_GLOB), key=lambda p: int(Path(p).parent.name.split(".")[0]))
    for candidate in reversed(found):
        if os.access(Path(candidate) / "initdb", os.X_OK):
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path is None:
        raise RuntimeError("PostgreSQL is not installed: run ./scripts/test, which installs it")
    return Path(on_path).parent


class PostgresCluster:
    """One cluster in a fresh temporary directory; `start()`/`stop()`/`kill()` can be repeated."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.port = free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="receiver-pg-"))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "server.log"
        self.name = f"receiver-pg-{uuid.uuid4().hex[:10]}"
        self._user = self._server_user()
        self._proc: subprocess.Popen[bytes] | None = None
        self._init()

    @property
    def url(self) -> str:
        """The superuser's URL (trust authentication on loopback: no password needed)."""
        return self.url_for("postgres")

    def url_for(self, database: str, *, user: str = SUPERUSER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        """The user to run the server as: ourselves, unless we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root needs the postgres user (Debian's postgresql package makes it)"
            ) from None

    def _run(self, *argv: str) -> None:
        subprocess.run(
            argv,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.base_dir,
            user=self._user.pw_uid if self._user else None,
            group=self._user.pw_gid if self._user else None,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )

    def _init(self) -> None:
        if self._user is not None:
            os.chown(self.base_dir, self._user.pw_uid, self._user.pw_gid)
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "logging_collector": "off",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs (its backends are its children)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and return once it accepts connections."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data_dir)],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self._user.pw_uid if self._user else None,
                group=self._user.pw_gid if self._user else None,
                env={**os.environ, "LC_ALL": "C.UTF-8"},
            )
        self._record()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"PostgreSQL not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)  # polling a port under a deadline; nothing to await in a sync fixture

    def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly ("fast" shutdown: SIGINT ends the sessions and checkpoints)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """Crash the server: SIGKILL to every backend and the postmaster at once (a backend
        runs in a session of its own, so the postmaster's process group is not enough)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._signal_all(signal.SIGKILL)
        proc.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP to every process): connections stay open, nothing is
        answered."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: int) -> None:
        assert self._proc is not None
        pid = self._proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(child), sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def destroy(self) -> None:
        """Stop the server and remove its directory; call last."""
        self.stop()
        self._forget()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    def _ready(self) -> bool:
        done = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return done.returncode == 0

    def _kill_group(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def _marker(self) -> Path | None:
        directory = os.environ.get("RECEIVER_TEST_NODES_DIR")
        return Path(directory) / self.name if directory else None

    def _record(self) -> None:
        marker = self._marker()
        if marker is not None and self._proc is not None:
            marker.write_text(f"{self._proc.pid}\n")

    def _forget(self) -> None:
        marker = self._marker()
        if marker is not None:
            marker.unlink(missing_ok=True)
