"""Debian's HAProxy, run with the `ha` Compose profile's own configuration (deploy/haproxy.cfg).

Only the listening address changes (a free loopback port instead of the container's :8080); the
replicas' addresses come from the environment, as in Compose. Like the suite's broker and
database, the running process leaves a note in `RECEIVER_TEST_NODES_DIR`, so scripts/test kills
it should pytest die.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from testbed.service import free_port

HAPROXY = Path("/usr/sbin/haproxy")
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
CONTAINER_BIND = "bind :8080"


class LoadBalancer:
    """HAProxy in front of the given replicas (host:port each), on a free loopback port."""

    def __init__(self, directory: Path, *replicas: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        text = CONFIG.read_text()
        assert CONTAINER_BIND in text, "deploy/haproxy.cfg no longer binds :8080"
        self.config = directory / "haproxy.cfg"
        self.config.write_text(text.replace(CONTAINER_BIND, f"bind 127.0.0.1:{self.port}"))
        self.log = directory / "haproxy.log"
        self.env = {**os.environ}
        for n, address in enumerate(replicas, start=1):
            self.env[f"RECEIVER_{n}_ADDR"] = address
        self._proc: subprocess.Popen[bytes] | None = None

    def check(self) -> subprocess.CompletedProcess[str]:
        """`haproxy -c`: the configuration as HAProxy itself reads it."""
        return subprocess.run(
            [str(HAPROXY), "-c", "-f", str(self.config)],
            env=self.env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    def start(self, timeout: float = 15.0) -> LoadBalancer:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(HAPROXY), "-db", "-f", str(self.config)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self._note()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, f"haproxy exited: {self.log.read_text()}"
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self  # listening (a 503 from HAProxy itself while no replica is up yet)
            except OSError:
                time.sleep(0.05)  # polling the port; the deadline bounds the wait
        raise TimeoutError(f"haproxy did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
        self._forget()

    def _marker(self) -> Path | None:
        directory = os.environ.get("RECEIVER_TEST_NODES_DIR")
        return Path(directory) / f"haproxy-{self.port}" if directory else None

    def _note(self) -> None:
        marker = self._marker()
        if marker is not None and self._proc is not None:
            marker.write_text(f"{self._proc.pid}\n")

    def _forget(self) -> None:
        marker = self._marker()
        if marker is not None:
            marker.unlink(missing_ok=True)

    def __enter__(self) -> LoadBalancer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
