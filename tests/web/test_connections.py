"""Connections of a real `receiver serve`: capped below the open files limit, idle ones closed,
slow request heads closed, shedding logged once per episode and counted."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from testbed.service import ServiceProcess
from tests.support.helpers import (
    API_TOKEN,
    KEY,
    count,
    eventually_sync,
    http_status,
    payload,
    post_callback,
    signed,
)

KEYS = {"RECEIVER_CALLBACK_KEYS": KEY, "RECEIVER_API_TOKEN": API_TOKEN}


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {within} s") from None
    return received, time.monotonic() - started


def test_idle_connections_never_starve_callbacks_readyz_or_the_writer(tmp_path: Path) -> None:
    """More idle connections than the process has descriptors: real work still gets through."""
    database = tmp_path / "r.db"
    idle: list[socket.socket] = []
    with ServiceProcess(database, KEYS, open_files=256) as service:
        try:
            address = ("127.0.0.1", service.port)
            idle.extend(socket.create_connection(address, timeout=5) for _ in range(400))
            assert post_callback(service.url, signed(payload("push_begin_1.json"))) == 200
            assert http_status(f"{service.url}/readyz") == 200

            # A writer that dies is restarted: its pipes need descriptors the idle ones left.
            writer = service.writer_pid()
            os.kill(writer, signal.SIGKILL)
            eventually_sync(
                lambda: post_callback(service.url, signed(payload("stream_end_0.json"))) == 200,
                within=30,
                what="a callback stored by a restarted writer",
            )
            assert service.writer_pid() != writer
            assert _metric(service.url, 'receiver_connections_closed_total{reason="limit_idle"}')
            assert _metric(service.url, "receiver_connections_open") <= 256 - 128
        finally:
            for sock in idle:
                sock.close()
        code, _, err = service.stop()
    assert code == 0, err
    assert count(database) == 2
    assert "raised the open files limit" not in err  # soft and hard were both 256
    assert err.count("connection limit of 128 reached") == 1, err  # one WARNING, not 300


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(tmp_path: Path) -> None:
    env = {
        **KEYS,
        "RECEIVER_KEEPALIVE_TIMEOUT_SECONDS": "1",
        "RECEIVER_HEADER_TIMEOUT_SECONDS": "60",
    }
    with (
        ServiceProcess(tmp_path / "r.db", env) as service,
        socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: receiver\r\n\r\n")
        received, elapsed = _read_until_closed(sock, within=20)
    assert received.startswith(b"HTTP/1.1 200"), received
    assert 0.5 < elapsed < 20


def test_a_request_head_arriving_too_slowly_is_closed(tmp_path: Path) -> None:
    env = {
        **KEYS,
        "RECEIVER_KEEPALIVE_TIMEOUT_SECONDS": "60",
        "RECEIVER_HEADER_TIMEOUT_SECONDS": "1",
    }
    with ServiceProcess(tmp_path / "r.db", env) as service:
        with (
            socket.create_connection(("127.0.0.1", service.port), timeout=5) as slow,
            socket.create_connection(("127.0.0.1", service.port), timeout=5) as silent,
        ):
            slow.sendall(b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Le")
            received, elapsed = _read_until_closed(slow, within=20)
            assert received == b""
            assert 0.5 < elapsed < 20
            # A connection that never sends a byte has the same deadline.
            assert _read_until_closed(silent, within=20)[0] == b""
        closed = 'receiver_connections_closed_total{reason="header_timeout"}'
        assert _metric(service.url, closed) == 2
        # A request that comes at once is served as ever.
        assert post_callback(service.url, signed(payload("push_begin_1.json"))) == 200
        code, _, err = service.stop()
    assert code == 0, err
    assert err.count("RECEIVER_HEADER_TIMEOUT_SECONDS") == 1, err
