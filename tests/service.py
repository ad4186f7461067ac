"""Run `receiver serve` as a real separate process for tests that need signals and restarts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """`python -m receiver serve` on a free loopback port; waits until /healthz answers."""

    def __init__(self, database: Path, env: dict[str, str] | None = None) -> None:
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
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited early: {self.proc.communicate()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)  # polling the port; the deadline bounds the wait
        raise TimeoutError("receiver did not become healthy")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str, str]:
        """Send `sig`, wait for exit; returns (exit code, stdout, stderr)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

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
            self.proc.communicate()
