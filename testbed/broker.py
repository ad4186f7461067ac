"""A private RabbitMQ node for one test session or benchmark run: free ports, always stopped.

Why not the system broker: CI has no systemd (nothing runs after `apt-get install`), other
engineers run their suites on the same machine at the same time, and the outage tests must stop
and start *their* broker without disturbing anyone. So each test session runs its own node with
everything private: node name, AMQP/distribution/epmd ports, data and log directories, Erlang
cookie (`HOME`), no plugins, and an empty `rabbitmq-env.conf` so the machine's one is ignored.

The node runs in the foreground under its start script in a new session; SIGTERM makes the script
stop the VM cleanly (~1 s), SIGKILL on the VM simulates a crash. Readiness is the AMQP listener
answering the protocol header with `Connection.Start`, which RabbitMQ opens only at the end of
boot (~6 s on these machines).

If `RECEIVER_TEST_NODES_DIR` is set (scripts/test sets it), each running node leaves a small
file there naming its process group and epmd port, so the script's exit trap can kill a node
that a crashed pytest left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from testbed.service import free_port

_SERVER_SCRIPTS = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",  # Debian: the real script (the /usr/sbin one su's)
    "/usr/lib/rabbitmq/sbin/rabbitmq-server",
)
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_METHOD = 1


def server_script() -> str:
    for candidate in _SERVER_SCRIPTS:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RuntimeError(
            "rabbitmq-server is not installed: run ./scripts/test, which installs it"
        )
    return found


class RabbitNode:
    """One RabbitMQ node in `base_dir`; `start()`/`stop()`/`kill()` can be repeated."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.name = f"receiver-test-{uuid.uuid4().hex[:10]}@localhost"
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"
        self.log_path = base_dir / "node.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepare()

    def _prepare(self) -> None:
        (self.base_dir / "home").mkdir(parents=True, exist_ok=True)
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        (self.base_dir / "rabbitmq-env.conf").write_text("")
        (self.base_dir / "rabbitmq.conf").write_text(
            "log.console = false\nlog.file.level = info\ndisk_free_limit.absolute = 50MB\n"
        )

    def _env(self) -> dict[str, str]:
        base = self.base_dir
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **keep,
            "HOME": str(base / "home"),  # the Erlang cookie is created here, private to the node
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        }

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the node and return once it accepts AMQP connections."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [server_script()],
                env=self._env(),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._record()
        deadline = time.monotonic() + timeout
        while not self._answers_amqp():
            if self._proc.poll() is not None:
                raise RuntimeError(f"RabbitMQ node exited during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"RabbitMQ node not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling a port under a deadline; nothing to await in a sync fixture

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node cleanly (its start script turns SIGTERM into a graceful VM stop)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._signal_group(signal.SIGCONT)  # a paused node cannot stop
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """Crash the node: SIGKILL to every process of its group (script and Erlang VM)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._kill_group()
        proc.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the node (SIGSTOP): connections stay open but nothing is answered."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, sig: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("the node is not running")
        os.killpg(self._proc.pid, sig)

    def stop_epmd(self) -> None:
        """Stop the node's private port mapper (it outlives the VM by design); call last."""
        epmd = shutil.which("epmd") or "epmd"
        subprocess.run(
            [epmd, "-kill"],
            env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=10,
        )
        self._forget()

    def log_tail(self, lines: int = 40) -> str:
        texts = [self.log_path.read_text("utf-8", "replace")] if self.log_path.exists() else []
        texts += [
            p.read_text("utf-8", "replace") for p in sorted((self.base_dir / "log").glob("*.log"))
        ]
        return "\n".join("\n".join(text.splitlines()[-lines:]) for text in texts)

    def _kill_group(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def _answers_amqp(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1) as sock:
                sock.sendall(_AMQP_HEADER)
                head = sock.recv(7)
        except OSError:
            return False
        return len(head) == 7 and head[0] == _FRAME_METHOD

    def _marker(self) -> Path | None:
        directory = os.environ.get("RECEIVER_TEST_NODES_DIR")
        return Path(directory) / self.name.split("@")[0] if directory else None

    def _record(self) -> None:
        marker = self._marker()
        if marker is not None and self._proc is not None:
            marker.write_text(f"{self._proc.pid} {self.epmd_port}\n")

    def _forget(self) -> None:
        marker = self._marker()
        if marker is not None:
            marker.unlink(missing_ok=True)
