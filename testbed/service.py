"""Run `receiver serve` as a real separate process for tests that need signals and restarts.

Used by the test suite and its chaos scenarios (`python -m tests.reliability`). Its output goes
to anonymous temporary files, not pipes: a pipe nobody reads fills up under a flood of refusal
log lines and would block the service.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """`python -m receiver serve` on a free loopback port; waits until /healthz answers.

    The port and database stay the same across `start()` calls, so a test can kill the service
    and start it again where CSS will retry.
    """

    def __init__(
        self, database: Path, env: dict[str, str] | None = None, *, open_files: int | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = database
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
            "RECEIVER_HOST": "127.0.0.1",
            "RECEIVER_PORT": str(self.port),
            "RECEIVER_DATABASE": str(database),
            **(env or {}),
        }
        # RLIMIT_NOFILE (soft and hard) of the service, to exhaust descriptors in a test.
        self.open_files = open_files
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._err: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the service is not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self._close_output()
        # Append mode: the service writes at the end even while `output()` reads from the start.
        self._out = tempfile.TemporaryFile("a+b")  # noqa: SIM115 - outlives this call
        self._err = tempfile.TemporaryFile("a+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            preexec_fn=None if self.open_files is None else self._limit_open_files,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.output()
                self._close_output()
                raise RuntimeError(f"receiver exited early: {output}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)  # polling the port; the deadline bounds the wait
        raise TimeoutError("receiver did not become healthy")

    def _limit_open_files(self) -> None:
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str, str]:
        """Send `sig`, wait for exit; returns (exit code, stdout, stderr)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        out, err = self.output()
        return self.proc.returncode, out, err

    def kill(self) -> None:
        """`kill -9` the service process only; its writer and fold processes see their pipes
        close."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def writer_pid(self) -> int:
        """The pid of the service's writer process (it appends to the inbox)."""
        return self._child("receiver.storage.writer_process")

    def fold_pid(self) -> int:
        """The pid of the service's fold process (it writes the database)."""
        return self._child("receiver.storage.fold_process")

    def _child(self, module: str) -> int:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        found = [
            int(pid)
            for pid in children
            if module in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ]
        assert len(found) == 1, f"expected one {module} process, found {found} of {children}"
        return found[0]

    def output(self) -> tuple[str, str]:
        """Everything the service printed so far: (stdout, stderr)."""
        return _read(self._out), _read(self._err)

    def _close_output(self) -> None:
        for stream in (self._out, self._err):
            if stream is not None:
                stream.close()
        self._out = self._err = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_output()


def _read(stream: IO[bytes] | None) -> str:
    if stream is None:
        return ""
    stream.flush()
    stream.seek(0)
    return stream.read().decode("utf-8", "replace")
